"""The front: request handling, job registry, dependency graph and routing.

There is one front per service. It talks to its partitions only through
:mod:`~qcg_pilotjob.protocol.messages` over :class:`PartitionLink` objects, whether the
partition runs in this process (single-manager mode) or elsewhere (governor mode).

Request handling is synchronous: :meth:`Front.handle_request` takes a request dict and
returns the response dict ``{"code", "message"?, "data"?}`` with the texts of
QCG-PilotJob.
"""

from __future__ import annotations

import datetime
import logging
import socket
import time
import uuid
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from ..errors import JobDescriptionError, RequestError
from ..jobdesc import JobDescription, validate_job_name
from ..partition.scheduler import feasibility
from ..protocol.messages import (
    CancelMsg,
    DispatchMsg,
    ForgetMsg,
    Message,
    NodeLostMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
)
from ..resources import ResourcePool
from ..states import JobState
from ..variables import has_unknown_variable, substitute, substitute_tree
from .journal import Journal, Replay
from .registry import IterRecord, JobRecord
from .reports import LineWriter, format_report, report_entry

__all__ = ["Front", "PartitionLink"]

_log = logging.getLogger(__name__)

Response = Dict[str, Any]


def ok(data: Any = None, message: Optional[str] = None) -> Response:
    resp: Response = {"code": 0}
    if message is not None:
        resp["message"] = message
    if data is not None:
        resp["data"] = data
    return resp


def error(message: str) -> Response:
    return {"code": 1, "message": message}


class PartitionLink:
    """The front's handle on one partition: its resources and a way to send to it.

    ``outstanding`` counts the cores asked for by tasks dispatched there and not yet
    final; routing keeps it within ``window`` so that work stays in the front's queue,
    where any partition that drains early can take it.
    """

    def __init__(self, index: int, name: str, pool: ResourcePool, send: Callable[[Message], None]) -> None:
        self.index = index
        self.name = name
        self.pool = pool          # a replica, used for feasibility checks and totals
        self.send = send
        self.used_cores = 0
        self.stopped = False      # it said it stopped (or it is lost)
        self.lost = False         # it stopped answering; its work was failed or moved
        self.outstanding = 0
        self.window = max(4 * pool.total_cores, 64)
        self.dispatched_tasks = 0

    @property
    def live(self) -> bool:
        return not self.stopped and not self.lost

    @property
    def credit(self) -> int:
        return self.window - self.outstanding


def _ranges(indexes: Sequence[int]) -> List[Tuple[int, int]]:
    out: List[Tuple[int, int]] = []
    for i in indexes:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def _dependency_cycle(descs: Sequence[JobDescription]) -> Optional[List[str]]:
    """A dependency cycle among jobs submitted together, or None. (Jobs registered earlier
    cannot be part of one: their dependencies on unknown jobs were already omitted.)"""
    graph = {d.name: [dep.name for dep in d.dependencies] for d in descs}
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        path, stack = [root], [iter(graph[root])]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif nxt in graph and state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt in graph and nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return None


