"""``jobs.report``, the journal and ``final_status``: files written in batches, never lost.

A line is buffered in memory and written with the next flush. :class:`Flusher` flushes its
``per_turn`` writers (the service: the journal and the report) at the end of the loop turn
that gave them lines, one write per file and turn: a final state is on disk before the
service does anything else. Other writers are flushed within ``interval`` seconds of their
first unflushed line. One raw file descriptor per writer, kept open, files 0600.

A write that fails (a full disk, a quota, an I/O error: any ``OSError``) never raises out of
a flush: the writer logs it once (WARNING, with the error and the path), keeps the bytes not
written (a partial write keeps only its unwritten tail, so no line is written twice) and
the flusher tries again a moment later. One file's failure does not hold back another's.
What is still unwritten at :meth:`Flusher.close` is listed in :attr:`Flusher.lost`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..auxdir import open_private_fd, write_private_file
from .registry import format_rtime

__all__ = ["FileImage", "Flusher", "LineWriter", "format_report"]

_log = logging.getLogger("qcg_pilotjob.front.reports")

ErrorReporter = Callable[[str, OSError, int], None]


def log_write_error(path: str, exc: OSError, unwritten: int) -> None:
    """The default way a writer says, once, that it cannot write."""
    _log.warning("cannot write %s: %s; %d bytes are kept in memory and written as soon as possible",
                 path, exc, unwritten)


class _Pending:
    """Bytes not yet on disk, and whether (and why) the last attempt failed."""

    def __init__(self, path: str, on_error: Optional[ErrorReporter]) -> None:
        self.path = path
        self.error: Optional[OSError] = None
        self.on_error = on_error or log_write_error

    def failed(self, exc: OSError, unwritten: int) -> None:
        if self.error is None:  # once per outage
            self.error = exc
            self.on_error(self.path, exc, unwritten)

    def recovered(self) -> None:
        if self.error is not None:
            self.error = None
            _log.info("%s is written again: nothing held back any more", self.path)


class LineWriter:
    """Buffered appender of text lines to one file; a failed write keeps its bytes."""

    def __init__(self, path: Optional[str], on_error: Optional[ErrorReporter] = None) -> None:
        self.path = path
        self._state = _Pending(path or "", on_error)
        self._buf: List[str] = []
        self._pending = b""
        self._fd: Optional[int] = None
        if path:
            if _ends_without_newline(path):  # a line cut by a kill: the next line starts on its own
                self._pending = b"\n"
            self._fd = open_private_fd(path, "a")
        self.on_dirty: Optional[Callable[[], None]] = None

    @property
    def enabled(self) -> bool:
        """False for a writer of no file (``--report-format none``): skip formatting too."""
        return self._fd is not None

    @property
    def error(self) -> Optional[OSError]:
        """The error of the last write, while bytes are held back because of it."""
        return self._state.error

    @property
    def unwritten(self) -> int:
        """Bytes (and lines not yet encoded, counted as characters) not on disk yet."""
        return len(self._pending) + sum(len(t) for t in self._buf)

    def write(self, text: str) -> None:
        if self._fd is None:
            return
        if not self._buf and not self._pending and self.on_dirty is not None:
            self.on_dirty()
        self._buf.append(text)

    def flush(self) -> bool:
        """Write what is buffered; False if something is still held back (never raises)."""
        if self._fd is None:
            return True
        if self._buf:
            self._pending += "".join(self._buf).encode("utf-8", "backslashreplace")
            self._buf = []
        while self._pending:
            try:
                n = os.write(self._fd, self._pending)
            except OSError as exc:
                self._state.failed(exc, len(self._pending))
                return False
            self._pending = self._pending[n:]
        self._state.recovered()
        return True

    def close(self) -> bool:
        """Flush a last time and close; False if bytes could not be written."""
        ok = self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return ok


def _ends_without_newline(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


class FileImage:
    """A small file written whole (``final_status``): a new copy replaces the old one at
    once (temporary file and rename), and a failed write is tried again at later flushes."""

    def __init__(self, path: str, on_error: Optional[ErrorReporter] = None) -> None:
        self.path = path
        self._state = _Pending(path, on_error)
        self._data: Optional[bytes] = None
        self.on_dirty: Optional[Callable[[], None]] = None

    @property
    def error(self) -> Optional[OSError]:
        return self._state.error

    @property
    def unwritten(self) -> int:
        return len(self._data) if self._data is not None else 0

    def set(self, text: str) -> bool:
        """The file's new content, written at once if possible."""
        self._data = text.encode("utf-8", "backslashreplace")
        return self.flush()

    def flush(self) -> bool:
        if self._data is None:
            return True
        try:
            write_private_file(self.path, self._data)
        except OSError as exc:
            self._state.failed(exc, len(self._data))
            return False
        self._data = None
        self._state.recovered()
        return True

    def close(self) -> bool:
        return self.flush()


class Flusher:
    """Flushes ``per_turn`` writers at the end of the loop turn that dirtied them, the
    others at most ``interval`` seconds after their first line; what could not be written is
    tried again every ``retry`` seconds (a writer that failed does not flush at every turn)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writers: Sequence[Any], interval: float = 0.5,
                 per_turn: Sequence[Any] = (), retry: float = 0.5) -> None:
        self.loop = loop
        self.writers: List[Any] = [*per_turn, *writers]
        self.interval = interval
        self.retry = retry
        self.lost: List[Any] = []
        self._per_turn = list(per_turn)
        self._timer: Optional[asyncio.TimerHandle] = None
        self._turn: Optional[asyncio.Handle] = None
        for w in writers:
            w.on_dirty = self._dirty
        for w in per_turn:
            w.on_dirty = self._dirty_turn

    def add(self, writer: Any) -> None:
        """One more writer, flushed with the others (``final_status``)."""
        self.writers.append(writer)

    def _dirty(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self.flush)

    def _dirty_turn(self) -> None:
        if self._turn is None:
            self._turn = self.loop.call_soon(self._flush_turn)

    def _flush_turn(self) -> None:
        self._turn = None
        self._flush(self._per_turn)

    def flush(self) -> None:
        self._timer = None
        self._flush(self.writers)

    def _flush(self, writers: Sequence[Any]) -> None:
        held = [w for w in writers if not w.flush()]
        if held and self._timer is None:
            self._timer = self.loop.call_later(self.retry, self.flush)

    def close(self) -> None:
        """Flush and close every writer; those that still hold bytes are in :attr:`lost`."""
        for handle in (self._timer, self._turn):
            if handle is not None:
                handle.cancel()
        self._timer = self._turn = None
        self.lost = [w for w in self.writers if not w.close()]


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
