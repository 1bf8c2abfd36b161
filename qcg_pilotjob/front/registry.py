"""The job registry: every job the front knows, with per-iteration state.

A task costs nothing until something happens to it: :class:`TaskTable` makes its record
(a small slotted object; its history is built lazily) the first time it is asked for
one, which the front does when the task starts or ends. Where a job's tasks were sent is
held as ranges (:class:`.ranges.IntervalMap`). A job of 10,000,000 iterations that waits
is a few objects.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
from bisect import bisect_left, insort
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..jobdesc import JobDescription
from ..states import JobState
from ..variables import substitute
from .ranges import IntervalMap, Range, cut
from .retired import Retired

__all__ = ["JobRecord", "TaskRecord", "TaskTable", "format_rtime", "format_time"]


#: local time of a whole second, as text, for the seconds last seen (a run formats the
#: few seconds around now over and over); and the times last formatted (a task's history
#: repeats its job's submit time and has SCHEDULED and EXECUTING at the same time)
_SECONDS: Dict[int, str] = {}
_RECENT: Dict[float, str] = {}


def format_time(ts: float) -> str:
    """``str(datetime.fromtimestamp(ts))``, cheaper: a time formatted lately is looked up,
    a whole second is formatted once and the microseconds (rounded half to even, as
    ``datetime`` does) are added.

    >>> format_time(0.5) == str(datetime.datetime.fromtimestamp(0.5))
    True
    """
    text = _RECENT.get(ts)
    if text is None:
        if len(_RECENT) >= 4096:
            _RECENT.clear()
        text = _RECENT[ts] = _format_time(ts)
    return text


def _format_time(ts: float) -> str:
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    sec = int(whole)
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    elif us < 0:
        sec, us = sec - 1, us + 1_000_000
    text = _SECONDS.get(sec)
    if text is None:
        if len(_SECONDS) >= 256:
            _SECONDS.clear()
        text = _SECONDS[sec] = str(datetime.datetime.fromtimestamp(sec))
    return f"{text}.{us:06d}" if us else text


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
    one. Where dispatched tasks went is a map of ranges (:meth:`place`); tasks that never
    started and were ended together (a canceled or omitted job) are ranges pointing to one
    shared record (:meth:`end_together`). The maps are made when first needed: most jobs
    have one task, and every object a job holds costs the garbage collector."""

    __slots__ = ("_bulk", "_ended", "_made", "_placed", "_retired", "_skip", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self._made: Dict[int, TaskRecord] = {}
        self._retired: Optional[Retired] = None  # final iterations, in columns (see retire)
        self._placed: Optional[IntervalMap] = None
        self._skip: Optional[List[int]] = None  # sorted: tasks final before they were dispatched
        self._ended: Optional[IntervalMap] = None
        self._bulk: Optional[List[TaskRecord]] = None

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, idx: int) -> TaskRecord:
        rec = self._made.get(idx)
        if rec is None:
            if not 0 <= idx < self.total:
                raise IndexError(idx)
            if self._retired is not None and idx in self._retired:  # (back in use: out of the columns)
                rec = self._made[idx] = self._retired.record(idx)
                self._retired.remove(idx)
                return rec
            rec = TaskRecord()
            if self._ended is not None:
                shown = self.view(idx)
                if shown is not WAITING:  # (ended together: it gets a copy of the shared record)
                    rec.state, rec.message = shown.state, shown.message
                    rec.history = list(shown.history_entries(0.0))
            self._made[idx] = rec
        return rec

    def __iter__(self) -> Iterator[TaskRecord]:
        """Every task's record to read (see :meth:`view`)."""
        for idx in range(self.total):
            yield self.view(idx)

    def state(self, idx: int) -> JobState:
        rec = self._made.get(idx)
        if rec is not None:
            return rec.state
        if self._retired is not None:
            state = self._retired.state(idx)
            if state is not None:
                return state
        return self.view(idx).state

    def message(self, idx: int) -> Optional[str]:
        """The message of task ``idx`` (``view(idx).message`` without building a record)."""
        rec = self._made.get(idx)
        if rec is not None:
            return rec.message
        if self._retired is not None and self._retired.state(idx) is not None:
            return self._retired.message(idx)
        return self.view(idx).message

    def view(self, idx: int) -> TaskRecord:
        """The record to show for task ``idx``: its own, one rebuilt from the columns of
        retired iterations, the shared one of the tasks ended with it, or :data:`WAITING`
        (do not change it)."""
        rec = self._made.get(idx)
        if rec is not None:
            return rec
        if self._retired is not None and idx in self._retired:
            return self._retired.record(idx)
        if self._ended is not None and self._bulk is not None:
            pos = self._ended.get(idx)
            if pos is not None:
                return self._bulk[pos]
        return WAITING

    def end_together(self, ranges: List[Range], state: JobState, when: float, message: Optional[str],
                     submit_time: float) -> None:
        """Tasks of ``ranges`` (no record, never started) end in ``state`` with one shared record."""
        rec = TaskRecord()
        rec.set_state(state, when, submit_time)
        rec.message = message
        if self._bulk is None or self._ended is None:
            self._bulk, self._ended = [], IntervalMap()
        self._bulk.append(rec)
        for a, b in ranges:
            self.place(a, b, None)
            self._ended.assign(a, b, len(self._bulk) - 1)

    def made(self) -> Dict[int, TaskRecord]:
        """Tasks with a record in use (not retired ones: :meth:`state_counts` counts those)."""
        return self._made

    def state_counts(self) -> Dict[JobState, int]:
        """How many tasks are in each state: records in use, retired iterations, tasks ended
        together; the rest wait (QUEUED)."""
        counts: Dict[JobState, int] = dict(self._retired.counts) if self._retired is not None else {}
        for rec in self._made.values():
            counts[rec.state] = counts.get(rec.state, 0) + 1
        if self._ended is not None and self._bulk is not None:
            bulk = self._bulk
            for a, b, pos in self._ended.items():
                state = bulk[pos].state
                counts[state] = counts.get(state, 0) + b - a
        counts[JobState.QUEUED] = counts.get(JobState.QUEUED, 0) + self.total - sum(counts.values())
        return counts

    def retire(self, idx: int, submit_time: float, prune: bool = False) -> None:
        """Iteration ``idx`` is final and reported: keep it in columns (:mod:`.retired`),
        unless its record is of an unusual shape; with ``prune``, its state alone."""
        rec = self._made.get(idx)
        if rec is None:
            return
        if self._retired is None:
            self._retired = Retired(submit_time, pruned=prune)
        if self._retired.add(idx, rec):
            del self._made[idx]

    def settle(self) -> None:
        """Every task is final: forget where they went and what was skipped (a finished job
        holds fewer objects; no partition may change its tasks any more)."""
        self._placed = None
        self._skip = None

    # --- where tasks went -----------------------------------------------------------------
    def place(self, start: int, stop: int, partition: Optional[int]) -> None:
        """Tasks ``[start, stop)`` went to ``partition`` (None: back to waiting)."""
        if self._placed is None:
            if partition is None:
                return
            self._placed = IntervalMap()
        self._placed.assign(start, stop, partition)

    def partition(self, idx: int) -> int:
        """Where task ``idx`` was dispatched (-1: not yet)."""
        part = self._placed.get(idx) if self._placed is not None else None
        return -1 if part is None else part

    def placed_items(self) -> List[Tuple[int, int, int]]:
        """``(start, stop, partition)`` of every dispatched range."""
        return self._placed.items() if self._placed is not None else []

    def placed_on(self, partition: int) -> List[Range]:
        return self._placed.with_value(partition) if self._placed is not None else []

    def all_on(self, start: int, stop: int, partition: int) -> bool:
        """Whether every task of ``[start, stop)`` was dispatched to ``partition``."""
        return self._placed is not None and self._placed.holds(start, stop, partition)

    def made_in(self, start: int, stop: int) -> List[int]:
        """Sorted indexes in ``[start, stop)`` that have a record (retired ones too)."""
        if len(self._made) < stop - start:
            made = sorted(i for i in self._made if start <= i < stop)
        else:
            made = [i for i in range(start, stop) if i in self._made]
        if self._retired is not None and self._retired.size:
            made = sorted(made + list(self._retired.indexes(start, stop)))
        return made

    def _open(self, a: int, b: int) -> List[Range]:
        """The parts of ``[a, b)`` neither dispatched nor ended together."""
        gaps = self._placed.gaps(a, b) if self._placed else [(a, b)]
        if self._ended:
            ended = self._ended
            gaps = [g for ga, gb in gaps for g in ended.gaps(ga, gb)]
        return gaps

    def final_before_dispatch(self, idx: int) -> None:
        """Task ``idx`` became final before it was dispatched (canceled, omitted, restored)."""
        if self._skip is None:
            self._skip = [idx]
        elif self._skip[-1] < idx:
            self._skip.append(idx)
        else:
            insort(self._skip, idx)

    def waiting(self, ranges: List[Range]) -> List[Range]:
        """The tasks of ``ranges`` neither dispatched nor final."""
        if self._placed is None and self._ended is None and self._skip is None:
            return ranges  # (nothing sent, ended or skipped yet: the common case; not copied)
        out: List[Range] = []
        skip = self._skip or []
        for a, b in ranges:
            for ga, gb in self._open(a, b):
                out.extend(cut(ga, gb, skip[bisect_left(skip, ga):bisect_left(skip, gb)]))
        return out


