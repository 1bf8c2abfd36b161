"""Client request encoding: msgpack (native) or JSON text (what QCG-PilotJob clients send).

The first non-blank byte tells them apart: JSON text starts with ``{`` or ``[``; a msgpack
request is a map (0x80-0x8f, 0xde, 0xdf). A reply goes back in the request's encoding.

>>> decode_request(b'{"request": "status"}')
({'request': 'status'}, 'json')
>>> decode_request(encode_reply({"request": "status"}, "msgpack"))
({'request': 'status'}, 'msgpack')
"""

from __future__ import annotations

import json
from typing import Any, Tuple

import msgpack

__all__ = ["WireError", "decode_reply", "decode_request", "encode_reply", "encode_request"]


class WireError(ValueError):
    """Bytes that are neither a JSON nor a msgpack request; ``encoding`` is the best guess
    for the error reply."""

    def __init__(self, message: str, encoding: str) -> None:
        super().__init__(message)
        self.encoding = encoding


def _sniff(data: bytes) -> str:
    head = data.lstrip(b" \t\r\n")[:1]
    if head in (b"{", b"[", b'"') or not head:
        return "json"
    byte = head[0]
    if 0x80 <= byte <= 0x8F or byte in (0xDE, 0xDF) or 0x90 <= byte <= 0x9F or byte in (0xDC, 0xDD):
        return "msgpack"
    return "json"


def decode_request(data: bytes) -> Tuple[Any, str]:
    encoding = _sniff(data)
    if encoding == "json":
        try:
            return json.loads(data.decode("utf-8")), "json"
        except (UnicodeDecodeError, ValueError) as exc:
            raise WireError(f"cannot decode JSON request: {exc}", "json") from None
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False), "msgpack"
    except Exception as exc:
        raise WireError(f"cannot decode msgpack request: {exc}", "msgpack") from None


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
