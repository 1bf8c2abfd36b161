"""The partition side of the front: partitions joining and being lost, and what they
report (task events, iterations ended together). :class:`~.core.Front` inherits it; state
still changes only through the front's checked transitions (``_task_final`` and friends).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from ..protocol.messages import Message, NodeLostMsg, StoppedMsg, TaskEvent, TaskEventsMsg, TasksEndedMsg
from ..resources import ResourcePool
from ..states import JobState
from .journal import Journal
from .links import PartitionLink, end_left_running
from .ranges import Range, count, cut, subtract
from .registry import JobRecord
from .router import ReadyEntry, Router
from .transitions import InvalidTransition, check_task

__all__ = ["STATES", "PartitionSide"]

_log = logging.getLogger("qcg_pilotjob.front.core")

STATES: Dict[Any, JobState] = {int(s): s for s in JobState}
#: what a partition says of a started task that its runtime information keeps
_STARTED = ("allocation", "wd", "pid")
#: ... and of an ended one
_ENDED = ("allocation", "exit_code", "rtime")


class PartitionSide:
    """Membership of partitions and their messages (a part of :class:`~.core.Front`)."""

    # what the front holds (set in Front.__init__)
    links: List[PartitionLink]
    jobs: Dict[str, JobRecord]
    router: Router
    ready: Deque[ReadyEntry]
    task_counts: Dict[JobState, int]
    journal: Journal
    invalid_events: int
    on_change: Callable[[], None]
    iteration_events: bool

    # the front's state machine (defined in Front)
    def _route(self) -> None:
        raise NotImplementedError

    def flush_dispatch(self) -> None:
        raise NotImplementedError

    def _job_state(self, job: JobRecord, state: JobState, when: float) -> None:
        raise NotImplementedError

    def _announce(self, topic: str, **data: Any) -> None:
        raise NotImplementedError

    def _task_final(self, job: JobRecord, idx: int, state: JobState, when: float,
                    runtime: Optional[Dict[str, Any]], message: Optional[str], replay: bool = False) -> None:
        raise NotImplementedError

    def _end_together(self, job: JobRecord, ranges: List[Range], state: JobState, when: float,
                      message: Optional[str], link: Optional[PartitionLink] = None, replay: bool = False) -> None:
        raise NotImplementedError

    # ==== partitions come and go ==================================================================
    def add_link(self, name: str, pool: ResourcePool, send: Callable[[Message], None], *, host: str = "",
                 pid: int = 0) -> PartitionLink:
        """A partition joined; waiting work is routed to it at once (``send`` must work)."""
        link = PartitionLink(len(self.links), name, pool, send, host=host, pid=pid)
        self.links.append(link)
        self.router.links_changed()
        self._route()
        self.on_change()
        return link

    def lose_link(self, link: PartitionLink, reason: str) -> None:
        """A partition stopped answering, or its process ended. What it left running is
        ended first (``link.stopper``); then its running tasks are FAILED with ``reason``
        (a task may have had side effects: it is not run twice) and the tasks it had not
        started go back to the ready queue for the other partitions."""
        if link.lost:
            return
        link.lost = True
        link.used_cores = link.outstanding = 0
        running: List[Tuple[JobRecord, int]] = []
        queued: List[ReadyEntry] = []
        for job in self.jobs.values():
            tasks = job.tasks
            back: List[Range] = []
            for a, b in tasks.placed_on(link.index):
                made = tasks.made_in(a, b)
                for idx in made:
                    state = tasks.state(idx)
                    if state is not JobState.QUEUED and not state.is_final:
                        running.append((job, idx))
                # what it had not started waits again (tasks without a record, or QUEUED ones)
                back.extend(cut(a, b, [i for i in made if tasks.state(i) is not JobState.QUEUED]))
            for a, b in back:
                tasks.place(a, b, None)
            if back and not job.state.is_final:
                queued.append(ReadyEntry(job, back))
        ended = end_left_running(link, running)
        message = f"{reason}; {ended}" if ended else reason
        _log.error("%s (%d running tasks FAILED, %d queued tasks routed again)", message, len(running),
                   sum(count(e.ranges) for e in queued))
        now = time.time()
        for job, idx in running:
            if not job.tasks.state(idx).is_final:
                self._task_final(job, idx, JobState.FAILED, now, None, message)
        self.router.requeue_lost(self.ready, queued)
        self.router.links_changed()
        self._route()
        self.on_change()

    # ==== messages from partitions ==================================================================
    def on_message(self, link: PartitionLink, msg: Message) -> None:
        if link.lost:
            return  # its tasks were failed or moved when it was declared lost
        if isinstance(msg, (TaskEventsMsg, TasksEndedMsg)):
            if isinstance(msg, TaskEventsMsg):
                link.used_cores = msg.used_cores
                for ev in msg.events:
                    self._checked(link, "event", self._apply, ev)
            else:
                self._checked(link, "ended tasks", self._tasks_ended, msg)
            self.flush_dispatch()
            self.on_change()
        elif isinstance(msg, StoppedMsg):
            link.stopped = True
            self.on_change()
        elif isinstance(msg, NodeLostMsg):
            link.pool.disable_node(msg.node)
            link.resize_window()
            self.router.links_changed()
            self.on_change()
        else:
            _log.warning("partition %s: unexpected %s dropped", link.name, type(msg).__name__)

    def _checked(self, link: PartitionLink, what: str, change: Callable[[PartitionLink, Any], None],
                 arg: Any) -> None:
        """Apply one change a partition reports; an illegal one is counted, logged and ignored."""
        try:
            change(link, arg)
        except InvalidTransition as exc:
            self.invalid_events += 1
            _log.warning("partition %s: %s ignored: %s", link.name, what, exc)

    def _apply(self, link: PartitionLink, ev: TaskEvent) -> None:
        job = self.jobs.get(ev.job)
        if job is None:
            return  # removed meanwhile
        name = ev.job if ev.iteration is None else f"{ev.job}:{ev.iteration}"
        state = STATES.get(ev.state)
        if state is None:
            raise InvalidTransition(name, JobState.QUEUED, JobState.QUEUED, (), f"{ev.state!r} is not a task state")
        it = ev.iteration
        if (it is None) == job.iterative or (it is not None and not job.has_iteration(it)):
            raise InvalidTransition(name, job.state, state, job.history, "no such task")
        idx = job.index(ev.iteration)
        view = job.tasks.view(idx)
        if job.tasks.partition(idx) != link.index:
            raise InvalidTransition(name, view.state, state, view.history_entries(job.submit_time),
                                    f"the task is not on partition {link.name}")
        check_task(name, view.state, state, view.history_entries(job.submit_time), from_partition=True)
        rec = job.tasks[idx]  # (made only now: a late word on a final task changes nothing)
        data = ev.data or {}
        if state is JobState.QUEUED:  # still waiting, with a reason (e.g. the allocation's time)
            if data.get("message"):
                job.add_message(str(data["message"]))
        elif state is JobState.EXECUTING:
            if view.state is not JobState.EXECUTING:  # (not a later word on a running task)
                link.running += 1
            self._executing(job, idx, ev.iteration, ev.time, data)
        else:
            link.outstanding -= self.router.known_weight(job.name)  # room in the window
            if view.state is JobState.EXECUTING:
                link.running -= 1
            if state is JobState.SUCCEED:
                link.succeeded += 1
            else:
                link.failed += 1
            runtime = dict(rec.runtime or {})
            for key in _ENDED:
                if key in data:
                    runtime[key] = data[key]
            self._task_final(job, idx, state, ev.time, runtime or None, data.get("message"))

    def _tasks_ended(self, link: PartitionLink, msg: TasksEndedMsg) -> None:
        """Queued iterations the partition ended together (checked like single events)."""
        job = self.jobs.get(msg.job)
        if job is None:
            return  # removed meanwhile
        state = STATES.get(msg.state)
        if state is None or not state.is_final:
            raise InvalidTransition(msg.job, JobState.QUEUED, JobState.QUEUED, (),
                                    f"{msg.state!r} is not a final task state")
        its = job.desc.iteration
        if its is None:
            raise InvalidTransition(msg.job, job.state, state, job.history, "the job has no iterations")
        tasks = job.tasks
        ranges: List[Range] = []
        for a, b in msg.iterations:
            name = f"{msg.job}:{a}..{b - 1}"
            if not its.start <= a < b <= its.stop:
                raise InvalidTransition(name, job.state, state, job.history, "no such tasks")
            if not tasks.all_on(a - its.start, b - its.start, link.index):
                raise InvalidTransition(name, job.state, state, job.history,
                                        f"the tasks are not on partition {link.name}")
            ranges.append((a - its.start, b - its.start))
        made = [i for a, b in ranges for i in tasks.made_in(a, b)]
        started = [i for i in made if tasks.state(i) is not JobState.QUEUED]
        if started:
            view = tasks.view(started[0])
            raise InvalidTransition(f"{msg.job}:{job.iteration_of(started[0])}", view.state, state,
                                    view.history_entries(job.submit_time), "the task had started")
        for idx in made:  # (a record that says why it waits)
            link.outstanding -= self.router.known_weight(job.name)
            self._task_final(job, idx, state, msg.time, None, msg.message)
        self._end_together(job, subtract(ranges, made), state, msg.time, msg.message, link)
        if state is JobState.SUCCEED:
            link.succeeded += count(ranges)
        else:
            link.failed += count(ranges)

    def _executing(self, job: JobRecord, idx: int, it: Optional[int], when: float, data: Dict[str, Any]) -> None:
        rec = job.tasks[idx]
        if rec.state is JobState.EXECUTING:
            # a later word on a running task: its pid, known once a node agent started it
            if rec.runtime is not None and "pid" in data:
                rec.runtime["pid"] = data["pid"]
                self.journal.record("run", j=job.name, i=it, p=data["pid"], w=when)
            return
        self.task_counts[rec.state] -= 1
        self.task_counts[JobState.EXECUTING] += 1
        rec.set_state(JobState.SCHEDULED, when, job.submit_time)
        rec.set_state(JobState.EXECUTING, when, job.submit_time)
        rec.runtime = {k: data[k] for k in _STARTED if k in data}
        if "pid" in data:  # lets a resume stop processes a killed service left behind
            self.journal.record("run", j=job.name, i=it, p=data["pid"], w=when)
        if it is not None and self.iteration_events:
            self._announce("IST", job=job.name, it=it, state="EXECUTING")
        if job.state is JobState.QUEUED:
            self._job_state(job, JobState.EXECUTING, when)
