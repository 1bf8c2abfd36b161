"""Finished iterations, kept in columns: about 50 bytes each instead of a record of objects
(a record, a history list of tuples, a runtime dict: 700 bytes and more).

Once an iteration is final and its report and journal lines are written, the front
*retires* it: its state, start and end times, exit code, run time, pid and the texts of its
allocation and working directory go into arrays, in chunks of :data:`CHUNK` iterations
made when the first of them retires. Only records of the usual shapes are retired:

- started: history QUEUED (at submit), SCHEDULED and EXECUTING (at one time), a final
  state; runtime ``allocation``, ``wd``, ``pid`` (optional), ``exit_code``, ``rtime``;
- never started: history QUEUED (at submit) and a final state; no runtime.

Any other record stays as it is (:meth:`Retired.add` says False). :meth:`Retired.record`
gives back a record equal to the one retired, so views and reports cannot tell the
difference. Texts are shared (an allocation repeats across iterations).

>>> from qcg_pilotjob.front.registry import TaskRecord
>>> rec = TaskRecord()
>>> rec.set_state(JobState.SCHEDULED, 5.0, 1.0); rec.set_state(JobState.EXECUTING, 5.0, 1.0)
>>> rec.set_state(JobState.SUCCEED, 7.5, 1.0)
>>> rec.runtime = {"allocation": "n0[3]", "wd": "/w", "exit_code": 0, "rtime": 2.5}
>>> store = Retired(1.0)
>>> store.add(42, rec)
True
>>> back = store.record(42)
>>> (back.state, back.history, back.runtime) == (rec.state, rec.history, rec.runtime)
True
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from ..states import JobState

if TYPE_CHECKING:
    from .registry import TaskRecord

__all__ = ["CHUNK", "PRUNED", "Retired"]

#: iterations per chunk of columns
CHUNK = 4096
#: texts shared at most (past it, each iteration holds its own)
_MAX_SHARED = 100_000
_STATES = {int(s): s for s in JobState}
_NAN = float("nan")
_NO_PID = -1
_KEYS_PID = ("allocation", "wd", "pid", "exit_code", "rtime")
_KEYS = ("allocation", "wd", "exit_code", "rtime")
_Q, _S, _E = JobState.QUEUED, JobState.SCHEDULED, JobState.EXECUTING


class _States:
    """The states of a chunk of iterations (all a pruned store keeps)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = array("b", bytes(CHUNK))  # 0: not retired (no state is 0)


class _Chunk(_States):
    __slots__ = ("alloc", "ended", "exit", "pid", "rtime", "started", "wd")

    def __init__(self) -> None:
        super().__init__()
        self.started = array("d", bytes(8 * CHUNK))
        self.ended = array("d", bytes(8 * CHUNK))
        self.rtime = array("d", bytes(8 * CHUNK))
        self.exit = array("i", bytes(4 * CHUNK))
        self.pid = array("i", bytes(4 * CHUNK))
        self.alloc: List[Optional[str]] = [None] * CHUNK
        self.wd: List[Optional[str]] = [None] * CHUNK


#: what a pruned iteration says instead of its history and runtime
PRUNED = "details of this iteration were not kept (--prune-finished)"


