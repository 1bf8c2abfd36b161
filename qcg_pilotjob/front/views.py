"""Read-only views of the registry: job status and info, the job list, the service status
and the report entries. Nothing here changes state.

A task's fields (state, history, runtime, messages) are built by one function,
:func:`task_fields`, for ``jobInfo`` (history as text) and for ``jobs.report`` (history
as a list), so the two never disagree.
"""

from __future__ import annotations

import datetime
import getpass
import json
import json.encoder
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ..states import JobState
from .registry import JobRecord, TaskRecord, format_time
from .reports import format_report

if TYPE_CHECKING:
    from .core import Front

__all__ = ["job_info", "job_list", "job_report_line", "report_entry", "report_line", "resources", "status",
           "task_fields"]

History = List[Tuple[float, JobState]]

#: a string as ``json.dumps`` writes it (ASCII, escaped)
_text: Callable[[str], str] = json.encoder.encode_basestring_ascii


def history_text(history: History) -> str:
    return "".join(f"\n{format_time(t)}: {s.name}" for t, s in history)


def history_list(history: History) -> List[Dict[str, str]]:
    return [{"state": s.name, "date": format_time(t)} for t, s in history]


def task_fields(job: JobRecord, rec: TaskRecord, it: Optional[int], history: Callable[[History], Any],
                message: Optional[str] = None) -> Dict[str, Any]:
    """``history``, ``runtime`` and ``messages`` of one task of ``job`` (iteration ``it``;
    ``message``: the one to show if the task has none of its own)."""
    out: Dict[str, Any] = {"history": history(rec.history_entries(job.submit_time))}
    runtime = job.runtime_view(rec, it)
    if runtime:
        out["runtime"] = runtime
    msg = rec.message or message
    if msg:
        out["messages"] = msg
    return out


def _job_messages(job: JobRecord) -> Optional[str]:
    return "; ".join(job.messages) if job.messages else None


def job_info(job: JobRecord, it: Optional[int], name: str, with_childs: bool) -> Dict[str, Any]:
    """The ``jobInfo`` data of a job (``it`` None) or of one of its iterations."""
    if it is not None:
        rec = job.tasks.view(job.index(it))
        return {"jobName": name, "status": rec.state.name, **task_fields(job, rec, it, history_text)}
    data: Dict[str, Any] = {"jobName": name, "status": job.state.name}
    if not job.iterative:
        data.update(task_fields(job, job.tasks.view(0), None, history_text, _job_messages(job)))
        return data
    data["iterations"] = job.iterations_view()
    data["history"] = history_text(job.history)
    if with_childs:
        childs = []
        for idx in range(job.total):
            rec, child_it = job.tasks.view(idx), job.iteration_of(idx)
            child: Dict[str, Any] = {"iteration": child_it, "state": rec.state.name}
            fields = task_fields(job, rec, child_it, history_text)
            del fields["history"]
            child.update(fields)
            childs.append(child)
        data["childs"] = childs
    msgs = _job_messages(job)
    if msgs:
        data["messages"] = msgs
    return data


def report_entry(job: JobRecord, idx: Optional[int]) -> Dict[str, Any]:
    """The report record of a finished iteration (``idx``) or of a finished job (None)."""
    if idx is not None:
        rec, it = job.tasks.view(idx), job.iteration_of(idx)
        return {"name": f"{job.name}:{it}", "state": rec.state.name,
                **_with_runtime(task_fields(job, rec, it, history_list))}
    entry: Dict[str, Any] = {"name": job.name, "state": job.state.name}
    if job.iterative:
        entry["history"] = history_list(job.history)
        entry["runtime"] = {}  # (QCG-PilotJob's report tools read the key on every entry)
        entry["iterations"] = job.iterations_view()
        msgs = _job_messages(job)
        if msgs:
            entry["messages"] = msgs
    else:
        entry.update(_with_runtime(task_fields(job, job.tasks.view(0), None, history_list)))
        msgs = _job_messages(job)
        if msgs:  # a job's own messages first (they include its task's)
            entry["messages"] = msgs
    raw = job.desc.raw
    for key in ("execution", "resources", "dependencies"):
        if key in raw:
            entry[key] = raw[key]
    return entry


def _with_runtime(fields: Dict[str, Any]) -> Dict[str, Any]:
    """``fields`` with ``runtime`` ({} for a task that never ran) right after ``history``:
    QCG-PilotJob's report tools read the key on every entry."""
    if "runtime" in fields:
        return fields
    return {"history": fields["history"], "runtime": {}, **fields}


def report_line(job: JobRecord, idx: int, fmt: str) -> str:
    """The report line of a finished iteration: ``format_report(report_entry(job, idx), fmt)``,
    with the JSON line put together directly (the same text at a third of the cost: this
    runs once per iteration; ``tests/unit/test_report_lines.py`` compares the two)."""
    if fmt != "json":
        return format_report(report_entry(job, idx), fmt)
    rec, it = job.tasks.view(idx), job.iteration_of(idx)
    parts = _task_json(f"{job.name}:{it}", rec.state, job, rec, it)
    if rec.message:
        parts.append(f',"messages":{_text(rec.message)}')
    parts.append("}\n")
    return "".join(parts)


