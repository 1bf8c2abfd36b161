"""The job registry: every job the front knows, with per-iteration state.

A task costs nothing until something happens to it: :class:`TaskTable` makes its record
(a small slotted object; its history is built lazily) the first time it is asked for
one, which the front does when the task starts or ends. Where a job's tasks were sent is
held as ranges (:class:`.ranges.IntervalMap`). A job of 10,000,000 iterations that waits
is a few objects.
"""

from __future__ import annotations

import datetime
from bisect import bisect_left, insort
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..jobdesc import JobDescription
from ..states import JobState
from .ranges import IntervalMap, Range

__all__ = ["JobRecord", "TaskRecord", "TaskTable", "format_rtime", "format_time"]


def format_time(ts: float) -> str:
    return str(datetime.datetime.fromtimestamp(ts))


def format_rtime(seconds: float) -> str:
    return str(datetime.timedelta(seconds=seconds))


class TaskRecord:
    """One task: a whole job without iterations, or one iteration."""

    __slots__ = ("history", "message", "runtime", "state")

    def __init__(self) -> None:
        self.state = JobState.QUEUED
        self.history: Optional[List[Tuple[float, JobState]]] = None  # None: only the submit entry
        self.runtime: Optional[Dict[str, Any]] = None
        self.message: Optional[str] = None

    def set_state(self, state: JobState, when: float, submit_time: float) -> None:
        if self.history is None:
            self.history = [(submit_time, JobState.QUEUED)]
        self.history.append((when, state))
        self.state = state

    def history_entries(self, submit_time: float) -> List[Tuple[float, JobState]]:
        return self.history if self.history is not None else [(submit_time, JobState.QUEUED)]


#: what a task without a record looks like (read only: views and reports show it)
WAITING = TaskRecord()


class TaskTable:
    """The tasks of one job, by index. ``table[i]`` makes task ``i``'s record when it has
    none (call it to change the task); :meth:`state` and :meth:`view` read without making
    one. :attr:`placed` holds the partition each dispatched task went to."""

    __slots__ = ("_made", "_skip", "placed", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self._made: Dict[int, TaskRecord] = {}
        self.placed = IntervalMap()
        self._skip: List[int] = []  # sorted: tasks that became final before they were dispatched

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, idx: int) -> TaskRecord:
        rec = self._made.get(idx)
        if rec is None:
            if not 0 <= idx < self.total:
                raise IndexError(idx)
            rec = self._made[idx] = TaskRecord()
        return rec

    def __iter__(self) -> Iterator[TaskRecord]:
        """Every task's record, made as needed (for jobs whose tasks are all final)."""
        for idx in range(self.total):
            yield self[idx]

    def state(self, idx: int) -> JobState:
        rec = self._made.get(idx)
        return JobState.QUEUED if rec is None else rec.state

    def view(self, idx: int) -> TaskRecord:
        """The record to show for task ``idx``: its own, or :data:`WAITING` (do not change it)."""
        return self._made.get(idx, WAITING)

    def made(self) -> Dict[int, TaskRecord]:
        return self._made

    def partition(self, idx: int) -> int:
        """Where task ``idx`` was dispatched (-1: not yet)."""
        part = self.placed.get(idx)
        return -1 if part is None else part

    def made_in(self, start: int, stop: int) -> List[int]:
        """Sorted indexes in ``[start, stop)`` that have a record."""
        if len(self._made) < stop - start:
            return sorted(i for i in self._made if start <= i < stop)
        return [i for i in range(start, stop) if i in self._made]

    def final_before_dispatch(self, idx: int) -> None:
        """Task ``idx`` became final before it was dispatched (canceled, omitted, restored)."""
        if not self._skip or self._skip[-1] < idx:
            self._skip.append(idx)
        else:
            insort(self._skip, idx)

    def waiting(self, ranges: List[Range]) -> List[Range]:
        """The tasks of ``ranges`` neither dispatched nor final."""
        out: List[Range] = []
        skip = self._skip
        for a, b in ranges:
            for ga, gb in (self.placed.gaps(a, b) if self.placed else [(a, b)]):
                at = ga
                for pos in range(bisect_left(skip, ga), bisect_left(skip, gb)):
                    if skip[pos] > at:
                        out.append((at, skip[pos]))
                    at = skip[pos] + 1
                if at < gb:
                    out.append((at, gb))
        return out


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
        self.tasks = TaskTable(desc.total_iterations)
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
        return self.tasks.total

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
        """The record of a task, to read (:data:`WAITING` if it has none yet)."""
        return self.tasks.view(self.index(iteration))

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
