"""The one codec for partition traffic: msgpack, with a version in every envelope.

A frame holds a batch of messages: ``[version, [[type, field, ...], ...]]``. Decoding
checks every field of every message (:mod:`.checks`): what :func:`decode` and
:func:`decode_batch` return is well-formed, and any bytes that are not raise
:class:`DecodeError` naming the message type, the field and the problem, never anything
else. Encoding trusts its in-process input and checks nothing.

>>> from .messages import CancelMsg, HeartbeatMsg
>>> decode(encode(CancelMsg("a", [1, None])))
CancelMsg(job='a', iterations=[1, None])
>>> decode_batch(encode_batch([HeartbeatMsg(3), CancelMsg("b")]))
[HeartbeatMsg(used_cores=3, node_used={}), CancelMsg(job='b', iterations=None)]
>>> decode(encode(HeartbeatMsg(-1)))
Traceback (most recent call last):
...
qcg_pilotjob.protocol.codec.DecodeError: HeartbeatMsg.used_cores: -1 is less than 0
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, Callable, Dict, List, Sequence, Type

import msgpack

from .checks import FIELDS, Invalid, build, show
from .messages import PROTOCOL_VERSION, DispatchMsg, Message, TaskEventsMsg

__all__ = ["DecodeError", "decode", "decode_batch", "encode", "encode_batch"]


class DecodeError(ValueError):
    """Bytes that are not a well-formed message of this protocol version."""


def _dispatch_fields(msg: DispatchMsg) -> List[Any]:
    return [msg.desc.raw, msg.iter_total, [list(r) for r in msg.iterations] if msg.iterations else None]


def _events_fields(msg: TaskEventsMsg) -> List[Any]:
    return [[[e.job, e.iteration, e.state, e.time, e.data] for e in msg.events], msg.used_cores]


def _plain_fields(cls: Type[Message]) -> Callable[[Any], List[Any]]:
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if not names:
        return lambda msg: []
    if len(names) == 1:
        get_one = operator.attrgetter(names[0])
        return lambda msg: [get_one(msg)]
    get = operator.attrgetter(*names)
    return lambda msg: list(get(msg))


#: Per message class: its fields in wire order (computed once per class, not per message).
_ENCODERS: Dict[type, Callable[[Any], List[Any]]] = {cls: _plain_fields(cls) for cls in FIELDS}
_ENCODERS[DispatchMsg] = _dispatch_fields
_ENCODERS[TaskEventsMsg] = _events_fields


def _fields(msg: Message) -> List[Any]:
    enc = _ENCODERS.get(type(msg))
    if enc is None:
        raise TypeError(f"not a message: {msg!r}")
    return enc(msg)


def _build(mtype: Any, rest: List[Any]) -> Message:
    try:
        return build(mtype, rest)
    except Invalid as exc:
        raise DecodeError(str(exc)) from None


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise DecodeError(f"undecodable message: {type(exc).__name__}{': ' if str(exc) else ''}{exc}") from None


def _check_version(version: Any) -> None:
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {show(version)}, expected {PROTOCOL_VERSION}")


def encode(msg: Message) -> bytes:
    return bytes(msgpack.packb([PROTOCOL_VERSION, msg.TYPE, *_fields(msg)], use_bin_type=True))


def decode(data: bytes) -> Message:
    obj = _unpack(data)
    if type(obj) is not list or len(obj) < 2:
        raise DecodeError("a message is a list [version, type, ...]")
    _check_version(obj[0])
    return _build(obj[1], obj[2:])


def encode_batch(msgs: Sequence[Message]) -> bytes:
    return bytes(msgpack.packb([PROTOCOL_VERSION, [[m.TYPE, *_fields(m)] for m in msgs]], use_bin_type=True))


def decode_batch(data: bytes) -> List[Message]:
    obj = _unpack(data)
    if type(obj) is not list or len(obj) != 2 or type(obj[1]) is not list:
        raise DecodeError("a batch is a list [version, [messages]]")
    _check_version(obj[0])
    out: List[Message] = []
    for i, item in enumerate(obj[1]):
        if type(item) is not list or not item:
            raise DecodeError(f"a batched message is a list [type, ...] (message {i} of the batch)")
        try:
            out.append(build(item[0], item[1:]))
        except Invalid as exc:
            raise DecodeError(f"{exc} (message {i} of the batch)") from None
    return out

