"""The one codec for partition traffic: msgpack, with a version in every envelope.

A frame holds a batch of messages: ``[version, [[type, field, ...], ...]]``.

>>> from .messages import CancelMsg, HeartbeatMsg
>>> decode(encode(CancelMsg("a", [1, None])))
CancelMsg(job='a', iterations=[1, None])
>>> decode_batch(encode_batch([HeartbeatMsg(3), CancelMsg("b")]))
[HeartbeatMsg(used_cores=3), CancelMsg(job='b', iterations=None)]
"""

from __future__ import annotations

import dataclasses
from typing import Any, AsyncIterator, Dict, List, Sequence, Type

import msgpack
import zmq

from ..errors import JobDescriptionError
from ..jobdesc import JobDescription
from .messages import (
    PROTOCOL_VERSION,
    AgentHelloMsg,
    AgentStopMsg,
    CancelMsg,
    DispatchMsg,
    ExitMsg,
    ForgetMsg,
    HeartbeatMsg,
    Message,
    NodeLostMsg,
    RegisteredMsg,
    RegisterMsg,
    RunMsg,
    ShutdownMsg,
    SignalMsg,
    StartedMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
)

__all__ = ["DecodeError", "decode", "decode_batch", "encode", "encode_batch", "receive_batches"]

_TYPES: Dict[int, Type[Message]] = {
    cls.TYPE: cls
    for cls in (DispatchMsg, TaskEventsMsg, CancelMsg, ForgetMsg, ShutdownMsg, StoppedMsg, RegisterMsg,
                RegisteredMsg, HeartbeatMsg, NodeLostMsg, AgentHelloMsg, RunMsg, StartedMsg, ExitMsg, SignalMsg,
                AgentStopMsg)
}


class DecodeError(ValueError):
    """Bytes that are not a message of this protocol version."""


def _fields(msg: Message) -> List[Any]:
    if isinstance(msg, DispatchMsg):
        return [msg.desc.raw, msg.iter_total, [list(r) for r in msg.iterations] if msg.iterations else None]
    if isinstance(msg, TaskEventsMsg):
        return [[[e.job, e.iteration, e.state, e.time, e.data] for e in msg.events], msg.used_cores]
    if type(msg) in _TYPES.values() and dataclasses.is_dataclass(msg):
        return [getattr(msg, f.name) for f in dataclasses.fields(msg)]
    raise TypeError(f"not a message: {msg!r}")


def _build(mtype: Any, rest: List[Any]) -> Message:
    try:
        if mtype == DispatchMsg.TYPE:
            raw, total, its = rest
            return DispatchMsg(JobDescription.from_dict(raw), int(total),
                               [(int(a), int(b)) for a, b in its] if its else None)
        if mtype == TaskEventsMsg.TYPE:
            events, used = rest
            return TaskEventsMsg([TaskEvent(*e) for e in events], int(used))
        cls = _TYPES.get(mtype) if isinstance(mtype, int) else None
        if cls is not None:
            return cls(*rest)
    except (TypeError, ValueError, JobDescriptionError) as exc:
        raise DecodeError(f"malformed message of type {mtype!r}: {exc}") from None
    raise DecodeError(f"unknown message type {mtype!r}")


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise DecodeError(f"undecodable message: {exc}") from None


def encode(msg: Message) -> bytes:
    return bytes(msgpack.packb([PROTOCOL_VERSION, msg.TYPE, *_fields(msg)], use_bin_type=True))


def decode(data: bytes) -> Message:
    obj = _unpack(data)
    if not isinstance(obj, list) or len(obj) < 2:
        raise DecodeError("a message is a list [version, type, ...]")
    version, mtype, *rest = obj
    if version != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {version!r}, expected {PROTOCOL_VERSION}")
    return _build(mtype, rest)


def encode_batch(msgs: Sequence[Message]) -> bytes:
    return bytes(msgpack.packb([PROTOCOL_VERSION, [[m.TYPE, *_fields(m)] for m in msgs]], use_bin_type=True))


def decode_batch(data: bytes) -> List[Message]:
    obj = _unpack(data)
    if not isinstance(obj, list) or len(obj) != 2 or not isinstance(obj[1], list):
        raise DecodeError("a batch is a list [version, [messages]]")
    version, items = obj
    if version != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {version!r}, expected {PROTOCOL_VERSION}")
    out = []
    for item in items:
        if not isinstance(item, list) or not item:
            raise DecodeError("a batched message is a list [type, ...]")
        out.append(_build(item[0], item[1:]))
    return out


async def receive_batches(sock: Any, peer: str, log: Any) -> AsyncIterator[List[Message]]:
    """Batches arriving on a DEALER socket, forever; receive errors and undecodable frames
    from ``peer`` are logged and skipped."""
    while True:
        try:
            frame = await sock.recv()
        except zmq.ZMQError as exc:
            log.warning("receive from %s failed: %s", peer, exc)
            continue
        try:
            yield decode_batch(frame)
        except DecodeError as exc:
            log.warning("dropped a bad frame from %s: %s", peer, exc)
