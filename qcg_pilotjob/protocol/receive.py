"""The one receive loop of every socket that serves peers, with one error policy.

:func:`receive_loop` awaits frames on a socket and hands each one to a synchronous
handler inside a :class:`FrameGuard`, so that no single frame can end the loop:

- a handler that raises is logged at ERROR with its traceback the first time for each
  peer (later failures of that peer are one WARNING line each) and the loop goes on;
- a ``ZMQError`` on receive ends the loop only when the socket or its context is closed
  (``ETERM``, ``ENOTSOCK``): that is how a service stops its loops; any other error is
  logged and the loop goes on;
- ``CancelledError`` ends it (the owner cancelled the task).

Decoding errors are the handler's business: a handler logs a bad frame at WARNING with
the peer's identity and drops it (see :meth:`FrameGuard.bad_frame`).

>>> import logging
>>> guard = FrameGuard(logging.getLogger("doc"), "demo")
>>> guard.run("peer-1", lambda: 1 // 0)
False
>>> guard.failures
1
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, Callable, List, Set

import zmq

__all__ = ["FrameGuard", "Pacer", "let_loop_run", "receive_loop"]

#: seconds of work (frames handled, requests of a file) before the event loop gets a pass
_TURN = 0.05
_clock = time.monotonic

#: errnos that mean the socket (or its context) was closed: the loop ends
_CLOSED = (zmq.ETERM, zmq.ENOTSOCK)


class FrameGuard:
    """Runs one frame's handler; an exception is logged and swallowed, never re-raised."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.failures = 0
        self.bad_frames = 0
        self._traced: Set[str] = set()

    def run(self, peer: str, handler: Callable[[], Any]) -> bool:
        """Call ``handler()``; False if it raised (then logged)."""
        try:
            handler()
        except Exception as exc:
            self.failures += 1
            if peer not in self._traced:
                self._traced.add(peer)
                self.log.exception("%s: a frame from %s failed; the frame is dropped and the loop goes on",
                                   self.what, peer)
            else:
                self.log.warning("%s: a frame from %s failed again: %s: %s", self.what, peer,
                                 type(exc).__name__, exc)
            return False
        return True

    def bad_frame(self, peer: str, problem: object) -> None:
        """Log an invalid frame of ``peer`` (it is dropped)."""
        self.bad_frames += 1
        self.log.warning("%s: dropped an invalid frame from %s: %s", self.what, peer, problem)


async def receive_loop(sock: Any, handle: Callable[[List[bytes]], None], guard: FrameGuard,
                       peer_of: Callable[[List[bytes]], str]) -> None:
    """Receive multipart frames from ``sock`` and hand each to ``handle`` under ``guard``
    until the socket is closed or the task is cancelled."""
    pacer = Pacer()
    while True:
        try:
            frames: List[bytes] = await sock.recv_multipart()
        except zmq.ZMQError as exc:
            if exc.errno in _CLOSED:
                return
            guard.log.warning("%s: receive failed: %s", guard.what, exc)
            continue
        guard.run(_peer(peer_of, frames), functools.partial(handle, frames))
        # a receive of a frame already queued does not yield: a governor fed frames of
        # events by ten busy partitions ran this loop alone, sent no heartbeat for 30 s,
        # and its partitions stopped
        await pacer.pace()


class Pacer:
    """Lets the event loop run (:func:`let_loop_run`) once a loop that does not yield by
    itself has worked for :data:`_TURN` seconds."""

    def __init__(self) -> None:
        self.turn = _clock()

    async def pace(self, now: bool = False) -> None:
        """Let the event loop run if the turn is over (or ``now``)."""
        if now or _clock() - self.turn > _TURN:
            await let_loop_run()
            self.turn = _clock()


async def let_loop_run() -> None:
    """Give the event loop one whole pass: what is ready, the timers that are due
    (heartbeats) and what they queue in turn (the frames that carry the beats). A
    ``sleep(0)`` resumes the caller before the latter."""
    await asyncio.sleep(0.001)


def _peer(peer_of: Callable[[List[bytes]], str], frames: List[bytes]) -> str:
    try:
        return peer_of(frames)
    except Exception:  # a peer name is for the log only
        return "an unknown peer"


def identity_of(frames: List[bytes]) -> str:
    """The peer name of a ROUTER frame: its routing identity, printable."""
    if len(frames) < 2:
        return "an unknown peer"
    ident = frames[0]
    try:
        text = ident.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    return text if text and text.isprintable() else f"0x{ident.hex()}"


__all__ += ["identity_of"]
