"""Lifelines: a pipe whose write end a parent holds; its EOF means the parent is gone.

A process started by another (a service by ``LocalManager``, a partition by its governor)
watches the read end with the event loop and stops when it closes, so it never outlives
the program that started it, however that program ended.
"""

from __future__ import annotations

import asyncio
import os
from typing import Callable

__all__ = ["watch_lifeline"]


def watch_lifeline(loop: asyncio.AbstractEventLoop, fd: int, on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` once when the other end of the pipe ``fd`` is closed."""

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            on_gone()

    loop.add_reader(fd, readable)
