"""Client request encoding: msgpack (native) or JSON text (what QCG-PilotJob clients send).

The first non-blank byte tells them apart: JSON text starts with ``{`` or ``[``; a msgpack
request is a map (0x80-0x8f, 0xde, 0xdf). A reply goes back in the request's encoding.

Decoding is bounded: besides the transport's cap on a message's size, a request may nest at
most :data:`MAX_DEPTH` lists/maps, hold strings of at most :data:`MAX_STRING` characters and
lists/maps of at most :data:`MAX_ITEMS` items; past a limit it is a :class:`WireError` naming
the limit.

>>> decode_request(b'{"request": "status"}')
({'request': 'status'}, 'json')
>>> decode_request(encode_reply({"request": "status"}, "msgpack"))
({'request': 'status'}, 'msgpack')
>>> decode_request(b'[' * 100_000)
Traceback (most recent call last):
...
qcg_pilotjob.protocol.wire.WireError: request exceeds a limit: nested deeper than 64 levels
"""

from __future__ import annotations

import json
import math
from typing import Any, List, Optional, Tuple, Union

import msgpack

__all__ = [
    "MAX_DEPTH", "MAX_INT", "MAX_ITEMS", "MAX_STRING", "LimitError", "WireError", "check_limits",
    "decode_reply", "decode_request", "encode_reply", "encode_request", "loads_json", "value_problem",
]

#: Lists and maps nested in one request, at most.
MAX_DEPTH = 64
#: Characters of one string (bytes of one msgpack binary), at most.
MAX_STRING = 1 << 20
#: Items of one list or map, at most.
MAX_ITEMS = 1_000_000
#: Integers a stored value may hold, in absolute value, at most (the largest exact in a double).
MAX_INT = 2 ** 53


class WireError(ValueError):
    """Bytes that are neither a JSON nor a msgpack request; ``encoding`` is the best guess
    for the error reply."""

    def __init__(self, message: str, encoding: str) -> None:
        super().__init__(message)
        self.encoding = encoding


class LimitError(ValueError):
    """Decoded data past one of the limits; the message names it."""


def check_limits(obj: Any) -> None:
    """Raise :class:`LimitError` if ``obj`` nests deeper than MAX_DEPTH, or holds a string longer
    than MAX_STRING or a list/map larger than MAX_ITEMS (an iterative walk: no recursion)."""
    if isinstance(obj, (str, bytes)):
        obj = [obj]
    stack: List[Tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (list, dict)):
            continue
        if depth > MAX_DEPTH:
            raise LimitError(f"nested deeper than {MAX_DEPTH} levels")
        if len(item) > MAX_ITEMS:
            raise LimitError(f"a list or map of more than {MAX_ITEMS} items")
        for val in (_chain(item.items()) if isinstance(item, dict) else item):
            kind = type(val)
            if kind is str or kind is bytes:
                if len(val) > MAX_STRING:
                    raise LimitError(f"a string longer than {MAX_STRING} characters")
            elif kind is list or kind is dict:
                stack.append((val, depth + 1))


def _chain(pairs: Any) -> Any:
    for key, val in pairs:
        yield key
        yield val


def _show(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _scalar_problem(value: Any) -> Optional[str]:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{_show(repr(value))} is not valid UTF-8 text (it holds a lone surrogate)"
        return None
    if isinstance(value, int):
        if -MAX_INT <= value <= MAX_INT:
            return None
        text = str(value) if value.bit_length() <= 256 else f"an integer of {value.bit_length()} bits"
        return f"{text} is out of range (at most 2**53 in absolute value)"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} is not a finite number"
    return f"a value of type {type(value).__name__} cannot be stored"


def _fine(value: Any) -> bool:
    """True for a scalar that is surely fine, cheaply (the common case); False: look closer."""
    kind = type(value)
    if kind is str:
        return bool(value.isascii())
    if kind is int:
        return bool(-MAX_INT <= value <= MAX_INT)
    if kind is float:
        return bool(value - value == 0.0)  # False for NaN and infinities
    return value is None or kind is bool


