"""What a task leaves behind, ended: :class:`Leftovers`.

When a task's main process exits (local executors and node agents; not with
``--keep-task-children``), its process group gets SIGTERM at once and SIGKILL after
``kill_grace`` if it still has members, and processes that left the group are found by
their :data:`~.environment.TASK_MARK` in a ``/proc`` sweep, at most every
:data:`SWEEP_EVERY` seconds and only after tasks ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Callable, Dict, List, Optional, Set, Tuple

from .environment import leftover_marks, mark_in, scan_marked

__all__ = ["SWEEP_DELAY", "SWEEP_EVERY", "Leftovers"]

#: the ``/proc`` sweep for processes that left their task's group runs at most this often
#: (seconds), and only when a task ended since the last one
SWEEP_EVERY = 2.0
#: ... and not sooner than this after the task's end (a fork under way is then done)
SWEEP_DELAY = 0.2


class Leftovers:
    """Ends the processes a task leaves behind once its main process has been reaped."""

    def __init__(self, loop: asyncio.AbstractEventLoop, kill_grace: float,
                 scan: Callable[[], List[Tuple[int, str]]] = scan_marked) -> None:
        self.loop = loop
        self.kill_grace = kill_grace
        self.scan = scan
        self.runs: Set[str] = set()      # the runs (mark prefixes) of the tasks started here
        self.running: Set[str] = set()   # the marks of tasks running now
        self.groups: Set[int] = set()    # groups that got SIGTERM; SIGKILL pending
        self.pidfds: Dict[int, int] = {}  # leftovers found by their mark that got SIGTERM; SIGKILL pending
        self._sweep: Optional[asyncio.TimerHandle] = None
        self._last = float("-inf")

    def started(self, mark: Optional[str]) -> None:
        if mark:
            self.running.add(mark)
            self.runs.add(mark.rpartition(":")[0])

    def ended(self, pgid: int, mark: Optional[str]) -> None:
        """The main process of a task (the leader of group ``pgid``) was reaped: SIGTERM
        what is left of the group, SIGKILL later; sweep for the task's mark soon."""
        if pgid > 0:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass  # the group is empty: the usual case, one syscall
            else:
                self.groups.add(pgid)
                self.loop.call_later(self.kill_grace, self._kill_group, pgid)
        if mark:
            self.running.discard(mark)
            if self._sweep is None:
                when = max(self.loop.time() + SWEEP_DELAY, self._last + SWEEP_EVERY)
                self._sweep = self.loop.call_at(when, self.sweep)

    def _kill_group(self, pgid: int) -> None:
        """SIGKILL what is left of the group, unless its number went to a new process: while
        a group has members its id is no process's pid; once a process has it, the task's
        group ended and ``pgid`` may name someone else's (often a newer task's)."""
        if pgid not in self.groups:
            return
        self.groups.discard(pgid)
        try:
            os.kill(pgid, 0)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        except PermissionError:
            pass

    def sweep(self) -> int:
        """SIGTERM every process marked by a task of this executor that runs no more
        (SIGKILL after the grace period); returns how many."""
        self._sweep = None
        self._last = self.loop.time()
        ended = 0
        for pid, mark in leftover_marks(self.scan(), self.runs, self.running):
            if pid not in self.pidfds and self._term(pid, mark):
                ended += 1
        return ended

    def _term(self, pid: int, mark: str) -> bool:
        """SIGTERM ``pid`` through a pidfd, if it is still the process marked ``mark``."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:  # the pidfd holds the process: same pid, same one
                if mark_in(fh.read()) != mark:
                    raise ProcessLookupError
            signal.pidfd_send_signal(fd, signal.SIGTERM)
        except OSError:
            os.close(fd)
            return False
        self.pidfds[pid] = fd
        self.loop.call_later(self.kill_grace, self._kill_pid, pid)
        return True

    def _kill_pid(self, pid: int) -> None:
        fd = self.pidfds.pop(pid, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)

    def close(self) -> None:
        """The executor stops: a sweep that was due runs now, and every leftover still in
        its grace period is killed at once."""
        if self._sweep is not None:
            self._sweep.cancel()
            self.sweep()
        for pgid in list(self.groups):
            self._kill_group(pgid)
        for pid in list(self.pidfds):
            self._kill_pid(pid)