class Retired:
    """The finished iterations of one job (submitted at ``submit_time``), by index. A
    ``pruned`` store keeps their states alone (``--prune-finished``): one byte each."""

    __slots__ = ("_chunks", "_messages", "_shared", "counts", "pruned", "submit_time")

    def __init__(self, submit_time: float, pruned: bool = False) -> None:
        self.submit_time = submit_time
        self.pruned = pruned
        self._chunks: Dict[int, Any] = {}  # chunk number -> _Chunk (_States when pruned)
        self._messages: Dict[int, str] = {}
        self._shared: Dict[str, str] = {}
        self.counts: Dict[JobState, int] = {}  # retired iterations per state

    @property
    def size(self) -> int:
        return sum(self.counts.values())

    def __contains__(self, idx: int) -> bool:
        return self.state(idx) is not None

    def state(self, idx: int) -> Optional[JobState]:
        chunk = self._chunks.get(idx // CHUNK)
        if chunk is None:
            return None
        code = chunk.state[idx % CHUNK]
        return _STATES[code] if code else None

    def add(self, idx: int, rec: TaskRecord) -> bool:
        """Retire the final record of iteration ``idx``; False if it is not of a usual shape."""
        submit_time = self.submit_time
        if self.pruned:
            if not rec.state.is_final:
                return False
            self._put_state(idx, rec.state)
            return True
        hist = rec.history
        if hist is None or not rec.state.is_final or hist[0] != (submit_time, _Q) or hist[-1][1] is not rec.state:
            return False
        runtime = rec.runtime
        if len(hist) == 4 and hist[1][1] is _S and hist[2][1] is _E and hist[1][0] == hist[2][0]:
            if runtime is None or tuple(runtime) not in (_KEYS, _KEYS_PID):
                return False
            alloc, wd, code, rtime = runtime["allocation"], runtime["wd"], runtime["exit_code"], runtime["rtime"]
            pid = runtime.get("pid", _NO_PID)
            if not (type(alloc) is str and type(wd) is str and type(code) is int and type(rtime) is float
                    and type(pid) is int and -2 ** 31 < code < 2 ** 31 and (0 <= pid < 2 ** 31 or pid == _NO_PID)):
                return False
            started = hist[1][0]
        elif len(hist) == 2 and runtime is None:
            started, alloc, wd, code, rtime, pid = _NAN, None, None, 0, 0.0, _NO_PID
        else:
            return False
        chunk = self._put_state(idx, rec.state)
        at = idx % CHUNK
        chunk.started[at] = started
        chunk.ended[at] = hist[-1][0]
        chunk.rtime[at] = rtime
        chunk.exit[at] = code
        chunk.pid[at] = pid
        chunk.alloc[at] = self._share(alloc)
        chunk.wd[at] = self._share(wd)
        if rec.message:
            self._messages[idx] = rec.message
        return True

    def _put_state(self, idx: int, state: JobState) -> Any:
        chunk = self._chunks.get(idx // CHUNK)
        if chunk is None:
            chunk = self._chunks[idx // CHUNK] = _States() if self.pruned else _Chunk()
        chunk.state[idx % CHUNK] = int(state)
        self.counts[state] = self.counts.get(state, 0) + 1
        return chunk

    def message(self, idx: int) -> Optional[str]:
        """The message of retired iteration ``idx`` (what ``record(idx).message`` would be)."""
        return PRUNED if self.pruned else self._messages.get(idx)

    def record(self, idx: int) -> TaskRecord:
        """A record equal to the one retired as ``idx`` (a new one: changing it changes nothing)."""
        from .registry import TaskRecord  # (registry imports this module)
        chunk = self._chunks[idx // CHUNK]
        at = idx % CHUNK
        submit_time = self.submit_time
        rec = TaskRecord()
        rec.state = _STATES[chunk.state[at]]
        if self.pruned:
            rec.message = PRUNED
            return rec
        started = chunk.started[at]
        if math.isnan(started):
            rec.history = [(submit_time, _Q), (chunk.ended[at], rec.state)]
        else:
            rec.history = [(submit_time, _Q), (started, _S), (started, _E), (chunk.ended[at], rec.state)]
            runtime: Dict[str, Any] = {"allocation": chunk.alloc[at], "wd": chunk.wd[at]}
            if chunk.pid[at] != _NO_PID:
                runtime["pid"] = chunk.pid[at]
            runtime["exit_code"] = chunk.exit[at]
            runtime["rtime"] = chunk.rtime[at]
            rec.runtime = runtime
        rec.message = self._messages.get(idx)
        return rec

    def remove(self, idx: int) -> None:
        """Forget iteration ``idx`` (its record is back in use)."""
        chunk = self._chunks[idx // CHUNK]
        state = _STATES[chunk.state[idx % CHUNK]]
        chunk.state[idx % CHUNK] = 0
        self._messages.pop(idx, None)
        self.counts[state] -= 1

    def indexes(self, start: int, stop: int) -> Iterator[int]:
        """Retired indexes in ``[start, stop)``, in order."""
        for base in range(start - start % CHUNK, stop, CHUNK):
            chunk = self._chunks.get(base // CHUNK)
            if chunk is None:
                continue
            states = chunk.state
            for at in range(max(start - base, 0), min(stop - base, CHUNK)):
                if states[at]:
                    yield base + at

    def _share(self, text: Optional[str]) -> Optional[str]:
        if text is None:
            return None
        shared = self._shared.get(text)
        if shared is None:
            if len(self._shared) >= _MAX_SHARED:
                return text
            shared = self._shared[text] = text
        return shared
