"""Ending process groups that were left behind, safely.

A task runs in a session of its own, so its pid is also its process group id. A process
group is killed only if a process with that pid still exists and was created when the
task started (within ``tolerance`` seconds): a pid the system gave to an unrelated
process since is left alone. Used by ``--resume`` (tasks a killed service left running)
by a governor that lost a partition on its own host, and on a node whose agent was lost
(``python -m qcg_pilotjob.processes PID:START ...`` in an srun step there prints how
many it ended).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Iterable, List, Optional, Tuple

import psutil

__all__ = ["end_process_groups", "kill_process"]

_log = logging.getLogger(__name__)


def end_process_groups(procs: Iterable[Tuple[int, float]], tolerance: float = 5.0) -> int:
    """SIGKILL the process group of each ``(pid, start time)`` still running; returns how
    many were ended."""
    ended = 0
    for pid, started in procs:
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - started) > tolerance:
                continue  # the pid was reused by an unrelated process
            os.killpg(pid, signal.SIGKILL)
            ended += 1
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return ended


def kill_process(pid: int, marker: str, created_before: float) -> bool:
    """SIGKILL one process (e.g. a hung partition manager) if its command line holds
    ``marker`` and it was created before ``created_before`` (a pid given to another
    process since is left alone); False if it was not killed."""
    try:
        proc = psutil.Process(pid)
        if marker not in proc.cmdline() or proc.create_time() > created_before:
            return False
        proc.kill()
    except psutil.Error:
        return False
    return True


def main(argv: Optional[List[str]] = None) -> int:
    """``PID:START ...``: end those task process groups here; prints how many."""
    procs = []
    for arg in sys.argv[1:] if argv is None else argv:
        pid, _, start = arg.partition(":")
        try:
            procs.append((int(pid), float(start)))
        except ValueError:
            sys.stderr.write(f"not PID:START: {arg!r}\n")
            return 2
    print(end_process_groups(procs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
