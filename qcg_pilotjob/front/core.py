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
from ..protocol.messages import CancelMsg, ForgetMsg
from ..states import JobState
from .dependencies import Dependencies, Released
from .journal import ENDED, Journal, Replay, replayable_jobs
from .links import PartitionLink
from .partitions import PartitionSide
from .ranges import Range, as_ranges, count, indexes, merge
from .registry import JobRecord
from .reports import LineWriter
from .requests import Requests, Response
from .router import ReadyEntry, Router, new_ready_queue
from .transitions import check_task
from .views import job_report_line, report_line

__all__ = ["Front", "PartitionLink"]

_log = logging.getLogger(__name__)

Publish = Callable[[str, Dict[str, Any]], None]
Restored = Dict[Tuple[str, Any], Any]
#: iterations ended together that still get a report line each (past it: none, see _end_together)
REPORT_EACH_ENDED = 10_000


class Front(PartitionSide):
    """Registry, states and routing glue of one service; partition membership and
    partitions' messages come from :class:`~.partitions.PartitionSide`."""

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
        #: ``--prune-finished``: finished iterations keep their state alone
        self.prune = False
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
        # publish IST (an iteration's state: a few events per task) only while someone subscribes to it
        self.iteration_events = False
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

    def attach_publisher(self, publish: Optional[Publish], zmq_address: str, publisher_address: Optional[str]) -> None:
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
        parts = sorted({part for a, b, part in tasks.placed_items()
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
        for state, n in job.tasks.state_counts().items():
            self.task_counts[state] -= n

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
                    self.ready.append(ReadyEntry(job, merge(ranges) if len(ranges) > 1 else ranges))
        self._route()

    def has_pending_dispatch(self) -> bool:
        return bool(self._to_dispatch) or bool(self.ready)

    def _route(self) -> None:
        routing = self.router.route(self.ready, self.links, final=self.partitions_final)
        for d in routing.dispatches:
            tasks = d.job.tasks
            for a, b in d.ranges:
                tasks.place(a, b, d.link.index)
            d.link.send(d.msg)
        if routing.unroutable:
            now = time.time()
            for job, ranges, reason in routing.unroutable:
                for idx in indexes(ranges):
                    if self.jobs.get(job.name) is job and not job.tasks.state(idx).is_final:
                        self._task_final(job, idx, JobState.FAILED, now, None, reason)

    # ==== the state machine ===========================================================================
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
                    self.report.write(report_line(job, idx, self.report_format))
                it = job.iteration_of(idx)
                self._iteration_ended(job, it, state)
        waited = self.deps.iterations_waited(job.name)
        if waited:  # (only the iterations somebody waits for: not every one of the ranges)
            offset = job.index(waited[0]) - waited[0]
            for it in waited:
                if any(a <= it + offset < b for a, b in ranges):
                    self._released(self.deps.wake((job.name, it), state))
        if job.finished == job.total:
            self._job_final(job, when, replay)

    def _iteration_ended(self, job: JobRecord, it: Optional[int], state: JobState) -> None:
        """The events of an iteration's end: ``IST`` (only while subscribed) and ``IFI``."""
        if self.iteration_events:
            self._announce("IST", job=job.name, it=it, state=state.name)
        self._announce("IFI", job=job.name, it=it, state=state.name)

    def _announce(self, topic: str, **data: Any) -> None:
        """A status event, with the ``manager`` QCG-PilotJob's events carry (none without
        a publisher)."""
        if self._publish is not None:
            self._publish(topic, {"manager": self.instance_id, **data})

    def _job_state(self, job: JobRecord, state: JobState, when: float, replay: bool = False) -> None:
        self.job_counts[job.state] -= 1
        self.job_counts[state] += 1
        job.set_state(state, when)
        if not replay:  # (QCG-PilotJob's job-status event; a few per job)
            self._announce("JST", job=job.name, state=state.name)

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
                self.report.write(report_line(job, idx, self.report_format))
        if job.iterative:
            if not replay:
                self._iteration_ended(job, it, state)
            job.tasks.retire(idx, job.submit_time, self.prune)  # (reported and journalled: into columns)
            self._released(self.deps.wake((job.name, it), state))
        if job.finished == job.total:
            self._job_final(job, when, replay)

    def _job_final(self, job: JobRecord, when: float, replay: bool) -> None:
        job.tasks.settle()
        final = job.final_state()
        if not job.iterative and job.tasks[0].message:
            job.add_message(job.tasks[0].message)
        elif final is JobState.FAILED and job.iterative:
            job.add_message(f"{job.failed} of {job.total} iterations did not succeed")
        self._job_state(job, final, when, replay)
        self.active_jobs -= 1
        self.router.forget(job.name)
        if not replay:
            self._announce("JFI", job=job.name, state=final.name)
            if self.active_jobs == 0:
                self._announce("NOJ")
        if not replay and self.report.enabled:  # on replay the report already holds the job's line
            self.report.write(job_report_line(job, self.report_format))
        job.desc = job.desc.spent()  # (reported and journalled: what it ran is let go)
        self._released(self.deps.wake((job.name, None), final))

    def _omit_job(self, job: JobRecord, reason: str, now: float) -> None:
        job.add_message(reason)
        tasks = job.tasks
        if job.iterative:
            self._end_together(job, tasks.waiting([(0, job.total)]), JobState.OMITTED, now, reason)
        # what is left: tasks with a record, and tasks sent to a partition
        left = {i for i, rec in tasks.made().items() if not rec.state.is_final}
        left.update(i for a, b, _ in tasks.placed_items() for i in range(a, b))
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