def _task_json(name: str, state: JobState, job: JobRecord, rec: TaskRecord, it: Optional[int]) -> List[str]:
    """The start of a report line in JSON: name, state, the task's history and runtime."""
    entries = rec.history_entries(job.submit_time)
    parts = [f'{{"name":{_text(name)},"state":"{state.name}","history":[',
             ",".join(f'{{"state":"{s.name}","date":"{format_time(t)}"}}' for t, s in entries),
             "]"]
    runtime = job.runtime_view(rec, it)
    parts.append(',"runtime":{')  # ({} for a task that never ran, as QCG-PilotJob writes: its tools need the key)
    if runtime:
        parts.append(",".join(f"{_text(key)}:{_text(val)}" for key, val in runtime.items()))
    parts.append("}")
    return parts


def job_report_line(job: JobRecord, fmt: str) -> str:
    """The report line of a finished job: ``format_report(report_entry(job, None), fmt)``,
    the JSON line of a job without iterations put together directly, as
    :func:`report_line` does for an iteration."""
    if fmt != "json" or job.iterative:
        return format_report(report_entry(job, None), fmt)
    rec = job.tasks.view(0)
    parts = _task_json(job.name, job.state, job, rec, None)
    messages = _job_messages(job) or rec.message
    if messages:
        parts.append(f',"messages":{_text(messages)}')
    raw = job.desc.raw
    for key in ("execution", "resources", "dependencies"):
        if key in raw:
            parts.append(f',"{key}":{json.dumps(raw[key], separators=(",", ":"), default=str)}')
    parts.append("}\n")
    return "".join(parts)


#: The ``listJobs`` entry of a job without messages, one per state, shared by all such jobs
#: (nothing changes an entry after the reply is built; msgpack and JSON encode each use).
_PLAIN_ENTRY = {state: {"status": state.name} for state in JobState}
#: States in which a job without iterations may show its task's message: a final job has
#: it in ``messages`` already (``Front._job_final`` copies it).
_LIVE = frozenset(state for state in JobState if not state.is_final)


def job_list(jobs: Dict[str, JobRecord]) -> Dict[str, Any]:
    """``listJobs``: each job's state and messages; a job none of whose tasks started yet
    also gets ``inQueue``, its place (0 first) among those jobs in submit order."""
    out: Dict[str, Any] = {}
    plain, live, queued = _PLAIN_ENTRY, _LIVE, JobState.QUEUED
    waiting = 0
    for name, job in jobs.items():
        state = job.state
        message = "; ".join(job.messages) if job.messages else (
            job.tasks.message(0) if state in live and job.desc.iteration is None else None)
        if state is queued:
            entry: Dict[str, Any] = {"status": "QUEUED", "messages": message} if message else {"status": "QUEUED"}
            entry["inQueue"] = waiting
            waiting += 1
            out[name] = entry
        else:
            out[name] = {"status": state.name, "messages": message} if message else plain[state]
    return {"length": len(out), "jobs": out}


def resources(front: Front) -> Dict[str, int]:
    total, used = front.total_cores, front.used_cores
    return {"total_nodes": front.total_nodes, "total_cores": total, "used_cores": used, "free_cores": total - used}


def _account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # (a uid with no passwd entry, as in some containers)
        return str(os.getuid())


def partition_stats(front: Front) -> List[Dict[str, Any]]:
    """Per partition: its state, tasks here (queued, running, ended) and cores in use per
    node as ``[used, total]`` (``status``'s ``PartitionStats``; the live view's)."""
    out = []
    for link in front.links:
        used = link.node_usage() if link.node_usage is not None else link.node_used
        queued = link.dispatched_tasks - link.running - link.succeeded - link.failed
        out.append({
            "name": link.name, "state": "lost" if link.lost else ("stopped" if link.stopped else "live"),
            "host": link.host, "cores": link.pool.total_cores, "used_cores": link.used_cores,
            "queued": max(0, queued), "running": link.running, "succeeded": link.succeeded, "failed": link.failed,
            "nodes": {n.name: [used.get(n.name, 0), len(n.core_ids)] for n in link.pool.nodes}})
    return out


def status(front: Front) -> Dict[str, Any]:
    """The ``status`` request's data (and ``final_status``)."""
    now = time.time()
    c, t = front.job_counts, front.task_counts
    total, used = front.total_cores, front.used_cores
    return {
        "System": {
            "InstanceId": front.instance_id,
            "Host": socket.gethostname(),
            "Started": str(datetime.datetime.fromtimestamp(front.started)),
            "Generated": str(datetime.datetime.fromtimestamp(now)),
            "Uptime": str(datetime.timedelta(seconds=now - front.started)),
            "Zmqaddress": front.zmq_address,
            "StatusPublisher": front.publisher_address,
            "Ifaces": [name.upper() for name in front.interfaces],  # ("ZMQ", "FILE": QCG-PilotJob's names)
            "Account": _account(),
            "Partitions": sum(1 for link in front.links if link.live),
            "Encodings": ["msgpack", "json"],  # (what a client may send; ours pick msgpack)
        },
        "Resources": {"TotalNodes": front.total_nodes, "TotalCores": total, "UsedCores": used,
                      "FreeCores": total - used},
        "JobStats": {
            "TotalJobs": len(front.jobs),
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
