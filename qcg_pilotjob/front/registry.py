"""The job registry: every job the front knows, with per-iteration state.

Per-task memory is one small slotted object; histories are built lazily.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional, Tuple

from ..jobdesc import JobDescription
from ..states import JobState

__all__ = ["JobRecord", "TaskRecord", "format_rtime", "format_time"]


def format_time(ts: float) -> str:
    return str(datetime.datetime.fromtimestamp(ts))


def format_rtime(seconds: float) -> str:
    return str(datetime.timedelta(seconds=seconds))


class TaskRecord:
    """One task: a whole job without iterations, or one iteration."""

    __slots__ = ("history", "message", "partition", "runtime", "state")

    def __init__(self) -> None:
        self.state = JobState.QUEUED
        self.history: Optional[List[Tuple[float, JobState]]] = None  # None: only the submit entry
        self.runtime: Optional[Dict[str, Any]] = None
        self.message: Optional[str] = None
        self.partition = -1  # where it was dispatched, -1: not yet

    def set_state(self, state: JobState, when: float, submit_time: float) -> None:
        if self.history is None:
            self.history = [(submit_time, JobState.QUEUED)]
        self.history.append((when, state))
        self.state = state

    def history_entries(self, submit_time: float) -> List[Tuple[float, JobState]]:
        return self.history if self.history is not None else [(submit_time, JobState.QUEUED)]


class JobRecord:
    """A registered job."""

    __slots__ = (
        "cancel_requested", "deps_pending", "desc", "failed", "finished", "history", "iter_pending",
        "messages", "name", "seq", "state", "submit_time", "tasks",
    )

    def __init__(self, desc: JobDescription, submit_time: float, seq: int) -> None:
        self.desc = desc
        self.name = desc.name
        self.seq = seq
        self.submit_time = submit_time
        self.state = JobState.QUEUED
        self.history: List[Tuple[float, JobState]] = [(submit_time, JobState.QUEUED)]
        self.messages: List[str] = []
        self.tasks: List[TaskRecord] = [TaskRecord() for _ in range(desc.total_iterations)]
        self.finished = 0  # tasks in a final state
        self.failed = 0    # tasks final but not SUCCEED
        self.deps_pending = 0
        self.iter_pending: Optional[List[int]] = None
        self.cancel_requested = False

    @property
    def iterative(self) -> bool:
        return self.desc.iteration is not None

    @property
    def total(self) -> int:
        return len(self.tasks)

    def index(self, iteration: Optional[int]) -> int:
        """Position in ``tasks`` of an iteration (None for a job without iterations)."""
        if iteration is None:
            return 0
        assert self.desc.iteration is not None
        return iteration - self.desc.iteration.start

    def iteration_of(self, idx: int) -> Optional[int]:
        if self.desc.iteration is None:
            return None
        return self.desc.iteration.start + idx

    def has_iteration(self, iteration: int) -> bool:
        return self.desc.iteration is not None and self.desc.iteration.contains(iteration)

    def task(self, iteration: Optional[int]) -> TaskRecord:
        return self.tasks[self.index(iteration)]

    def set_state(self, state: JobState, when: float) -> None:
        self.state = state
        self.history.append((when, state))

    def final_state(self) -> JobState:
        """The state a job ends in once all its tasks are final."""
        if not self.iterative:
            return self.tasks[0].state
        if self.cancel_requested:
            return JobState.CANCELED
        if self.failed == 0:
            return JobState.SUCCEED
        if all(r.state is JobState.OMITTED for r in self.tasks):
            return JobState.OMITTED
        if all(r.state is JobState.CANCELED for r in self.tasks):  # e.g. all stopped by the service's end
            return JobState.CANCELED
        return JobState.FAILED

    def add_message(self, message: str) -> None:
        if message and message not in self.messages and len(self.messages) < 20:
            self.messages.append(message)

    # --- views -------------------------------------------------------------------------
    @staticmethod
    def runtime_view(rec: TaskRecord) -> Optional[Dict[str, str]]:
        if rec.runtime is None:
            return None
        out: Dict[str, str] = {}
        for key, val in rec.runtime.items():
            if key == "rtime":
                out[key] = format_rtime(float(val))
            else:
                out[key] = str(val)
        return out

    def iterations_view(self) -> Dict[str, int]:
        assert self.desc.iteration is not None
        return {
            "start": self.desc.iteration.start,
            "stop": self.desc.iteration.stop,
            "total": self.total,
            "finished": self.finished,
            "failed": self.failed,
        }
