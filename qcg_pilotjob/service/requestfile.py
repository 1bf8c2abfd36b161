"""The file interface: a JSON list of requests, handled in order by the front.

Each request done is journalled, so a resumed run does not do it again.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Callable, List

from ..errors import ConfigError
from ..protocol.receive import Pacer
from ..protocol.wire import LimitError, loads_json

if TYPE_CHECKING:
    from ..front.core import Front
    from ..front.journal import Journal

__all__ = ["load_requests", "process_requests"]

_log = logging.getLogger("qcg_pilotjob.service")

#: requests of a file handled, at most, before the loop runs (and at most 50 ms of them:
#: ten 100,000-job submits in a row kept it from sending heartbeats for 80 s, and the
#: partitions of a governor took it for hung); cheap requests between a submit and a cancel
#: let the submitted job start first (as they always did)
_BATCH = 64


def load_requests(path: str) -> List[Any]:
    """Read a request file: a JSON list of requests (a single object is taken as one), UTF-8
    text within the limits of a network request (``protocol.wire``)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read request file {path}: {exc.strerror}") from None
    try:
        data = loads_json(raw)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"request file {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except LimitError as exc:
        raise ConfigError(f"request file {path} exceeds a limit: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"request file {path} is not valid JSON: {exc}") from None
    try:  # a \ud800 escape makes text that cannot be written back (report, journal, replies)
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        before = exc.object[max(0, exc.start - 40):exc.start]
        raise ConfigError(f"request file {path} holds text that is not valid UTF-8 (a lone surrogate "
                          f"\\u{ord(exc.object[exc.start]):04x} after {before!r})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ConfigError(f"request file {path} must hold a JSON list of requests, not {type(data).__name__}")
    return data


def _short(obj: Any, limit: int = 300) -> str:
    text = json.dumps(obj, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit] + "..."


async def process_requests(front: Front, journal: Journal, path: str, requests: List[Any], offset: int,
                           interrupted: Callable[[], bool]) -> bool:
    """Handle ``requests[offset:]``; False if ``interrupted()`` stopped it before the end."""
    total = len(requests)
    pacer = Pacer()
    for index in range(offset, total):
        if interrupted():
            return False
        req = requests[index]
        resp = front.handle_request(req)
        journal.record("file", path=path, done=index + 1)
        name = req.get("request") if isinstance(req, dict) else None
        if resp.get("code") == 0:
            _log.info("request %d/%d (%s): %s", index + 1, total, name, _short(resp))
        else:
            _log.error("request %d/%d (%s) failed: %s", index + 1, total, name, resp.get("message"))
        await pacer.pace(now=index % _BATCH == _BATCH - 1)  # (tasks started meanwhile run)
    return True
