"""The one heartbeat and loss watcher: governor <-> partitions, partition <-> agents.

Every ``interval`` seconds :meth:`HeartbeatWatcher.tick` looks at each watched peer: a
peer known to be gone (``gone`` returns a reason, e.g. its srun step ended) or silent for
more than ``lost_after`` seconds is reported once to ``on_lost`` and no longer watched;
every other peer is sent a heartbeat. Any message from a peer counts as a sign of life
(:meth:`seen`). The clock is injectable, so the logic is tested without sleeping.

Silence counts only while this side was listening: when a tick comes much later than due
(the loop was busy, e.g. registering ten 100,000-job submits in a row), the peers'
messages of that time are still unread in the socket, so the time this side was deaf is
not held against them (:attr:`HeartbeatWatcher.stall_after`).

>>> now = [0.0]
>>> beats, lost = [], []
>>> w = HeartbeatWatcher(1.0, 3.0, send_beat=beats.append, on_lost=lambda p, why: lost.append((p, why)),
...                      clock=lambda: now[0])
>>> w.watch("a"); w.watch("b")
>>> now[0] = 2.0; w.seen("a"); w.tick(); beats
['a', 'b']
>>> now[0] = 4.0; w.tick(); lost
[('b', 'no message for 4.0s')]
>>> w.watched()
['a']
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Dict, Generic, Hashable, List, Optional, TypeVar

__all__ = ["LOST_AFTER_BEATS", "HeartbeatWatcher"]

#: heartbeats a peer may miss before it is lost: a dead process is noticed at once (its
#: pid or srun step ends); this margin is for a hung one, and must outlast a busy moment
#: such as registering a 100,000-job submit
LOST_AFTER_BEATS = 30

P = TypeVar("P", bound=Hashable)


class HeartbeatWatcher(Generic[P]):
    """Heartbeats to peers and loss detection for them."""

    def __init__(self, interval: float, lost_after: float, *, send_beat: Callable[[P], None],
                 on_lost: Callable[[P, str], None], gone: Optional[Callable[[P], Optional[str]]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.lost_after = lost_after
        self.send_beat = send_beat
        self.on_lost = on_lost
        self.gone = gone
        self.clock = clock
        self._last: Dict[P, float] = {}
        #: a tick later than this after the one before means this side was not listening
        self.stall_after = max(5 * interval, lost_after / 3)
        self._last_tick: Optional[float] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def watch(self, peer: P) -> None:
        """Start watching ``peer`` (as if it had just been heard from)."""
        self._last[peer] = self.clock()

    def forget(self, peer: P) -> None:
        """Stop watching ``peer`` (it stopped in order, or was lost)."""
        self._last.pop(peer, None)

    def seen(self, peer: P) -> None:
        """``peer`` sent something: it is alive. Unwatched peers stay unwatched."""
        if peer in self._last:
            self._last[peer] = self.clock()

    def watched(self) -> List[P]:
        return list(self._last)

    def silence(self, peer: P) -> float:
        return self.clock() - self._last[peer]

    def tick(self) -> None:
        """One round: lose the gone and the silent, beat the others."""
        now = self.clock()
        if self._last_tick is not None and now - self._last_tick > self.stall_after:
            deaf = now - self._last_tick - self.interval  # (what peers said then waits unread)
            for peer, last in self._last.items():
                self._last[peer] = min(now, last + deaf)  # (one heard just now stays at now)
        self._last_tick = now
        for peer, last in list(self._last.items()):
            why = self.gone(peer) if self.gone is not None else None
            if why is None and now - last > self.lost_after:
                why = f"no message for {now - last:.1f}s"
            if why is not None:
                del self._last[peer]
                self.on_lost(peer, why)
            else:
                self.send_beat(peer)

    # --- on an event loop --------------------------------------------------------------
    def start(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        """Tick every ``interval`` seconds on ``loop`` (the running one by default)."""
        self._loop = loop or asyncio.get_running_loop()
        self._timer = self._loop.call_later(self.interval, self._run)

    def _run(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self.interval, self._run)  # first: a raising tick cannot stop beats
        self.tick()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
