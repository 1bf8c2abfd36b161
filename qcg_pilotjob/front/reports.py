"""``jobs.report`` and the journal: append-only files written in batches.

A line is buffered in memory and written with the next flush; :class:`Flusher` flushes
every dirty writer within ``interval`` seconds of its first unflushed line, so a killed
service loses at most the last second. One file handle per writer, kept open.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional

from .registry import format_rtime

__all__ = ["Flusher", "LineWriter", "format_report"]


class LineWriter:
    """Buffered appender of text lines to one file."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._buf: List[str] = []
        self.on_dirty: Optional[Any] = None

    @property
    def enabled(self) -> bool:
        """False for a writer of no file (``--report-format none``): skip formatting too."""
        return self._fh is not None

    def write(self, text: str) -> None:
        if self._fh is None:
            return
        if not self._buf and self.on_dirty is not None:
            self.on_dirty()
        self._buf.append(text)

    def flush(self) -> None:
        if self._fh is not None and self._buf:
            self._fh.write("".join(self._buf))
            self._buf = []
            self._fh.flush()

    def close(self) -> None:
        self.flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Flusher:
    """Flushes writers at most ``interval`` seconds after they got their first line."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writers: List[LineWriter], interval: float = 0.5) -> None:
        self.loop = loop
        self.writers = writers
        self.interval = interval
        self._handle: Optional[asyncio.TimerHandle] = None
        for w in writers:
            w.on_dirty = self._dirty

    def _dirty(self) -> None:
        if self._handle is None:
            self._handle = self.loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        self._handle = None
        for w in self.writers:
            w.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for w in self.writers:
            w.close()


def format_report(entry: Dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(entry, separators=(",", ":"), default=str) + "\n"
    lines = [f"{entry['name']} ({entry['state']})" + (f" {entry['messages']}" if entry.get("messages") else "")]
    for h in entry.get("history", ()):
        lines.append(f"\t{h['date']}: {h['state']}")
    for key, val in (entry.get("runtime") or {}).items():
        lines.append(f"\t{key}: {val}")
    if "iterations" in entry:
        it = entry["iterations"]
        lines.append(f"\titerations: {it['total']} total, {it['finished']} finished, {it['failed']} failed")
    return "\n".join(lines) + "\n"


__all__ += ["format_rtime"]
