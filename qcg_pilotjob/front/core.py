"""The front: the only place where task and job states change.

There is one front per service. It talks to its partitions only through
:mod:`~qcg_pilotjob.protocol.messages` over :class:`~.links.PartitionLink` objects,
whether the partition runs in this process (single-manager mode) or elsewhere (governor
mode). Client requests come in through :class:`~.requests.Requests`; dependencies are
decided by :class:`~.dependencies.Dependencies`, routing by :class:`~.router.Router`,
and every state change is checked by :func:`~.transitions.check_task`: an illegal one
raises :class:`~.transitions.InvalidTransition`, is logged and changes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..jobdesc import JobDescription
from ..protocol.messages import (
    CancelMsg,
    ForgetMsg,
    Message,
    NodeLostMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
    TasksEndedMsg,
)
from ..resources import ResourcePool
from ..states import JobState
from .dependencies import Dependencies, Released
from .journal import ENDED, Journal, Replay, replayable_jobs
from .links import PartitionLink, end_left_running
from .ranges import Range, as_ranges, count, indexes, merge, subtract
from .registry import JobRecord
from .reports import LineWriter, format_report
from .requests import Requests, Response
from .router import ReadyEntry, Router, new_ready_queue
from .transitions import InvalidTransition, check_task
from .views import report_entry

__all__ = ["Front", "PartitionLink"]

_log = logging.getLogger(__name__)

Publish = Callable[[str, Dict[str, Any]], None]
_STATES: Dict[Any, JobState] = {int(s): s for s in JobState}
Restored = Dict[Tuple[str, Any], Any]
#: iterations ended together that still get a report line each (past it: none, see _end_together)
REPORT_EACH_ENDED = 10_000


class Front:
    """Registry, states, routing glue and partition membership of one service."""

    def __init__(self, links: Optional[List[PartitionLink]] = None, *, instance_id: str, report: LineWriter,
                 report_format: str, journal: Journal, on_change: Optional[Callable[[], None]] = None) -> None:
        self.links: List[PartitionLink] = list(links or [])
        self.instance_id = instance_id
        self.report = report
        self.report_format = report_format
        self.journal = journal
        self.on_change = on_change or (lambda: None)
        self.jobs: Dict[str, JobRecord] = {}
        self.job_seq = 0
        self.started = time.time()
        self.finish_requested = False
        self.finish_after_all = False
        self.stopping = False
        #: no partition will register any more (a governor that started its own): when the
        #: last one is lost, work that waits for one fails instead of waiting forever
        self.partitions_final = False
        # counters, kept incrementally (no scans)
        self.job_counts: Dict[JobState, int] = {s: 0 for s in JobState}
        self.task_counts: Dict[JobState, int] = {s: 0 for s in JobState}
        self.active_jobs = 0
        self.tasks_done = 0
        self.invalid_events = 0
        self.deps = Dependencies(self.jobs.get)
        self.router = Router()
        self.requests = Requests(self)
        #: released since the last flush, in release order: job name -> task indexes
        self._to_dispatch: Dict[str, Tuple[JobRecord, List[Range]]] = {}
        #: released tasks not yet sent to a partition, FIFO
        self.ready = new_ready_queue()
        self.zmq_address: Optional[str] = None
        self.publisher_address: Optional[str] = None
        self._publish: Optional[Publish] = None
        self.interfaces: List[str] = []

    # ==== control ==============================================================================
    def handle_request(self, req: Any) -> Response:
        """Handle one client request; never raises."""
        return self.requests.handle(req)

    def request_finish(self) -> bool:
        """Stop now (``finish``, a signal, a parent gone). False if already asked."""
        if self.finish_requested:
            return False
        self.finish_requested = True
        self.on_change()
        return True

    def request_finish_after_all(self, record: bool = True) -> bool:
        """Stop once every job has ended. False if a finish was already asked for."""
        if self.finish_after_all or self.finish_requested:
            return False
        self.finish_after_all = True
        if record:
            self.journal.record("control", command="finishAfterAllTasksDone")
        self.on_change()
        return True

    def begin_stop(self) -> None:
        """From now on only ``finish``, ``status`` and ``resourcesInfo`` are served; tasks
        ended by the stop are not final for a resume."""
        self.stopping = True

    def close_membership(self) -> None:
        """No partition will join any more (see :attr:`partitions_final`)."""
        self.partitions_final = True
        self.flush_dispatch()

    def add_interface(self, name: str) -> None:
        """How clients reach this service (``file``, ``zmq``), as ``status`` lists it."""
        if name not in self.interfaces:
            self.interfaces.append(name)

    def attach_publisher(self, publish: Publish, zmq_address: str, publisher_address: str) -> None:
        """Publish status events with ``publish``; clients reach us at ``zmq_address``."""
        self._publish = publish
        self.zmq_address = zmq_address
        self.publisher_address = publisher_address
        self.add_interface("zmq")

    # ==== totals ============================================================================
    @property
    def total_cores(self) -> int:
        return sum(link.pool.total_cores for link in self.links if not link.lost)

    @property
    def total_nodes(self) -> int:
        return sum(link.pool.total_nodes for link in self.links if not link.lost)

    @property
    def used_cores(self) -> int:
        return sum(link.used_cores for link in self.links if not link.lost)

    @property
    def all_done(self) -> bool:
        return self.active_jobs == 0

    # ==== jobs ==================================================================================
    def submit(self, descs: List[JobDescription]) -> None:
        """Register checked, uniquely named jobs (journalled first); all or nothing."""
        records = self._new_records(descs)  # may raise (MemoryError): nothing changed yet
        self.journal.record("submit", jobs=[d.raw for d in descs])
        self._add(records)

    def _new_records(self, descs: List[JobDescription]) -> List[JobRecord]:
        now = time.time()
        return [JobRecord(desc, now, self.job_seq + i) for i, desc in enumerate(descs)]

    def register(self, descs: List[JobDescription], restored: Optional[Restored] = None) -> None:
        """Add jobs and release those whose dependencies are met."""
        self._add(self._new_records(descs), restored)

    def _add(self, records: List[JobRecord], restored: Optional[Restored] = None) -> None:
        self.job_seq += len(records)
        for job in records:
            self.jobs[job.name] = job
            self.job_counts[JobState.QUEUED] += 1
            self.task_counts[JobState.QUEUED] += job.total
            self.active_jobs += 1
        if restored:
            for job in records:
                self._restore(job, restored)
        for job in records:
            if not job.state.is_final:
                self._resolve(job)
        self.on_change()

    def _restore(self, job: JobRecord, restored: Restored) -> None:
        if job.total <= len(restored):
            found = [(idx, restored.get((job.name, job.iteration_of(idx)))) for idx in range(job.total)]
        else:  # (a big job, few ends on record: look up those, not every iteration)
            found = sorted((job.index(it), rec) for (name, it), rec in restored.items()
                           if name == job.name and (it is None or isinstance(it, int))
                           and (it is None) != job.iterative and (it is None or job.has_iteration(it)))
        for idx, rec in found:
            if rec is not None:
                self._task_final(job, idx, JobState.parse(rec["s"]), float(rec.get("w", time.time())),
                                 rec.get("r"), rec.get("m"), replay=True)
        for rec in restored.get((job.name, ENDED), ()):  # iterations that ended together
            pairs = [r for r in rec["r"] if isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r)]
            ranges = job.tasks.waiting(merge((a, b) for a, b in pairs if 0 <= a < b <= job.total))
            self._end_together(job, ranges, JobState.parse(rec["s"]), float(rec.get("w", time.time())),
                               rec.get("m"), replay=True)

    def _resolve(self, job: JobRecord) -> None:
        res = self.deps.resolve(job)
        now = time.time()
        if res.omit is not None:
            self._omit_job(job, res.omit, now)
            return
        for idx, reason in res.omit_tasks:
            if not job.tasks.state(idx).is_final:
                self._task_final(job, idx, JobState.OMITTED, now, None, reason)
        if job.deps_pending == 0 and not job.state.is_final:
            self._release(job)

    def _release(self, job: JobRecord) -> None:
        pend = job.iter_pending
        ready = job.tasks.waiting([(0, job.total)])
        if pend is not None:  # (per-iteration dependencies: some iterations wait still)
            ready = as_ranges(idx for idx in indexes(ready) if pend[idx] == 0)
        if ready:
            self._queue_dispatch(job, ready)

    def cancel(self, job: JobRecord, it: Optional[int]) -> None:
        """Cancel a job (``it`` None) or one iteration that is not final."""
        now = time.time()
        tasks = job.tasks
        if it is not None:
            idx = job.index(it)
            part = tasks.partition(idx)
            if part < 0:
                self._task_final(job, idx, JobState.CANCELED, now, None, "canceled by user")
            else:
                self.links[part].send(CancelMsg(job.name, [it]))
            return
        job.cancel_requested = True
        # every partition holding one of its tasks that is not final cancels them all
        parts = sorted({part for a, b, part in tasks.placed.items()
                        if sum(tasks.state(i).is_final for i in tasks.made_in(a, b)) < b - a})
        waiting = tasks.waiting([(0, job.total)])  # (ready entries skip them from now on)
        if job.iterative:
            self._end_together(job, waiting, JobState.CANCELED, now, "canceled by user")
        elif waiting:
            self._task_final(job, 0, JobState.CANCELED, now, None, "canceled by user")
        for part in parts:
            self.links[part].send(CancelMsg(job.name, None))

    def remove(self, jobs: List[JobRecord]) -> None:
        """Forget final jobs (their names may be used again)."""
        if not jobs:
            return
        for job in jobs:
            self._forget(job)
        names = [job.name for job in jobs]
        self.journal.record("remove", jobs=names)
        for link in self.links:
            if link.live:
                link.send(ForgetMsg(names))

    def _forget(self, job: JobRecord) -> None:
        del self.jobs[job.name]
        self.job_counts[job.state] -= 1
        made = job.tasks.made()
        self.task_counts[JobState.QUEUED] -= job.total - len(made)  # (a task without a record waits)
        for rec in made.values():
            self.task_counts[rec.state] -= 1

    # ==== routing ===============================================================================
    def _queue_dispatch(self, job: JobRecord, ranges: List[Range]) -> None:
        pending = self._to_dispatch.get(job.name)
        if pending is None or pending[0] is not job:
            self._to_dispatch[job.name] = (job, list(ranges))
        else:
            pending[1].extend(ranges)

    def flush_dispatch(self) -> None:
        """Move what was released since the last call to the ready queue and route it."""
        if self._to_dispatch:
            pending, self._to_dispatch = self._to_dispatch, {}
            for job, ranges in pending.values():
                if ranges and self.jobs.get(job.name) is job:
                    self.ready.append(ReadyEntry(job, merge(ranges)))
        self._route()

    def has_pending_dispatch(self) -> bool:
        return bool(self._to_dispatch) or bool(self.ready)

    def _route(self) -> None:
        routing = self.router.route(self.ready, self.links, final=self.partitions_final)
        for d in routing.dispatches:
            placed = d.job.tasks.placed
            for a, b in d.ranges:
                placed.assign(a, b, d.link.index)
            d.link.send(d.msg)
        if routing.unroutable:
            now = time.time()
            for job, ranges, reason in routing.unroutable:
                for idx in indexes(ranges):
                    if self.jobs.get(job.name) is job and not job.tasks.state(idx).is_final:
                        self._task_final(job, idx, JobState.FAILED, now, None, reason)

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
            for a, b in tasks.placed.with_value(link.index):
                made = tasks.made_in(a, b)
                for idx in made:
                    state = tasks.state(idx)
                    if state is not JobState.QUEUED and not state.is_final:
                        running.append((job, idx))
                # what it had not started waits again (tasks without a record, or QUEUED ones)
                waiting = [i for i in made if tasks.state(i) is not JobState.QUEUED]
                at = a
                for i in waiting:
                    if i > at:
                        back.append((at, i))
                    at = i + 1
                if at < b:
                    back.append((at, b))
            for a, b in back:
                tasks.placed.assign(a, b, None)
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
        if isinstance(msg, TaskEventsMsg):
            link.used_cores = msg.used_cores
            for ev in msg.events:
                try:
                    self._apply(link, ev)
                except InvalidTransition as exc:
                    self.invalid_events += 1
                    _log.warning("partition %s: event ignored: %s", link.name, exc)
            self.flush_dispatch()
            self.on_change()
        elif isinstance(msg, TasksEndedMsg):
            try:
                self._tasks_ended(link, msg)
            except InvalidTransition as exc:
                self.invalid_events += 1
                _log.warning("partition %s: ended tasks ignored: %s", link.name, exc)
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

    def _apply(self, link: PartitionLink, ev: TaskEvent) -> None:
        job = self.jobs.get(ev.job)
        if job is None:
            return  # removed meanwhile
        name = ev.job if ev.iteration is None else f"{ev.job}:{ev.iteration}"
        state = _STATES.get(ev.state)
        if state is None:
            raise InvalidTransition(name, JobState.QUEUED, JobState.QUEUED, (), f"{ev.state!r} is not a task state")
        it = ev.iteration
        if (it is None) == job.iterative or (it is not None and not job.has_iteration(it)):
            raise InvalidTransition(name, job.state, state, job.history, "no such task")
        idx = job.index(ev.iteration)
        if job.tasks.partition(idx) != link.index:
            view = job.tasks.view(idx)
            raise InvalidTransition(name, view.state, state, view.history_entries(job.submit_time),
                                    f"the task is not on partition {link.name}")
        rec = job.tasks[idx]
        history = rec.history_entries(job.submit_time)
        check_task(name, rec.state, state, history, from_partition=True)
        data = ev.data or {}
        if state is JobState.QUEUED:  # still waiting, with a reason (e.g. the allocation's time)
            if data.get("message"):
                job.add_message(str(data["message"]))
        elif state is JobState.EXECUTING:
            self._executing(job, idx, ev.iteration, ev.time, data)
        else:
            link.outstanding -= self.router.known_weight(job.name)  # room in the window
            runtime = dict(rec.runtime or {})
            for key in ("allocation", "exit_code", "rtime"):
                if key in data:
                    runtime[key] = data[key]
            self._task_final(job, idx, state, ev.time, runtime or None, data.get("message"))

    def _tasks_ended(self, link: PartitionLink, msg: TasksEndedMsg) -> None:
        """Queued iterations the partition ended together (checked like single events)."""
        job = self.jobs.get(msg.job)
        if job is None:
            return  # removed meanwhile
        state = _STATES.get(msg.state)
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
            if not tasks.placed.holds(a - its.start, b - its.start, link.index):
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

    def _end_together(self, job: JobRecord, ranges: List[Range], state: JobState, when: float,
                      message: Optional[str], link: Optional[PartitionLink] = None, replay: bool = False) -> None:
        """Iterations of ``job`` in ``ranges`` that never started end in ``state`` at once: one
        shared record and one journal line. Up to :data:`REPORT_EACH_ENDED` of them get a
        report line and a status event each, as usual; past that none (the job's own report
        line counts them), so that ending 10,000,000 of them is O(1)."""
        n = count(ranges)
        if n == 0:
            return
        job.tasks.end_together(ranges, state, when, message, job.submit_time)
        if link is not None:
            link.outstanding -= self.router.known_weight(job.name) * n
        self.task_counts[JobState.QUEUED] -= n
        self.task_counts[state] += n
        job.finished += n
        if state is not JobState.SUCCEED:
            job.failed += n
        self.tasks_done += n
        if not replay and not (self.stopping and state in (JobState.CANCELED, JobState.OMITTED)):
            self.journal.record("ended", j=job.name, r=[list(r) for r in ranges], s=state.name, w=when,
                                m=message)
        if not replay and n <= REPORT_EACH_ENDED:  # (a few: a report line and an event each, as usual)
            for idx in indexes(ranges):
                if self.report.enabled:
                    self.report.write(format_report(report_entry(job, idx), self.report_format))
                if self._publish is not None:
                    self._publish("IFI", {"job": job.name, "it": job.iteration_of(idx), "state": state.name})
        waited = self.deps.iterations_waited(job.name)
        if waited:  # (only the iterations somebody waits for: not every one of the ranges)
            offset = job.index(waited[0]) - waited[0]
            for it in waited:
                if any(a <= it + offset < b for a, b in ranges):
                    self._released(self.deps.wake((job.name, it), state))
        if job.finished == job.total:
            self._job_final(job, when, replay)

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
        rec.runtime = {k: data[k] for k in ("allocation", "wd", "pid") if k in data}
        if "pid" in data:  # lets a resume stop processes a killed service left behind
            self.journal.record("run", j=job.name, i=it, p=data["pid"], w=when)
        if job.state is JobState.QUEUED:
            self._job_state(job, JobState.EXECUTING, when)

    # ==== the state machine ===========================================================================
    def _job_state(self, job: JobRecord, state: JobState, when: float) -> None:
        self.job_counts[job.state] -= 1
        self.job_counts[state] += 1
        job.set_state(state, when)

    def _task_final(self, job: JobRecord, idx: int, state: JobState, when: float,
                    runtime: Optional[Dict[str, Any]], message: Optional[str], replay: bool = False) -> None:
        it = job.iteration_of(idx)
        view = job.tasks.view(idx)
        if not replay:
            check_task(job.name if it is None else f"{job.name}:{it}", view.state, state,
                       view.history_entries(job.submit_time))
        elif view.state.is_final:
            return
        rec = job.tasks[idx]
        if job.tasks.partition(idx) < 0:
            job.tasks.final_before_dispatch(idx)  # (a ready entry may still hold it: routing skips it)
        self.task_counts[rec.state] -= 1
        self.task_counts[state] += 1
        rec.set_state(state, when, job.submit_time)
        if runtime is not None:
            rec.runtime = runtime
        if message:
            rec.message = message
        job.finished += 1
        if state is not JobState.SUCCEED:
            job.failed += 1
        self.tasks_done += 1
        # a task stopped because the service stops is not final for a resume: it runs again
        interrupted = self.stopping and state in (JobState.CANCELED, JobState.OMITTED)
        if not replay:
            if not interrupted:
                self.journal.record("final", j=job.name, i=it, s=state.name, w=when, r=rec.runtime, m=rec.message)
            if job.iterative and self.report.enabled:
                self.report.write(format_report(report_entry(job, idx), self.report_format))
        if job.iterative:
            if self._publish is not None and not replay:
                self._publish("IFI", {"job": job.name, "it": it, "state": state.name})
            self._released(self.deps.wake((job.name, it), state))
        if job.finished == job.total:
            self._job_final(job, when, replay)

    def _job_final(self, job: JobRecord, when: float, replay: bool) -> None:
        final = job.final_state()
        if not job.iterative and job.tasks[0].message:
            job.add_message(job.tasks[0].message)
        elif final is JobState.FAILED and job.iterative:
            job.add_message(f"{job.failed} of {job.total} iterations did not succeed")
        self._job_state(job, final, when)
        self.active_jobs -= 1
        self.router.forget(job.name)
        if self._publish is not None and not replay:
            self._publish("JFI", {"job": job.name, "state": final.name})
            if self.active_jobs == 0:
                self._publish("NOJ", {})
        if not replay and self.report.enabled:  # on replay the report already holds the job's line
            self.report.write(format_report(report_entry(job, None), self.report_format))
        self._released(self.deps.wake((job.name, None), final))

    def _omit_job(self, job: JobRecord, reason: str, now: float) -> None:
        job.add_message(reason)
        tasks = job.tasks
        if job.iterative:
            self._end_together(job, tasks.waiting([(0, job.total)]), JobState.OMITTED, now, reason)
        # what is left: tasks with a record, and tasks sent to a partition
        left = {i for i, rec in tasks.made().items() if not rec.state.is_final}
        left.update(i for a, b, _ in tasks.placed.items() for i in range(a, b))
        if not job.iterative:
            left.add(0)
        for idx in sorted(left):
            if not tasks.state(idx).is_final:
                self._task_final(job, idx, JobState.OMITTED, now, None, reason)

    def _released(self, rel: Optional[Released]) -> None:
        """Apply what a final state meant for the jobs waiting for it."""
        if rel is None:
            return
        now = time.time()
        for job in rel.release_jobs:
            if not job.state.is_final:
                self._release(job)
        for job, reason in rel.omit_jobs:
            if not job.state.is_final:
                self._omit_job(job, reason, now)
        for job, idx in rel.ready_tasks:
            if not job.tasks.state(idx).is_final:
                self._queue_dispatch(job, [(idx, idx + 1)])
        for job, idx, reason in rel.omit_tasks:
            if not job.tasks.state(idx).is_final:
                self._task_final(job, idx, JobState.OMITTED, now, None, reason)

    # ==== resume ====================================================================================
    def replay(self, replay: Replay) -> int:
        """Rebuild the registry from a journal; returns the number of jobs restored."""
        count = 0
        for kind, items, finals in replay.steps:
            if kind == "submit":
                descs = [d for d in replayable_jobs(items) if d.name not in self.jobs]
                self.register(descs, restored=finals)
                count += len(descs)
            else:
                gone = [job for job in (self.jobs.get(name) for name in items) if job is not None
                        and job.state.is_final]
                for job in gone:
                    self._forget(job)
        if replay.finish_after_all:
            self.finish_after_all = True
        self.flush_dispatch()
        return count
