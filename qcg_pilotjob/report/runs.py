"""A run read from its files: the tasks of ``jobs.report`` (text or JSON lines) with their
times and cores, and what ``final_status`` and the journal say of the service.

The report has one entry per finished task (a job without iterations, or one iteration
``job:i``) and one per finished job with iterations (``iterations`` counts, no runtime).
Entries are read as they are: a run still going has the tasks finished so far. A governor
run's report is the governor's (one file for every partition); the partition of a task is
the one whose nodes hold it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from ..api.jobinfo import parse_allocation, parse_rtime
from ..auxdir import AUX_PREFIX, newest_aux_dir
from ..errors import QCGError
from ..front.journal import JOURNAL_NAME
from ..service.nodefile import NODES_FILE

__all__ = ["Run", "RunError", "TaskRun", "load_run", "parse_report"]

FINAL = ("SUCCEED", "FAILED", "CANCELED", "OMITTED")
_HEAD = re.compile(r"^(?P<name>\S+) \((?P<state>[A-Z]+)\)(?: (?P<messages>.*))?$")
_HISTORY = re.compile(r"^(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?): (?P<state>[A-Z]+)$")
_ITERATIONS = re.compile(r"^iterations: (\d+) total, (\d+) finished, (\d+) failed$")


class RunError(QCGError):
    """The directory holds no run, or its report cannot be read."""


def parse_time(text: str) -> float:
    """A history date (local time, as the service writes it) as a POSIX time."""
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.datetime.strptime(text, fmt).timestamp()


class TaskRun:
    """One finished task: a job without iterations or one iteration."""

    __slots__ = ("exit_code", "finished", "history", "iteration", "job", "messages", "name", "nodes", "partition",
                 "pid", "pname", "queued", "rtime", "started", "state", "wd")
    #: the order :meth:`as_dict` gives the fields in
    FIELDS = ("name", "job", "iteration", "state", "queued", "started", "finished", "rtime", "nodes", "wd", "pid",
              "pname", "exit_code", "messages", "partition", "history")

    def __init__(self, name: str, state: str) -> None:
        self.name = name
        job, sep, it = name.rpartition(":")
        self.job = job if sep and it.lstrip("-").isdigit() else name
        self.iteration: Optional[int] = int(it) if self.job != name else None
        self.state = state
        self.queued: Optional[float] = None    # first QUEUED
        self.started: Optional[float] = None   # EXECUTING (None: it never ran)
        self.finished: Optional[float] = None  # its final state
        self.rtime: Optional[float] = None     # seconds, as the service measured them
        self.nodes: Dict[str, List[str]] = {}
        self.wd: Optional[str] = None
        self.pid: Optional[int] = None
        self.pname: Optional[str] = None       # the process's name (QCG-PilotJob's runtime pname)
        self.exit_code: Optional[int] = None
        self.messages: Optional[str] = None
        self.partition: Optional[str] = None
        self.history: List[Tuple[str, str]] = []  # (date as written, state), in order

    @property
    def cores(self) -> int:
        return sum(len(c) for c in self.nodes.values())

    @property
    def ran(self) -> bool:
        return self.started is not None and self.finished is not None

    def as_dict(self) -> Dict[str, Any]:
        return {key: getattr(self, key) for key in self.FIELDS}


def _apply(task: TaskRun, history: Iterable[Tuple[str, str]], runtime: Dict[str, Any]) -> None:
    task.history = list(history)
    for date, state in task.history:
        when = parse_time(date)
        if state == "QUEUED" and task.queued is None:
            task.queued = when
        elif state == "EXECUTING":
            task.started = when
        elif state in FINAL:
            task.finished = when
    if "allocation" in runtime:
        task.nodes = parse_allocation(str(runtime["allocation"]))
    if runtime.get("wd") is not None:
        task.wd = str(runtime["wd"])
    if runtime.get("pname") is not None:
        task.pname = str(runtime["pname"])
    for key in ("pid", "exit_code"):
        value = runtime.get(key)
        if value is not None and str(value).lstrip("-").isdigit():
            setattr(task, key, int(value))
    if runtime.get("rtime") is not None:
        rtime = parse_rtime(str(runtime["rtime"]))
        task.rtime = rtime.total_seconds() if rtime is not None else None


Entry = Tuple[TaskRun, Optional[Dict[str, int]]]


def _json_entries(lines: Iterable[str]) -> Iterator[Entry]:
    for line in lines:
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            task = TaskRun(str(raw["name"]), str(raw["state"]))
            _apply(task, ((h["date"], h["state"]) for h in raw.get("history") or ()), raw.get("runtime") or {})
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill, or not a report line
        task.messages = raw.get("messages")
        yield task, raw.get("iterations")


def _text_entries(lines: Iterable[str]) -> Iterator[Entry]:
    task: Optional[TaskRun] = None
    history: List[Tuple[str, str]] = []
    runtime: Dict[str, str] = {}
    iterations: Optional[Dict[str, int]] = None

    def done() -> Optional[Entry]:
        if task is None:
            return None
        try:
            _apply(task, history, runtime)
        except ValueError:
            return None
        return task, iterations

    for line in lines:
        line = line.rstrip("\n")
        if not line.startswith("\t"):
            head = _HEAD.match(line)
            if head is None:
                continue
            entry = done()
            if entry:
                yield entry
            task, history, runtime, iterations = TaskRun(head["name"], head["state"]), [], {}, None
            task.messages = head["messages"]
            continue
        body = line[1:]
        hist = _HISTORY.match(body)
        its = _ITERATIONS.match(body)
        if hist:
            history.append((hist["date"], hist["state"]))
        elif its:
            total, finished, failed = (int(x) for x in its.groups())
            iterations = {"total": total, "finished": finished, "failed": failed}
        elif ": " in body:
            key, _, value = body.partition(": ")
            runtime[key] = value
    entry = done()
    if entry:
        yield entry


def parse_report(lines: Iterable[str], fmt: Optional[str] = None) -> Iterator[Entry]:
    """The entries of a report (``fmt`` None: JSON if its first line is ``{``)."""
    it = iter(lines)
    first = next(it, None)
    if first is None:
        return iter(())
    if fmt is None:
        fmt = "json" if first.lstrip().startswith("{") else "text"

    def again() -> Iterator[str]:
        yield first
        yield from it
    return _json_entries(again()) if fmt == "json" else _text_entries(again())


class Run:
    """What the files of one run say."""

    def __init__(self, aux_dir: str, report_path: str) -> None:
        self.aux_dir = aux_dir
        self.report_path = report_path
        self.tasks: List[TaskRun] = []              # finished tasks
        self.jobs: Dict[str, Dict[str, int]] = {}   # jobs with iterations: their counts
        self.job_states: Dict[str, str] = {}        # every job of the report: its state
        self.service_start: Optional[float] = None
        self.service_finish: Optional[float] = None  # None: still going (or killed)
        self.total_cores: Optional[int] = None
        self.total_nodes: Optional[int] = None
        self.core_ids: Dict[str, List[str]] = {}     # the core ids of each node, where known
        self.partitions: Dict[str, str] = {}         # node -> partition (governor runs)

    @property
    def finished(self) -> bool:
        return self.service_finish is not None

    def add_entries(self, entries: Iterable[Entry]) -> None:
        """Take the entries of a report: tasks, and the counts of jobs with iterations."""
        for task, iterations in entries:
            if task.iteration is None:
                self.job_states[task.name] = task.state
            if iterations is not None:
                self.jobs[task.name] = iterations
            else:
                self.tasks.append(task)


def find_aux_dir(path: str) -> str:
    """The aux dir of a run given its working dir or the aux dir itself (the newest, if the
    working dir holds several)."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise RunError(f"{path}: not a directory")
    if os.path.basename(os.path.normpath(path)).startswith(AUX_PREFIX):
        return path
    newest = newest_aux_dir(path)
    if newest is None:
        raise RunError(f"{path}: no run here (no {AUX_PREFIX}* directory)")
    return newest


def _report_path(aux: str) -> str:
    journal = os.path.join(aux, JOURNAL_NAME)
    try:
        with open(journal, encoding="utf-8") as fh:
            start = json.loads(fh.readline())
        name = start.get("config", {}).get("report_file") or "jobs.report"
    except (OSError, ValueError, AttributeError):
        name = "jobs.report"
    return name if os.path.isabs(name) else os.path.join(aux, name)


def _read_status(run: Run) -> None:
    try:
        with open(os.path.join(run.aux_dir, "final_status"), encoding="utf-8") as fh:
            status = json.load(fh)
    except (OSError, ValueError):
        return
    system, resources = status.get("System", {}), status.get("Resources", {})
    for key, attr in (("Started", "service_start"), ("Generated", "service_finish")):
        if system.get(key):
            with contextlib.suppress(ValueError):
                setattr(run, attr, parse_time(system[key]))
    run.total_cores = resources.get("TotalCores", resources.get("total_cores"))
    run.total_nodes = resources.get("TotalNodes", resources.get("total_nodes"))


def load_run(path: str) -> Run:
    """The run in ``path``: a working dir (its newest run) or an aux dir."""
    aux = find_aux_dir(path)
    run = Run(aux, _report_path(aux))
    _read_status(run)
    try:
        with open(run.report_path, encoding="utf-8", errors="replace") as fh:
            run.add_entries(parse_report(fh))
    except FileNotFoundError:
        if run.finished:
            raise RunError(f"{run.report_path}: no report (was the run's --report-format none?)") from None
    _read_nodes(run)
    if run.service_start is None:  # a run still going: its journal was made at its start
        with contextlib.suppress(OSError):
            run.service_start = os.stat(os.path.join(aux, JOURNAL_NAME)).st_mtime
    return run


def _read_nodes(run: Run) -> None:
    try:
        with open(os.path.join(run.aux_dir, NODES_FILE), encoding="utf-8") as fh:
            nodes = json.load(fh)["nodes"]
        for node in nodes:
            run.core_ids[str(node["name"])] = [str(c) for c in node["cores"]]
            if node.get("partition"):
                run.partitions[str(node["name"])] = str(node["partition"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a run of an older version, or partitions that registered by hand
    if run.total_cores is None and run.core_ids:
        run.total_cores, run.total_nodes = sum(map(len, run.core_ids.values())), len(run.core_ids)
    if run.partitions:
        for task in run.tasks:
            first = next(iter(task.nodes), None)
            task.partition = run.partitions.get(first) if first else None