def _key_problem(key: Any) -> Optional[str]:
    if not isinstance(key, str):
        return f"a key of type {type(key).__name__} (keys must be strings)"
    problem = _scalar_problem(key)
    return None if problem is None else f"key {problem}"


def value_problem(obj: Any, path: str = "") -> Optional[Tuple[str, str]]:
    """The first value in ``obj`` that cannot be stored and encoded back as JSON and msgpack,
    as ``(path, problem)``: text that is not UTF-8, an integer past :data:`MAX_INT`, a NaN or
    infinite number, a map key that is not a string, another type. None if all are fine.

    >>> value_problem({"args": ["a", "b"], "env": {"N": 10 ** 30}})
    ('env.N', '1000000000000000000000000000000 is out of range (at most 2**53 in absolute value)')
    """
    stack: List[Tuple[Any, str]] = [(obj, path)]
    while stack:
        item, where = stack.pop()
        is_map = isinstance(item, dict)
        if not is_map and not isinstance(item, (list, tuple)):
            problem = None if _fine(item) else _scalar_problem(item)
            if problem is not None:
                return where, problem
            continue
        for key, val in (item.items() if is_map else enumerate(item)):
            if is_map and not (type(key) is str and key.isascii()):
                problem = _key_problem(key)
                if problem is not None:
                    return where, problem
            if _fine(val):
                continue
            if is_map:
                sub = f"{where}.{_show(str(key))}" if where else _show(str(key))
            else:
                sub = f"{where}[{key}]"
            if isinstance(val, (dict, list, tuple)):
                stack.append((val, sub))
                continue
            problem = _scalar_problem(val)
            if problem is not None:
                return sub, problem
    return None


def loads_json(data: Union[bytes, str]) -> Any:
    """``json.loads`` within the limits: :class:`LimitError` past one, ``ValueError`` (also
    ``UnicodeDecodeError``) for what is not JSON text."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        obj = json.loads(text)
    except RecursionError:  # the C parser stops at the interpreter's recursion limit
        raise LimitError(f"nested deeper than {MAX_DEPTH} levels") from None
    check_limits(obj)
    return obj


def _sniff(data: bytes) -> str:
    head = data.lstrip(b" \t\r\n")[:1]
    if head in (b"{", b"[", b'"') or not head:
        return "json"
    byte = head[0]
    if 0x80 <= byte <= 0x8F or byte in (0xDE, 0xDF) or 0x90 <= byte <= 0x9F or byte in (0xDC, 0xDD):
        return "msgpack"
    return "json"


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, max_str_len=MAX_STRING,
                               max_bin_len=MAX_STRING, max_array_len=MAX_ITEMS, max_map_len=MAX_ITEMS,
                               max_ext_len=0)
    except msgpack.StackError:
        raise LimitError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        if "exceeds max_" in str(exc):  # msgpack's own limits: "... exceeds max_str_len(N)"
            raise LimitError(f"over a limit ({exc}; strings: {MAX_STRING}, "
                             f"lists and maps: {MAX_ITEMS})") from None
        raise


def decode_request(data: bytes) -> Tuple[Any, str]:
    encoding = _sniff(data)
    try:
        if encoding == "json":
            return loads_json(data), "json"
        obj = _unpack(data)
        check_limits(obj)
        return obj, "msgpack"
    except LimitError as exc:
        raise WireError(f"request exceeds a limit: {exc}", encoding) from None
    except Exception as exc:
        name = "JSON" if encoding == "json" else "msgpack"
        raise WireError(f"cannot decode {name} request: {exc}", encoding) from None


def encode_reply(obj: Any, encoding: str) -> bytes:
    if encoding == "msgpack":
        return bytes(msgpack.packb(obj, use_bin_type=True, default=str))
    return json.dumps(obj, default=str).encode("utf-8")


def encode_request(obj: Any, encoding: str = "msgpack") -> bytes:
    return encode_reply(obj, encoding)


def decode_reply(data: bytes, encoding: str = "msgpack") -> Any:
    if encoding == "msgpack":
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    return json.loads(data.decode("utf-8"))
