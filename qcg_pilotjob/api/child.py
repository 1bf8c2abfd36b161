"""A reply from a service this process started, or that service's end, whichever comes
first (for :class:`~qcg_pilotjob.api.manager.LocalManager`): a client whose service died
learns it at once instead of waiting out the request timeout (600 s by default).

The process's end is an event where Linux gives a pidfd (5.3 and later): the socket and
the pidfd are polled together. Elsewhere the wait is cut into one-second slices, each
followed by a look at the process.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Optional

import zmq

from .link import deadline_after, ms_left, take_reply

__all__ = ["EXIT_GRACE_MS", "ChildExited", "ChildWatch"]

#: how long a reply may still take once the service has exited (it lingers 1 s on exit)
EXIT_GRACE_MS = 1500


class ChildExited(Exception):
    """The service process ended before it answered."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"the service exited with code {returncode}")
        self.returncode = returncode


def _pidfd(pid: int) -> Optional[int]:
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):  # (no pidfd here: the sliced wait)
        return None


class ChildWatch:
    """Waits on a socket for as long as ``proc`` lives."""

    def __init__(self, proc: subprocess.Popen[Any]) -> None:
        self.proc = proc
        self.fd = _pidfd(proc.pid)
        self._poller: Optional[zmq.Poller] = None
        self._sock: Optional[zmq.Socket[Any]] = None  # (the one the poller polls: made once per socket)

    def _poller_for(self, sock: zmq.Socket[Any]) -> zmq.Poller:
        if self._poller is None or self._sock is not sock:
            self._poller = zmq.Poller()
            self._poller.register(sock, zmq.POLLIN)
            if self.fd is not None:
                self._poller.register(self.fd, zmq.POLLIN)
            self._sock = sock
        return self._poller

    def receive(self, sock: zmq.Socket[Any], timeout_ms: Optional[int]) -> bytes:
        """The reply on ``sock``; ``zmq.Again`` after ``timeout_ms`` (None: no limit);
        :class:`ChildExited` if the process ends first (and nothing arrives in
        :data:`EXIT_GRACE_MS` after). A late reply to an earlier request, which wakes the
        wait but is dropped by the socket (REQ_CORRELATE), does not end it."""
        poller = self._poller_for(sock)
        deadline = deadline_after(timeout_ms)
        while True:
            left = ms_left(deadline)
            step = left if self.fd is not None else (1000 if left is None else min(left, 1000))
            ready = sock in dict(poller.poll(step))
            ended = not ready and self.proc.poll() is not None
            if ready or (ended and sock.poll(EXIT_GRACE_MS, zmq.POLLIN)):  # (a last reply may follow the end)
                reply = take_reply(sock)
                if reply is not None:
                    return reply
            if ended:
                raise ChildExited(self.proc.returncode)
            if left == 0:
                raise zmq.Again()

    def close(self) -> None:
        self._poller = self._sock = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
