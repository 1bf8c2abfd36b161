"""The service log: one file per service or partition, the package's loggers write there.

The file is private (0600). A record that cannot be written (a full disk) never raises and
never prints a traceback: its bytes are kept and written with a later record or at close;
stderr gets one line at the first failure, and one at close if lines were lost.

>>> import logging, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "service.log")
>>> with service_log(path, "service x started", "info"):
...     logging.getLogger("qcg_pilotjob.doc").info("hello")
>>> open(path).read().splitlines()[0]
'service x started'
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

from ..auxdir import open_private_fd
from ..front.reports import LineWriter

__all__ = ["LogFileHandler", "close_service_log", "open_service_log", "service_log"]


def _to_stderr(path: str, exc: OSError, unwritten: int) -> None:
    sys.stderr.write(f"qcg-pm-service: warning: cannot write {path}: {exc}; its lines are kept in memory "
                     f"and written as soon as possible\n")


class LogFileHandler(logging.Handler):
    """Appends records to a private file through a :class:`LineWriter` (held back on error)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.writer = LineWriter(path, on_error=_to_stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a bad format string in a call: logging's own report
            self.handleError(record)
            return
        self.writer.write(text + "\n")
        self.writer.flush()

    def close(self) -> None:
        unwritten = self.writer.unwritten
        if not self.writer.close():
            sys.stderr.write(f"qcg-pm-service: warning: {unwritten} bytes of {self.path} could not be written "
                             f"({self.writer.error})\n")
        super().close()


def open_service_log(path: str, first_line: str, level: str) -> logging.Handler:
    """Write the log's first line (whatever the level), then log the package there.

    Raises ``OSError`` when the first line cannot be written (nothing is left of it)."""
    fd = open_private_fd(path, "a")
    try:
        size = os.fstat(fd).st_size
        data = (first_line + "\n").encode("utf-8", "backslashreplace")
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # no half line left for the next run to append to
            raise
    finally:
        os.close(fd)
    handler = LogFileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("qcg_pilotjob")
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    root.propagate = False
    return handler


def close_service_log(handler: logging.Handler) -> None:
    root = logging.getLogger("qcg_pilotjob")
    root.removeHandler(handler)
    handler.close()
    if not root.handlers:
        root.propagate = True


@contextlib.contextmanager
def service_log(path: str, first_line: str, level: str) -> Iterator[logging.Handler]:
    """The log open for the duration of a ``with`` block, closed however it ends."""
    handler = open_service_log(path, first_line, level)
    try:
        yield handler
    finally:
        close_service_log(handler)
