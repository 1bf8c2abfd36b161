"""``--show-progress``: a live line on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import asyncio
import time
from typing import IO, TYPE_CHECKING, Optional

from ..api.top import eta_text
from ..states import JobState

if TYPE_CHECKING:
    from ..front.core import Front

__all__ = ["Progress"]


class Progress:
    def __init__(self, front: Front, out: IO[str], tty_interval: float = 0.5, plain_interval: float = 10.0) -> None:
        self.front = front
        self.out = out
        self.tty = out.isatty()
        self.interval = tty_interval if self.tty else plain_interval
        self._handle: Optional[asyncio.TimerHandle] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._t0 = time.monotonic()
        self._last: Optional[tuple] = None

    def line(self) -> str:
        t = self.front.task_counts
        done = t[JobState.SUCCEED]
        failed = t[JobState.FAILED] + t[JobState.CANCELED] + t[JobState.OMITTED]
        running = t[JobState.EXECUTING] + t[JobState.SCHEDULED]
        queued = t[JobState.QUEUED]
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        rate = (done + failed) / elapsed
        eta = "?" if rate <= 0 else eta_text(int((queued + running) / rate))
        text = (f"done {done}  failed {failed}  running {running}  queued {queued}  "
                f"{rate:.1f} tasks/s  ETA {eta}")
        links = self.front.links
        if len(links) > 1:  # a governor: the same figures per partition
            text += "  |  " + "  ".join(
                f"{link.name}: {'LOST ' if link.lost else ''}run {link.running} done {link.succeeded} "
                f"failed {link.failed}" for link in links)
        return text

    def _tick(self) -> None:
        self.show()
        assert self._loop is not None
        self._handle = self._loop.call_later(self.interval, self._tick)

    def show(self, final: bool = False) -> None:
        text = self.line()
        if self.tty:
            self.out.write("\r\x1b[2K" + text + ("\n" if final else ""))
        elif final or text != self._last:
            self.out.write(text + "\n")
        self._last = text  # type: ignore[assignment]
        self.out.flush()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_later(self.interval if not self.tty else 0.1, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.show(final=True)