class JobRecord:
    """A registered job."""

    __slots__ = (
        "cancel_requested", "deps_pending", "desc", "failed", "finished", "history", "iter_pending",
        "messages", "name", "pname", "seq", "state", "submit_time", "tasks",
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
        # the name of the process it starts, as QCG-PilotJob reports it (runtime ``pname``)
        ex = desc.execution
        self.pname = "bash" if ex.script is not None else sys.intern(os.path.basename(ex.exec or ""))
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
        counts = self.tasks.state_counts()
        if counts.get(JobState.OMITTED) == self.total:
            return JobState.OMITTED
        if counts.get(JobState.CANCELED) == self.total:  # e.g. all stopped by the service's end
            return JobState.CANCELED
        return JobState.FAILED

    def add_message(self, message: str) -> None:
        if message and message not in self.messages and len(self.messages) < 20:
            self.messages.append(message)

    # --- views -------------------------------------------------------------------------
    def runtime_view(self, rec: TaskRecord, it: Optional[int]) -> Optional[Dict[str, str]]:
        """A task's ``runtime`` as text; an ended one's also names its process (``pname``:
        ``bash`` for a script, else the program's base name, with ``${it}`` replaced)."""
        if rec.runtime is None:
            return None
        out: Dict[str, str] = {}
        for key, val in rec.runtime.items():
            if key == "rtime":
                out[key] = format_rtime(float(val))
            else:
                out[key] = str(val)
        if "exit_code" in out:
            pname = self.pname
            out["pname"] = substitute(pname, {"it": str(it)}) if "$" in pname and it is not None else pname
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
