"""Client requests: each is checked, then answered from a view or turned into a call on
the front. Answers are ``{"code", "message"?, "data"?}`` with QCG-PilotJob's texts.

A request that is not a dict with a string ``request`` is ``Invalid request``; a field of
the wrong type or shape is an error naming the field; nothing a client sends can raise
out of :meth:`Requests.handle`.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple

from ..errors import INVALID_REQUEST, InvalidRequest, JobDescriptionError, RequestError
from ..jobdesc import MAX_JOBS_PER_SUBMIT, MAX_TASKS_PER_SUBMIT, JobDescription, check_values, validate_job_name
from ..partition.scheduler import unfit_reason
from ..variables import has_unknown_variable, substitute, substitute_tree
from . import views
from .dependencies import dependency_cycle
from .registry import JobRecord

if TYPE_CHECKING:
    from .core import Front

__all__ = ["Requests", "Response", "error", "ok"]

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


#: requests still answered while the service stops
_WHILE_STOPPING = ("finish", "status", "resourcesInfo")


class _JobValues(Dict[str, str]):
    """The variables of one job; ``uniq`` is made when first asked for (a uuid4 per job
    cost 4% of a submit of jobs that do not use it)."""

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:  # type: ignore[override]
        if key == "uniq" and key not in self:
            self[key] = uuid.uuid4().hex
        return super().get(key, default)


def prepare_job(raw: Any, base_vars: Dict[str, str]) -> JobDescription:
    """A submitted job description with its variables substituted, validated."""
    if not isinstance(raw, dict):
        raise JobDescriptionError(None, None, "Wrong submit request - wrong job data", malformed=True)
    check_values(raw)  # before any message quotes a value
    values = _JobValues(base_vars)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise JobDescriptionError(None, None, "Missing name in job description", malformed=True)
    name = substitute(name, values)
    if has_unknown_variable(name):
        raise JobDescriptionError(
            None, None, f"Job identifier '{name}' contains invalid characters or unknown variables")
    validate_job_name(name)
    values["jname"] = name
    data = {k: substitute_tree(v, values) for k, v in raw.items() if k != "name"}
    data["name"] = name
    return JobDescription.from_dict(data)


def job_names(req: Dict[str, Any], what: str) -> List[str]:
    names = req.get("jobNames")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InvalidRequest(f"Wrong {what} request - missing job names")
    return names


class Requests:
    """The request handlers of one front."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.counter = 0

    def handle(self, req: Any) -> Response:
        """Handle one client request; never raises."""
        if not isinstance(req, dict) or not isinstance(req.get("request"), str):
            return error(INVALID_REQUEST + "Invalid request")
        name = req["request"]
        handler = self._handlers.get(name)
        if handler is None:
            return error(f"{INVALID_REQUEST}Unknown request name: {name}")
        self.counter += 1
        if self.front.stopping and name not in _WHILE_STOPPING:
            return error("processing stopped")
        try:
            return handler(self, req)
        except RequestError as exc:
            return error(str(exc))
        except Exception as exc:
            _log.exception("request %s failed", name)
            return error(f"Failed to process request: {type(exc).__name__}: {exc}")
        finally:
            self.front.flush_dispatch()

    # --- submit --------------------------------------------------------------------------
    def _submit_vars(self) -> Dict[str, str]:
        now = datetime.datetime.now()
        return {"rcnt": str(self.counter), "sname": "local", "date": now.strftime("%Y-%m-%d"),
                "time": now.strftime("%H:%M:%S"), "dateTime": now.strftime("%Y-%m-%d_%H:%M:%S")}

    def _check_fits(self, desc: JobDescription) -> None:
        """Reject (the whole request) a job whose cores or nodes exceed every partition. A
        request for GPUs no node has is accepted and FAILED by the scheduler with a message."""
        live = [link for link in self.front.links if link.live]
        if not live:
            if self.front.links:  # (some registered, and every one of them was lost)
                raise RequestError(f"Error: no resources available (all {len(self.front.links)} partitions "
                                   f"were lost)")
            raise RequestError("Error: no resources available (no partition has registered yet)")
        problems = []
        for link in live:
            problem = unfit_reason(link.pool, desc, desc.total_iterations, with_gpus=False)
            if problem is None:
                return
            problems.append(problem)
        largest = max(range(len(live)), key=lambda i: live[i].pool.total_cores)
        where = f" (the largest of the {len(live)} partitions)" if len(live) > 1 else ""
        raise RequestError(f"Not enough resources for job {desc.name}: {problems[largest]}{where}")

    def _submit(self, req: Dict[str, Any]) -> Response:
        jobs = req.get("jobs")
        if not isinstance(jobs, list) or not jobs:
            raise InvalidRequest("Wrong submit request - missing jobs data")
        if len(jobs) > MAX_JOBS_PER_SUBMIT:
            return error(f"Wrong submit request - one submit may hold at most {MAX_JOBS_PER_SUBMIT} jobs, "
                         f"not {len(jobs)}")
        base_vars = self._submit_vars()
        descs: List[JobDescription] = []
        names: Set[str] = set()
        tasks = 0
        for raw in jobs:
            desc = prepare_job(raw, base_vars)
            if desc.name in self.front.jobs or desc.name in names:
                raise RequestError(f"Job {desc.name} already exist")
            tasks += desc.total_iterations
            if tasks > MAX_TASKS_PER_SUBMIT:
                raise JobDescriptionError(desc.name, "iteration", f"one submit may hold at most "
                                          f"{MAX_TASKS_PER_SUBMIT} tasks (iterations of all its jobs); "
                                          f"with this job it holds {tasks}")
            self._check_fits(desc)
            names.add(desc.name)
            descs.append(desc)
        cycle = dependency_cycle(descs)
        if cycle is not None:  # those jobs would wait for each other forever
            raise JobDescriptionError(cycle[0], "dependencies", f"dependency cycle: {' -> '.join(cycle)}")
        self.front.submit(descs)
        return ok({"submitted": len(descs), "jobs": [d.name for d in descs]}, f"{len(descs)} jobs submitted")

    # --- queries -------------------------------------------------------------------------
    def _lookup(self, name: str) -> Tuple[JobRecord, Optional[int]]:
        base, sep, it = name.partition(":")
        job = self.front.jobs.get(base if sep else name)
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

    def _per_name(self, req: Dict[str, Any], what: str,
                  view: Callable[[JobRecord, Optional[int], str], Dict[str, Any]]) -> Response:
        out: Dict[str, Any] = {}
        for name in job_names(req, what):
            try:
                job, it = self._lookup(name)
            except RequestError as exc:
                out[name] = {"status": 1, "message": str(exc)}
                continue
            out[name] = {"status": 0, "data": view(job, it, name)}
        return ok({"jobs": out})

    def _job_status(self, req: Dict[str, Any]) -> Response:
        def view(job: JobRecord, it: Optional[int], name: str) -> Dict[str, Any]:
            state = job.state if it is None else job.task(it).state
            return {"jobName": name, "status": state.name}

        return self._per_name(req, "job status", view)

    def _job_info(self, req: Dict[str, Any]) -> Response:
        params = req.get("params") or {}
        with_childs = bool(params.get("withChilds")) if isinstance(params, dict) else False
        return self._per_name(req, "job info",
                              lambda job, it, name: views.job_info(job, it, name, with_childs))

    def _list_jobs(self, req: Dict[str, Any]) -> Response:
        return ok(views.job_list(self.front.jobs))

    def _resources(self, req: Dict[str, Any]) -> Response:
        return ok(views.resources(self.front))

    def _status(self, req: Dict[str, Any]) -> Response:
        options = req.get("options") or {}
        if isinstance(options, dict) and options.get("allJobsFinished"):
            return ok({"AllJobsFinished": self.front.all_done})
        data = views.status(self.front)
        if isinstance(options, dict) and options.get("partitions"):  # (the live view's; not QCG-PilotJob's)
            data["PartitionStats"] = views.partition_stats(self.front)
        return ok(data)

    # --- control -------------------------------------------------------------------------
    def _control(self, req: Dict[str, Any]) -> Response:
        command = req.get("command")
        if not command:
            raise InvalidRequest("Wrong control request - missing command")
        if command != "finishAfterAllTasksDone":
            raise InvalidRequest(f'Wrong control request - unknown command "{command}"')
        if not self.front.request_finish_after_all():
            return error("Finish request already requested")
        return ok(message="finishAfterAllTasksDone command accepted")

    def _finish(self, req: Dict[str, Any]) -> Response:
        if not self.front.request_finish():
            return error("Finish request already requested")
        return ok({"when": "0s"})

    def _cancel(self, req: Dict[str, Any]) -> Response:
        errors: Dict[str, str] = {}
        canceled = 0
        for name in job_names(req, "cancel job"):
            try:
                job, it = self._lookup(name)
            except RequestError as exc:
                errors[name] = str(exc)
                continue
            if it is None and job.state.is_final:
                errors[name] = f"Job '{name}' already finished ({job.state.name})"
                continue
            if it is not None and job.task(it).state.is_final:
                errors[name] = f"Iteration '{name}' already finished ({job.task(it).state.name})"
                continue
            self.front.cancel(job, it)
            canceled += 1
        data: Dict[str, Any] = {"canceled": canceled}
        if errors:
            data["errors"] = errors
        return ok(data, f"{canceled} jobs canceled")

    def _remove(self, req: Dict[str, Any]) -> Response:
        errors: Dict[str, str] = {}
        removable: List[JobRecord] = []
        for name in job_names(req, "remove job"):
            job = self.front.jobs.get(name)
            if job is None or job in removable:  # (the second time: removed already)
                errors[name] = f"Job '{name}' doesn't exist"
            elif not job.state.is_final:
                errors[name] = f"Job '{name}' not finished - can not be removed"
            else:
                removable.append(job)
        self.front.remove(removable)
        data: Dict[str, Any] = {"removed": len(removable)}
        if errors:
            data["errors"] = errors
        return ok(data)

    def _register(self, req: Dict[str, Any]) -> Response:
        return error("Register manager request not supported in this kind of manager (direct)")

    def _notify(self, req: Dict[str, Any]) -> Response:
        return error("Operation not supported")

    _handlers: Dict[str, Callable[[Requests, Dict[str, Any]], Response]] = {
        "submit": _submit,
        "listJobs": _list_jobs,
        "jobStatus": _job_status,
        "jobInfo": _job_info,
        "cancelJob": _cancel,
        "removeJob": _remove,
        "resourcesInfo": _resources,
        "status": _status,
        "control": _control,
        "finish": _finish,
        "register": _register,
        "notify": _notify,
    }
