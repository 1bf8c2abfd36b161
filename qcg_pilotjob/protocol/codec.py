"""The one codec for partition traffic: msgpack, with a version in every envelope.

>>> from .messages import CancelMsg
>>> decode(encode(CancelMsg("a", [1, None])))
CancelMsg(job='a', iterations=[1, None])
"""

from __future__ import annotations

from typing import Any, Dict, List, Type

import msgpack

from ..errors import JobDescriptionError
from ..jobdesc import JobDescription
from .messages import (
    PROTOCOL_VERSION,
    CancelMsg,
    DispatchMsg,
    ForgetMsg,
    Message,
    ShutdownMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
)

__all__ = ["DecodeError", "decode", "encode"]

_TYPES: Dict[int, Type[Message]] = {
    cls.TYPE: cls
    for cls in (DispatchMsg, TaskEventsMsg, CancelMsg, ForgetMsg, ShutdownMsg, StoppedMsg)
}


class DecodeError(ValueError):
    """Bytes that are not a message of this protocol version."""


def _fields(msg: Message) -> List[Any]:
    if isinstance(msg, DispatchMsg):
        return [msg.desc.raw, msg.iter_total, [list(r) for r in msg.iterations] if msg.iterations else None]
    if isinstance(msg, TaskEventsMsg):
        return [[[e.job, e.iteration, e.state, e.time, e.data] for e in msg.events], msg.used_cores]
    if isinstance(msg, CancelMsg):
        return [msg.job, msg.iterations]
    if isinstance(msg, ForgetMsg):
        return [msg.jobs]
    if isinstance(msg, ShutdownMsg):
        return [msg.reason]
    if isinstance(msg, StoppedMsg):
        return []
    raise TypeError(f"not a message: {msg!r}")


def encode(msg: Message) -> bytes:
    return msgpack.packb([PROTOCOL_VERSION, msg.TYPE, *_fields(msg)], use_bin_type=True)


def decode(data: bytes) -> Message:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise DecodeError(f"undecodable message: {exc}") from None
    if not isinstance(obj, list) or len(obj) < 2:
        raise DecodeError("a message is a list [version, type, ...]")
    version, mtype, *rest = obj
    if version != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {version!r}, expected {PROTOCOL_VERSION}")
    try:
        if mtype == DispatchMsg.TYPE:
            raw, total, its = rest
            return DispatchMsg(JobDescription.from_dict(raw), int(total),
                               [(int(a), int(b)) for a, b in its] if its else None)
        if mtype == TaskEventsMsg.TYPE:
            events, used = rest
            return TaskEventsMsg([TaskEvent(*e) for e in events], int(used))
        if mtype == CancelMsg.TYPE:
            return CancelMsg(*rest)
        if mtype == ForgetMsg.TYPE:
            return ForgetMsg(*rest)
        if mtype == ShutdownMsg.TYPE:
            return ShutdownMsg(*rest)
        if mtype == StoppedMsg.TYPE:
            return StoppedMsg()
    except (TypeError, ValueError, JobDescriptionError) as exc:
        raise DecodeError(f"malformed message of type {mtype!r}: {exc}") from None
    raise DecodeError(f"unknown message type {mtype!r}")
