"""``JobInfo``: a parsed ``jobInfo`` reply.

>>> info = JobInfo.from_job({"jobName": "a", "status": "SUCCEED", "history": "\\n2024-01-01 10:00:00.0: QUEUED",
...     "runtime": {"allocation": "n1[0:1],n2[4]", "wd": "/w", "rtime": "0:00:02.500000"}})
>>> info.nodes, info.total_cores, info.time.total_seconds(), info.history
({'n1': ['0', '1'], 'n2': ['4']}, 3, 2.5, ['2024-01-01 10:00:00.0: QUEUED'])
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any, Dict, List, Optional

from .errors import InternalError

__all__ = ["JobInfo", "parse_allocation", "parse_rtime"]

_RTIME = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d+):(\d+(?:\.\d+)?)$")


def parse_rtime(text: str) -> Optional[timedelta]:
    """``runtime.rtime`` text (``H:MM:SS.ffffff``, maybe ``N days, ``); None if not one.

    >>> parse_rtime("1 day, 0:00:01.500000").total_seconds()
    86401.5
    """
    m = _RTIME.match(text.strip())
    if m is None:
        return None
    days, hours, minutes, seconds = m.groups()
    return timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def parse_allocation(text: str) -> Dict[str, List[str]]:
    """``n0[0:1],n1[3]`` as ``{node: [core ids]}`` (empty for a text of another shape).

    >>> parse_allocation("n0[0:1],n1[3]")
    {'n0': ['0', '1'], 'n1': ['3']}
    """
    nodes: Dict[str, List[str]] = {}
    for m in re.finditer(r"([^,\[\]]+)\[([^\]]*)\]", text):
        nodes[m.group(1)] = [c for c in m.group(2).split(":") if c]
    return nodes


class JobInfo:
    """Parsed information about a job or one iteration."""

    def __init__(self) -> None:
        self.name: Optional[str] = None
        self.status: Optional[str] = None
        self.nodes: Optional[Dict[str, List[str]]] = None
        self.total_cores: Optional[int] = None
        self.wdir: Optional[str] = None
        self.time: Optional[timedelta] = None
        self.exit_code: Optional[int] = None
        self.iteration: Optional[int] = None
        self.iterations: Optional[Dict[str, Any]] = None
        self.childs: Optional[List[JobInfo]] = None
        self.history: Optional[List[str]] = None
        self.messages: Optional[str] = None

    def _runtime(self, runtime: Optional[Dict[str, Any]]) -> None:
        if not runtime:
            return
        if "allocation" in runtime:
            self.nodes = parse_allocation(str(runtime["allocation"]))
            self.total_cores = sum(len(c) for c in self.nodes.values())
        self.wdir = runtime.get("wd")
        if "rtime" in runtime:
            self.time = parse_rtime(str(runtime["rtime"]))
        if runtime.get("exit_code") not in (None, ""):
            try:
                self.exit_code = int(runtime["exit_code"])
            except (TypeError, ValueError):
                self.exit_code = None

    @staticmethod
    def from_child(job_name: str, child_data: Dict[str, Any]) -> JobInfo:
        """Parse one entry of ``childs`` of a jobInfo reply."""
        try:
            info = JobInfo()
            info.iteration = child_data.get("iteration")
            info.name = f"{job_name}:{info.iteration}"
            info.status = child_data.get("state") or child_data.get("status")
            info._runtime(child_data.get("runtime"))
            info.messages = child_data.get("messages")
            return info
        except (AttributeError, TypeError) as exc:
            raise InternalError(f"wrong format of a child entry: {exc}") from None

    @staticmethod
    def from_job(job_data: Dict[str, Any]) -> JobInfo:
        """Parse the ``data`` of one job of a jobInfo reply."""
        try:
            info = JobInfo()
            info.name = job_data.get("jobName")
            info.status = job_data.get("status")
            info.messages = job_data.get("messages")
            # QCG-PilotJob 0.14's defaults for a job: no nodes, 0 cores, {} iterations, [] history
            info.nodes, info.total_cores = {}, 0
            info.iterations = job_data.get("iterations", {})
            info._runtime(job_data.get("runtime"))
            history = job_data.get("history")
            info.history = [line for line in history.split("\n") if line.strip()] if isinstance(history, str) else []
            childs = job_data.get("childs")
            if childs is not None:
                info.childs = [JobInfo.from_child(str(info.name), c) for c in childs]
            return info
        except (AttributeError, TypeError) as exc:
            raise InternalError(f"wrong format of job info: {exc}") from None

    def __repr__(self) -> str:
        return f"JobInfo(name={self.name!r}, status={self.status!r})"

    def __str__(self) -> str:
        """QCG-PilotJob's form: a JSON object of every attribute, each as text, by name."""
        return json.dumps({attr: str(value) for attr, value in sorted(vars(self).items()) if not attr.startswith("_")})
