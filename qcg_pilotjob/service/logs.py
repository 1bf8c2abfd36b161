"""The service log: one file per service or partition, the package's loggers write there.

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
from typing import Iterator

__all__ = ["close_service_log", "open_service_log", "service_log"]


def open_service_log(path: str, first_line: str, level: str) -> logging.Handler:
    """Write the log's first line (whatever the level), then log the package there."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(first_line + "\n")
    handler = logging.FileHandler(path)
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