class Front:
    """Registry, dependencies, routing and every client request."""

    def __init__(self, links: List[PartitionLink], *, instance_id: str, report: LineWriter,
                 report_format: str, journal: Journal, on_change: Optional[Callable[[], None]] = None) -> None:
        self.links = links
        self.instance_id = instance_id
        self.report = report
        self.report_format = report_format
        self.journal = journal
        self.on_change = on_change or (lambda: None)
        self.jobs: Dict[str, JobRecord] = {}
        self.waiters: Dict[Tuple[str, Optional[int]], List[Tuple[JobRecord, Optional[int]]]] = {}
        self.request_counter = 0
        self.job_seq = 0
        self.started = time.time()
        self.finish_requested = False
        self.finish_after_all = False
        self.stopping = False
        self.replaying = False
        # counters, kept incrementally (no scans)
        self.job_counts: Dict[JobState, int] = {s: 0 for s in JobState}
        self.task_counts: Dict[JobState, int] = {s: 0 for s in JobState}
        self.active_jobs = 0
        self.tasks_done = 0
        self._to_dispatch: Dict[str, List[int]] = {}
        self._dispatch_order: List[JobRecord] = []
        #: released tasks not yet sent to a partition, FIFO: [job, sorted task indexes]
        self._ready: Deque[List[Any]] = deque()
        self._weights: Dict[str, int] = {}
        self._fits: Dict[str, Set[int]] = {}
        #: no partition will register any more (a governor that started its own): when the
        #: last one is lost, work that waits for one fails instead of waiting forever
        self.partitions_final = False
        self.zmq_address: Optional[str] = None
        self.publisher_address: Optional[str] = None
        #: status events for clients: publish(topic, data) with IFI/JFI/NOJ topics
        self.publish: Optional[Callable[[str, Dict[str, Any]], None]] = None
        self.interfaces: List[str] = []

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

    # ==== requests ==========================================================================
    def handle_request(self, req: Any) -> Response:
        """Handle one client request; never raises."""
        if not isinstance(req, dict) or not isinstance(req.get("request"), str):
            return error("Invalid request: Invalid request")
        name = req["request"]
        handler = self._handlers.get(name)
        if handler is None:
            return error(f"Invalid request: Unknown request name: {name}")
        self.request_counter += 1
        if self.stopping and name not in ("finish", "status", "resourcesInfo"):
            return error("processing stopped")
        try:
            return handler(self, req)
        except RequestError as exc:
            return error(str(exc))
        except Exception as exc:
            _log.exception("request %s failed", name)
            return error(f"Failed to process request: {type(exc).__name__}: {exc}")
        finally:
            self.flush_dispatch()

    # ---- submit ----------------------------------------------------------------------------
    def _submit_vars(self) -> Dict[str, str]:
        now = datetime.datetime.now()
        return {
            "rcnt": str(self.request_counter),
            "sname": "local",
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H:%M:%S"),
            "dateTime": now.strftime("%Y-%m-%d_%H:%M:%S"),
        }

    def prepare_job(self, raw: Any, base_vars: Dict[str, str]) -> JobDescription:
        if not isinstance(raw, dict):
            raise JobDescriptionError(None, None, "Wrong submit request - wrong job data")
        values = dict(base_vars)
        values["uniq"] = uuid.uuid4().hex
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise JobDescriptionError(None, None, "Missing name in job description")
        name = substitute(name, values)
        if has_unknown_variable(name):
            raise JobDescriptionError(
                None, None, f"Job identifier '{name}' contains invalid characters or unknown variables")
        validate_job_name(name)
        values["jname"] = name
        data = {k: substitute_tree(v, values) for k, v in raw.items() if k != "name"}
        data["name"] = name
        return JobDescription.from_dict(data)

    def _check_fits(self, desc: JobDescription) -> None:
        """Reject (the whole request) a job whose cores or nodes exceed every partition. A
        request for GPUs no node has is accepted and FAILED by the scheduler with a message."""
        problems = []
        live = [link for link in self.links if link.live]
        if not live:
            raise RequestError("Error: no resources available (no partition has registered yet)")
        for link in live:
            problem = feasibility(link.pool, desc, desc.total_iterations, with_gpus=False)
            if problem is None:
                return
            problems.append(problem)
        largest = max(range(len(live)), key=lambda i: live[i].pool.total_cores)
        where = f" (the largest of the {len(live)} partitions)" if len(live) > 1 else ""
        raise RequestError(f"Not enough resources for job {desc.name}: {problems[largest]}{where}")

    def _h_submit(self, req: Dict[str, Any]) -> Response:
        jobs = req.get("jobs")
        if not isinstance(jobs, list) or not jobs:
            return error("Wrong submit request - missing jobs data")
        base_vars = self._submit_vars()
        descs: List[JobDescription] = []
        names: Set[str] = set()
        for raw in jobs:
            desc = self.prepare_job(raw, base_vars)
            if desc.name in self.jobs or desc.name in names:
                raise RequestError(f"Job {desc.name} already exist")
            self._check_fits(desc)
            names.add(desc.name)
            descs.append(desc)
        cycle = _dependency_cycle(descs)
        if cycle is not None:  # those jobs would wait for each other forever
            raise JobDescriptionError(cycle[0], "dependencies", f"dependency cycle: {' -> '.join(cycle)}")
        self.journal.record("submit", jobs=[d.raw for d in descs])
        self.register(descs)
        n = len(descs)
        return ok({"submitted": n, "jobs": [d.name for d in descs]}, f"{n} jobs submitted")

    # ---- queries ---------------------------------------------------------------------------
    @staticmethod
    def _names(req: Dict[str, Any], what: str) -> List[str]:
        names = req.get("jobNames")
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RequestError(f"Wrong {what} request - missing job names")
        return names

    def _lookup(self, name: str) -> Tuple[JobRecord, Optional[int]]:
        base, sep, it = name.partition(":")
        job = self.jobs.get(base if sep else name)
        if job is None:
            raise RequestError(f"Job '{base if sep else name}' doesn't exist")
        if not sep:
            return job, None
        try:
            iteration = int(it)
        except ValueError:
            raise RequestError(f"Unknown iteration {it} for job {base}") from None
        if not job.has_iteration(iteration):
            raise RequestError(f"Unknown iteration {it} for job {base}")
        return job, iteration

    def _h_job_status(self, req: Dict[str, Any]) -> Response:
        out: Dict[str, Any] = {}
        for name in self._names(req, "job status"):
            try:
                job, it = self._lookup(name)
            except RequestError as exc:
                out[name] = {"status": 1, "message": str(exc)}
                continue
            state = job.state if it is None else job.task(it).state
            out[name] = {"status": 0, "data": {"jobName": name, "status": state.name}}
        return ok({"jobs": out})

    def _job_info(self, job: JobRecord, it: Optional[int], name: str, with_childs: bool) -> Dict[str, Any]:
        if it is not None:
            rec = job.task(it)
            data: Dict[str, Any] = {"jobName": name, "status": rec.state.name,
                                    "history": JobRecord.history_text(rec.history_entries(job.submit_time))}
            runtime = JobRecord.runtime_view(rec)
            if runtime:
                data["runtime"] = runtime
            if rec.message:
                data["messages"] = rec.message
            return data
        data = {"jobName": name, "status": job.state.name}
        if job.iterative:
            data["iterations"] = job.iterations_view()
            data["history"] = JobRecord.history_text(job.history)
            if with_childs:
                childs = []
                for idx, rec in enumerate(job.tasks):
                    child: Dict[str, Any] = {"iteration": job.iteration_of(idx), "state": rec.state.name}
                    runtime = JobRecord.runtime_view(rec)
                    if runtime:
                        child["runtime"] = runtime
                    if rec.message:
                        child["messages"] = rec.message
                    childs.append(child)
                data["childs"] = childs
            if job.messages:
                data["messages"] = "; ".join(job.messages)
        else:
            rec = job.tasks[0]
            data["history"] = JobRecord.history_text(rec.history_entries(job.submit_time))
            runtime = JobRecord.runtime_view(rec)
            if runtime:
                data["runtime"] = runtime
            msg = rec.message or ("; ".join(job.messages) if job.messages else None)
            if msg:
                data["messages"] = msg
        return data

    def _h_job_info(self, req: Dict[str, Any]) -> Response:
        params = req.get("params") or {}
        with_childs = bool(params.get("withChilds")) if isinstance(params, dict) else False
        out: Dict[str, Any] = {}
        for name in self._names(req, "job info"):
            try:
                job, it = self._lookup(name)
            except RequestError as exc:
                out[name] = {"status": 1, "message": str(exc)}
                continue
            out[name] = {"status": 0, "data": self._job_info(job, it, name, with_childs)}
        return ok({"jobs": out})

    def _h_list_jobs(self, req: Dict[str, Any]) -> Response:
        jobs: Dict[str, Any] = {}
        for name, job in self.jobs.items():
            entry: Dict[str, Any] = {"status": job.state.name}
            if job.messages:
                entry["messages"] = "; ".join(job.messages)
            elif not job.iterative and job.tasks[0].message:
                entry["messages"] = job.tasks[0].message
            jobs[name] = entry
        return ok({"length": len(jobs), "jobs": jobs})

    def _h_resources(self, req: Dict[str, Any]) -> Response:
        total = self.total_cores
        used = self.used_cores
        return ok({"total_nodes": self.total_nodes, "total_cores": total, "used_cores": used,
                   "free_cores": total - used})

    def status_data(self) -> Dict[str, Any]:
        now = time.time()
        c = self.job_counts
        t = self.task_counts
        return {
            "System": {
                "InstanceId": self.instance_id,
                "Host": socket.gethostname(),
                "Started": str(datetime.datetime.fromtimestamp(self.started)),
                "Generated": str(datetime.datetime.fromtimestamp(now)),
                "Uptime": str(datetime.timedelta(seconds=now - self.started)),
                "Zmqaddress": self.zmq_address,
                "StatusPublisher": self.publisher_address,
                "Ifaces": list(self.interfaces),
                "Partitions": sum(1 for link in self.links if link.live),
            },
            "Resources": {
                "TotalNodes": self.total_nodes,
                "TotalCores": self.total_cores,
                "UsedCores": self.used_cores,
                "FreeCores": self.total_cores - self.used_cores,
            },
            "JobStats": {
                "TotalJobs": len(self.jobs),
                "InScheduleJobs": c[JobState.QUEUED] + c[JobState.SCHEDULED],
                "ExecutingJobs": c[JobState.EXECUTING],
                "FinishedJobs": c[JobState.SUCCEED],
                "FailedJobs": c[JobState.FAILED],
                "CanceledJobs": c[JobState.CANCELED],
                "OmittedJobs": c[JobState.OMITTED],
            },
            "IterationStats": {
                "TotalIterations": sum(t.values()),
                "InScheduleIterations": t[JobState.QUEUED] + t[JobState.SCHEDULED],
                "ExecutingIterations": t[JobState.EXECUTING],
                "FinishedIterations": t[JobState.SUCCEED],
                "FailedIterations": t[JobState.FAILED],
                "CanceledIterations": t[JobState.CANCELED],
                "OmittedIterations": t[JobState.OMITTED],
            },
        }

    def _h_status(self, req: Dict[str, Any]) -> Response:
        options = req.get("options") or {}
        if isinstance(options, dict) and options.get("allJobsFinished"):
            return ok({"AllJobsFinished": self.all_done})
        return ok(self.status_data())

    # ---- control ---------------------------------------------------------------------------
    def _h_control(self, req: Dict[str, Any]) -> Response:
        command = req.get("command")
        if not command:
            return error("Wrong control request - missing command")
        if command != "finishAfterAllTasksDone":
            return error(f'Wrong control request - unknown command "{command}"')
        if self.finish_after_all or self.finish_requested:
            return error("Finish request already requested")
        self.finish_after_all = True
        self.journal.record("control", command=command)
        self.on_change()
        return ok(message="finishAfterAllTasksDone command accepted")

    def _h_finish(self, req: Dict[str, Any]) -> Response:
        if self.finish_requested:
            return error("Finish request already requested")
        self.finish_requested = True
        self.on_change()
        return ok({"when": "0s"})

    def _h_cancel(self, req: Dict[str, Any]) -> Response:
        errors: Dict[str, str] = {}
        canceled = 0
        now = time.time()
        for name in self._names(req, "cancel job"):
            try:
                job, it = self._lookup(name)
            except RequestError as exc:
                errors[name] = str(exc)
                continue
            if it is None:
                if job.state.is_final:
                    errors[name] = f"Job '{name}' already finished ({job.state.name})"
                    continue
                job.cancel_requested = True
                targets = [idx for idx, rec in enumerate(job.tasks) if not rec.state.is_final]
            else:
                idx = job.index(it)
                if job.tasks[idx].state.is_final:
                    errors[name] = f"Iteration '{name}' already finished ({job.tasks[idx].state.name})"
                    continue
                targets = [idx]
            by_part: Dict[int, List[Optional[int]]] = {}
            for idx in targets:
                rec = job.tasks[idx]
                if rec.partition < 0:
                    self._task_final(job, idx, JobState.CANCELED, now, None, "canceled by user")
                else:
                    by_part.setdefault(rec.partition, []).append(job.iteration_of(idx))
            pending = self._to_dispatch.get(job.name)
            if pending is not None:
                cancelled = set(targets)
                self._to_dispatch[job.name] = [i for i in pending if i not in cancelled]
            for part, its in by_part.items():
                whole = it is None and len(its) == sum(1 for r in job.tasks if r.partition == part
                                                       and not r.state.is_final)
                self.links[part].send(CancelMsg(job.name, None if whole else its))
            canceled += 1
        data: Dict[str, Any] = {"canceled": canceled}
        if errors:
            data["errors"] = errors
        return ok(data, f"{canceled} jobs canceled")

    def _h_remove(self, req: Dict[str, Any]) -> Response:
        errors: Dict[str, str] = {}
        removed: List[str] = []
        for name in self._names(req, "remove job"):
            job = self.jobs.get(name)
            if job is None:
                errors[name] = f"Job '{name}' doesn't exist"
                continue
            if not job.state.is_final:
                errors[name] = f"Job '{name}' not finished - can not be removed"
                continue
            self._forget(job)
            removed.append(name)
        if removed:
            self.journal.record("remove", jobs=removed)
            for link in self.links:
                link.send(ForgetMsg(removed))
        data: Dict[str, Any] = {"removed": len(removed)}
        if errors:
            data["errors"] = errors
        return ok(data)

    def _forget(self, job: JobRecord) -> None:
        del self.jobs[job.name]
        self.job_counts[job.state] -= 1
        for rec in job.tasks:
            self.task_counts[rec.state] -= 1

    def _h_register(self, req: Dict[str, Any]) -> Response:
        return error("Register manager request not supported in this kind of manager (direct)")

    def _h_notify(self, req: Dict[str, Any]) -> Response:
        return error("Operation not supported")

    _handlers: Dict[str, Callable[[Front, Dict[str, Any]], Response]] = {
        "submit": _h_submit,
        "listJobs": _h_list_jobs,
        "jobStatus": _h_job_status,
        "jobInfo": _h_job_info,
        "cancelJob": _h_cancel,
        "removeJob": _h_remove,
        "resourcesInfo": _h_resources,
        "status": _h_status,
        "control": _h_control,
        "finish": _h_finish,
        "register": _h_register,
        "notify": _h_notify,
    }

    # ==== registry and dependencies ===========================================================
    def register(self, descs: List[JobDescription],
                 restored: Optional[Dict[Tuple[str, Optional[int]], Dict[str, Any]]] = None) -> None:
        """Add jobs (all names unique) and release those whose dependencies are met."""
        now = time.time()
        records = []
        for desc in descs:
            job = JobRecord(desc, now, self.job_seq)
            self.job_seq += 1
            self.jobs[desc.name] = job
            self.job_counts[JobState.QUEUED] += 1
            self.task_counts[JobState.QUEUED] += job.total
            self.active_jobs += 1
            records.append(job)
        if restored:
            for job in records:
                self._restore(job, restored)
        for job in records:
            if not job.state.is_final:
                self._resolve(job)
        self.on_change()

    def _restore(self, job: JobRecord, restored: Dict[Tuple[str, Optional[int]], Dict[str, Any]]) -> None:
        if job.iterative:
            for idx in range(job.total):
                rec = restored.get((job.name, job.iteration_of(idx)))
                if rec is not None:
                    self._task_final(job, idx, JobState.parse(rec["s"]), float(rec.get("w", time.time())),
                                     rec.get("r"), rec.get("m"), replay=True)
        else:
            rec = restored.get((job.name, None))
            if rec is not None:
                self._task_final(job, 0, JobState.parse(rec["s"]), float(rec.get("w", time.time())),
                                 rec.get("r"), rec.get("m"), replay=True)

    def _dep_state(self, name: str, iteration: Optional[int]) -> Tuple[Optional[JobState], str]:
        target = self.jobs.get(name)
        if target is None:
            return None, f"dependency '{name}' is not a known job"
        if iteration is None:
            return target.state, ""
        if not target.has_iteration(iteration):
            return None, f"dependency '{name}:{iteration}' does not exist"
        return target.task(iteration).state, ""

    def _resolve(self, job: JobRecord) -> None:
        now = time.time()
        for dep in job.desc.dependencies:
            if dep.per_iteration:
                continue
            state, problem = self._dep_state(dep.name, dep.iteration)
            if state is None:
                self._omit_job(job, problem, now)
                return
            if state.is_final:
                if state is not JobState.SUCCEED:
                    self._omit_job(job, f"dependency '{dep}' finished {state.name}", now)
                    return
                continue
            self.waiters.setdefault((dep.name, dep.iteration), []).append((job, None))
            job.deps_pending += 1
        per_iter = [d for d in job.desc.dependencies if d.per_iteration]
        if per_iter:
            job.iter_pending = [0] * job.total
            for dep in per_iter:
                if dep.name not in self.jobs:
                    self._omit_job(job, f"dependency '{dep.name}' is not a known job", now)
                    return
                for idx in range(job.total):
                    if job.tasks[idx].state.is_final:
                        continue
                    it = job.iteration_of(idx)
                    state, problem = self._dep_state(dep.name, it)
                    if state is None:
                        self._task_final(job, idx, JobState.OMITTED, now, None, problem)
                    elif state.is_final:
                        if state is not JobState.SUCCEED:
                            self._task_final(job, idx, JobState.OMITTED, now, None,
                                             f"dependency '{dep.name}:{it}' finished {state.name}")
                    else:
                        self.waiters.setdefault((dep.name, it), []).append((job, it))
                        job.iter_pending[idx] += 1
        if job.deps_pending == 0 and not job.state.is_final:
            self._release(job)

    def _release(self, job: JobRecord) -> None:
        pend = job.iter_pending
        ready = [idx for idx, rec in enumerate(job.tasks)
                 if rec.partition < 0 and not rec.state.is_final and (pend is None or pend[idx] == 0)]
        if ready:
            self._queue_dispatch(job, ready)

    def _queue_dispatch(self, job: JobRecord, idxs: List[int]) -> None:
        pending = self._to_dispatch.get(job.name)
        if pending is None:
            self._to_dispatch[job.name] = list(idxs)
            self._dispatch_order.append(job)
        else:
            pending.extend(idxs)

    def flush_dispatch(self) -> None:
        """Move what was released since the last call to the ready queue and route it."""
        if self._dispatch_order:
            order, self._dispatch_order = self._dispatch_order, []
            pending, self._to_dispatch = self._to_dispatch, {}
            for job in order:
                idxs = pending.get(job.name)
                if idxs and self.jobs.get(job.name) is job:
                    self._ready.append([job, sorted(idxs)])
        self._route_ready()

    def has_pending_dispatch(self) -> bool:
        return bool(self._dispatch_order) or bool(self._ready)

    #: how many ready-queue entries routing may look past a head that fits nowhere now
    ROUTE_LOOKAHEAD = 64

    def _weight(self, job: JobRecord, link: PartitionLink) -> int:
        """Cores one task of ``job`` holds at least (for the routing window)."""
        weight = self._weights.get(job.name)
        if weight is None:
            res = job.desc.resources
            if res.nodes is not None:
                weight = res.nodes.minimum * (res.cores.minimum if res.cores else link.pool.max_node_cores)
            else:
                weight = res.cores.minimum if res.cores else 1
            self._weights[job.name] = weight
        return weight

    def _route_ready(self) -> None:
        """Send ready tasks to partitions, each within its window, the emptiest first.

        With one live partition there is no window: everything goes at once, and the
        partition's scheduler orders it. A job whose iterations use an iteration resource
        scheduler goes to one partition as a whole (the scheduler divides that partition).
        """
        live = [link for link in self.links if link.live]
        if not live and self.partitions_final and self._ready:
            # every partition is gone and no other will come: what waits cannot run
            now = time.time()
            ready, self._ready = self._ready, deque()
            for entry in ready:
                stuck: JobRecord = entry[0]
                for idx in entry[1]:
                    if self.jobs.get(stuck.name) is stuck and not stuck.tasks[idx].state.is_final:
                        self._task_final(stuck, idx, JobState.FAILED, now, None,
                                         "no live partition is left to run it")
            return
        if not live or not self._ready:
            return
        single = len(live) == 1
        if not single and all(lk.credit <= 0 and lk.outstanding > 0 for lk in live):
            return  # every window is full: the next final event calls again
        scanned = 0
        entry_pos = 0
        while entry_pos < len(self._ready) and scanned < self.ROUTE_LOOKAHEAD:
            job: JobRecord = self._ready[entry_pos][0]
            idxs: List[int] = self._ready[entry_pos][1]
            if self.jobs.get(job.name) is not job:
                del self._ready[entry_pos]
                continue
            idxs = [i for i in idxs if job.tasks[i].partition < 0 and not job.tasks[i].state.is_final]
            if not idxs:
                del self._ready[entry_pos]
                continue
            fits = self._fitting(job, live)
            if not fits:  # (partitions were lost) nothing left that can run it
                now = time.time()
                for idx in idxs:
                    self._task_final(job, idx, JobState.FAILED, now, None,
                                     "Not enough resources: no live partition can run it")
                del self._ready[entry_pos]
                continue
            link = max(fits, key=lambda lk: lk.credit)
            res = job.desc.resources
            whole = bool((res.cores and res.cores.scheduler) or (res.nodes and res.nodes.scheduler))
            weight = self._weight(job, link)
            if single or whole:
                take = len(idxs)
            else:
                take = min(len(idxs), link.credit // weight)
                others = [lk.credit for lk in fits if lk is not link and lk.credit >= weight]
                if take > 0 and others:
                    # not all to the emptiest while another has room too: what is left of the
                    # job after this chunk goes to the next one (share alike, or level off)
                    share = max(-(-len(idxs) // (len(others) + 1)), (link.credit - max(others)) // weight)
                    take = min(take, share)
                batch = max(1, link.window // (4 * weight))
                if 0 < take < batch and take < len(idxs) and link.outstanding >= batch * weight:
                    # top a busy partition up by a batch at a time, not by one task per event:
                    # a message per task would cost more than the task (it still has work queued)
                    self._ready[entry_pos][1] = idxs
                    break
                if take <= 0:
                    if link.outstanding == 0:
                        take = 1  # a task larger than the window still goes
                    else:
                        self._ready[entry_pos][1] = idxs
                        if all(lk.credit <= 0 for lk in live):
                            break  # no window has room: later entries cannot go either
                        entry_pos += 1
                        scanned += 1
                        continue
            chunk, rest = idxs[:take], idxs[take:]
            self._send_tasks(link, job, chunk, weight)
            if rest:
                self._ready[entry_pos][1] = rest
            else:
                del self._ready[entry_pos]

    def _fitting(self, job: JobRecord, live: List[PartitionLink]) -> List[PartitionLink]:
        """The live partitions ``job`` fits in (cached per job)."""
        fit = self._fits.get(job.name)
        if fit is None:
            fit = {lk.index for lk in self.links
                   if feasibility(lk.pool, job.desc, job.total, with_gpus=False) is None}
            self._fits[job.name] = fit
        return [lk for lk in live if lk.index in fit]

    def _send_tasks(self, link: PartitionLink, job: JobRecord, idxs: List[int], weight: int) -> None:
        for idx in idxs:
            job.tasks[idx].partition = link.index
        link.outstanding += weight * len(idxs)
        link.dispatched_tasks += len(idxs)
        if job.iterative:
            start = job.desc.iteration.start if job.desc.iteration else 0
            its: Optional[List[Tuple[int, int]]] = [(a + start, b + start) for a, b in _ranges(idxs)]
        else:
            its = None
        link.send(DispatchMsg(job.desc, job.total, its))

    # ==== partitions come and go =============================================================
    def add_link(self, name: str, pool: ResourcePool, send: Callable[[Message], None]) -> PartitionLink:
        link = PartitionLink(len(self.links), name, pool, send)
        self.links.append(link)
        self._fits.clear()
        self._route_ready()
        self.on_change()
        return link

    def lose_link(self, link: PartitionLink, reason: str) -> None:
        """A partition stopped answering. Its running tasks are FAILED with ``reason`` (a
        task may have had side effects, so it is not run twice); tasks it had not started
        go back to the ready queue for the other partitions."""
        if link.lost:
            return
        link.lost = True
        link.used_cores = 0
        link.outstanding = 0
        _log.error("%s", reason)
        now = time.time()
        requeue: List[List[Any]] = []
        for job in list(self.jobs.values()):
            back = []
            for idx, rec in enumerate(job.tasks):
                if rec.partition != link.index or rec.state.is_final:
                    continue
                if rec.state is JobState.QUEUED:
                    rec.partition = -1
                    back.append(idx)
                else:
                    self._task_final(job, idx, JobState.FAILED, now, None, reason)
            if back and not job.state.is_final:
                requeue.append([job, back])
        self._ready.extendleft(reversed(requeue))
        self._route_ready()
        self.on_change()

    def _omit_job(self, job: JobRecord, reason: str, now: float) -> None:
        job.add_message(reason)
        for idx, rec in enumerate(job.tasks):
            if not rec.state.is_final:
                self._task_final(job, idx, JobState.OMITTED, now, None, reason)

    # ==== state changes =======================================================================
    def on_message(self, link: PartitionLink, msg: Message) -> None:
        if isinstance(msg, TaskEventsMsg):
            if link.lost:
                return  # its tasks were failed or moved when it was declared lost
            link.used_cores = msg.used_cores
            for ev in msg.events:
                if ev.state >= JobState.SUCCEED:  # a final state frees room in the window
                    link.outstanding -= self._weights.get(ev.job, 1)
                self._apply(ev)
            self.flush_dispatch()
            self.on_change()
        elif isinstance(msg, StoppedMsg):
            link.stopped = True
            self.on_change()
        elif isinstance(msg, NodeLostMsg):
            link.pool.disable_node(msg.node)
            link.window = max(4 * link.pool.total_cores, 64)
            self._fits.clear()
            self.on_change()

    def _apply(self, ev: TaskEvent) -> None:
        job = self.jobs.get(ev.job)
        if job is None:
            return  # removed meanwhile
        if ev.iteration is not None and not job.has_iteration(ev.iteration):
            return
        idx = job.index(ev.iteration)
        rec = job.tasks[idx]
        if rec.state.is_final:
            return
        state = JobState(ev.state)
        data = ev.data or {}
        if state is JobState.QUEUED:  # still waiting, with a reason (e.g. the allocation's time)
            if data.get("message"):
                job.add_message(str(data["message"]))
            return
        if state is JobState.EXECUTING and rec.state is JobState.EXECUTING:
            # a later word on a running task: its pid, known once a node agent started it
            if rec.runtime is not None and "pid" in data:
                rec.runtime["pid"] = data["pid"]
                self.journal.record("run", j=job.name, i=ev.iteration, p=data["pid"], w=ev.time)
            return
        if state is JobState.EXECUTING:
            self.task_counts[rec.state] -= 1
            self.task_counts[JobState.EXECUTING] += 1
            rec.set_state(JobState.SCHEDULED, ev.time, job.submit_time)
            rec.set_state(JobState.EXECUTING, ev.time, job.submit_time)
            rec.runtime = {k: data[k] for k in ("allocation", "wd", "pid") if k in data}
            if "pid" in data:  # lets a resume stop processes a killed service left behind
                self.journal.record("run", j=job.name, i=ev.iteration, p=data["pid"], w=ev.time)
            if job.state is JobState.QUEUED:
                self._job_state(job, JobState.EXECUTING, ev.time)
            return
        runtime = dict(rec.runtime or {})
        for key in ("allocation", "exit_code", "rtime"):
            if key in data:
                runtime[key] = data[key]
        self._task_final(job, idx, state, ev.time, runtime or None, data.get("message"))

    def _job_state(self, job: JobRecord, state: JobState, when: float) -> None:
        self.job_counts[job.state] -= 1
        self.job_counts[state] += 1
        job.set_state(state, when)

    def _task_final(self, job: JobRecord, idx: int, state: JobState, when: float,
                    runtime: Optional[Dict[str, Any]], message: Optional[str], replay: bool = False) -> None:
        rec: IterRecord = job.tasks[idx]
        if rec.state.is_final:
            return
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
        it = job.iteration_of(idx)
        # a task stopped because the service stops is not final for a resume: it runs again
        interrupted = self.stopping and state in (JobState.CANCELED, JobState.OMITTED)
        if not replay:
            if not interrupted:
                self.journal.record("final", j=job.name, i=it, s=state.name, w=when, r=rec.runtime, m=rec.message)
            if job.iterative:
                self.report.write(format_report(report_entry(job, idx), self.report_format))
        if job.iterative:
            if self.publish is not None and not replay:
                self.publish("IFI", {"job": job.name, "it": it, "state": state.name})
            self._wake((job.name, it), state)
        if job.finished == job.total:
            self._job_final(job, when, replay)

    def _job_final(self, job: JobRecord, when: float, replay: bool) -> None:
        if not job.iterative:
            final = job.tasks[0].state
            if job.tasks[0].message:
                job.add_message(job.tasks[0].message)
        elif job.cancel_requested:
            final = JobState.CANCELED
        elif job.failed == 0:
            final = JobState.SUCCEED
        elif all(r.state is JobState.OMITTED for r in job.tasks):
            final = JobState.OMITTED
        elif all(r.state is JobState.CANCELED for r in job.tasks):  # e.g. all stopped by the service's end
            final = JobState.CANCELED
        else:
            final = JobState.FAILED
            job.add_message(f"{job.failed} of {job.total} iterations did not succeed")
        self._job_state(job, final, when)
        self.active_jobs -= 1
        self._weights.pop(job.name, None)
        self._fits.pop(job.name, None)
        if self.publish is not None and not replay:
            self.publish("JFI", {"job": job.name, "state": final.name})
            if self.active_jobs == 0:
                self.publish("NOJ", {})
        if not replay:  # on replay the report already holds the job's line
            self.report.write(format_report(report_entry(job, None), self.report_format))
        self._wake((job.name, None), final)

    def _wake(self, key: Tuple[str, Optional[int]], state: JobState) -> None:
        waiting = self.waiters.pop(key, None)
        if not waiting:
            return
        now = time.time()
        name = f"{key[0]}:{key[1]}" if key[1] is not None else key[0]
        for job, it in waiting:
            if job.state.is_final or self.jobs.get(job.name) is not job:
                continue
            if it is None:
                if state is JobState.SUCCEED:
                    job.deps_pending -= 1
                    if job.deps_pending == 0:
                        self._release(job)
                else:
                    self._omit_job(job, f"dependency '{name}' finished {state.name}", now)
            else:
                idx = job.index(it)
                if job.tasks[idx].state.is_final:
                    continue
                if state is JobState.SUCCEED:
                    assert job.iter_pending is not None
                    job.iter_pending[idx] -= 1
                    if job.iter_pending[idx] == 0 and job.deps_pending == 0:
                        self._queue_dispatch(job, [idx])
                else:
                    self._task_final(job, idx, JobState.OMITTED, now, None,
                                     f"dependency '{name}' finished {state.name}")

    # ==== resume ==============================================================================
    def replay(self, replay: Replay) -> int:
        """Rebuild the registry from a journal; returns the number of jobs restored."""
        count = 0
        for kind, items, finals in replay.steps:
            if kind == "submit":
                descs = [JobDescription.from_dict(raw) for raw in items]
                descs = [d for d in descs if d.name not in self.jobs]
                self.register(descs, restored=finals)
                count += len(descs)
            else:
                for name in items:
                    job = self.jobs.get(name)
                    if job is not None and job.state.is_final:
                        self._forget(job)
        if replay.finish_after_all:
            self.finish_after_all = True
        self.flush_dispatch()
        return count
