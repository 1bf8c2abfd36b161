"""A seeded generator of hostile messages for the fuzz tests (tests/*/test_fuzz_*.py).

From a corpus of valid messages it makes, with one ``random.Random(seed)``:

- ``mutated``: a valid message with one to three of its values replaced by a hostile one
  (a lone surrogate, a 70,000-character string, an integer past 2**64, NaN, infinity, a
  negative count, a wrong type, a nested container), a key deleted, or a key added;
- ``bytes``: the encoded valid message with bytes flipped, cut off, repeated or spliced;
- ``random``: a hostile value alone (not even a request);
- ``deep``: containers nested 100,000 deep, or a 5 MB frame;
- ``fields`` (:meth:`Fuzzer.frame` of a batch): the batch envelope kept, one to three of the
  message's fields mutated, so that more frames pass the codec and reach the logic behind it.

The same seed gives the same messages, so a failure is reproduced by its seed. Hostile
strings never name a program or a path outside the working directory: whatever a mutated
job runs fails to start or runs ``/bin/true``.

>>> gen = Fuzzer(1)
>>> kind, value = gen.message({"request": "listJobs"})
>>> kind in KINDS
True
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from typing import Any, List, Sequence, Tuple

import msgpack

__all__ = ["KINDS", "Fuzzer", "pack"]

KINDS = ("mutated", "fields", "bytes", "random", "deep")

HOSTILE_STRINGS: Sequence[str] = (
    "", " ", "\ud800", "s\udfff", "\x00", "a\x00b", "x" * 70_000, "${it}", "${", "%s%n", "é€😀",
    "\n\r\t", "true", "-1", "1e400", "NaN", "not-a-state", "n0:", ":", "0-", "10:00:00:00", "-5s",
)
HOSTILE_NUMBERS: Sequence[Any] = (
    -1, 0, 1, 2, -2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**30, 1e30, -1e30, 1e308, float("inf"),
    float("-inf"), float("nan"), 0.5, -0.0, True, False, None,
)


def pack(value: Any) -> bytes:
    """msgpack bytes of ``value``, hostile values included: a lone surrogate travels as the
    invalid UTF-8 it becomes, an integer msgpack cannot hold as a float."""
    try:
        return bytes(msgpack.packb(value, unicode_errors="surrogatepass"))
    except (OverflowError, ValueError, TypeError):
        return bytes(msgpack.packb(json.loads(json.dumps(value, default=str), parse_int=float),
                                   unicode_errors="surrogatepass"))


class Fuzzer:
    """Hostile variants of valid messages; :attr:`made` counts them by kind."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.made: Counter[str] = Counter()

    # --- values ---------------------------------------------------------------------------
    def hostile(self, depth: int = 0) -> Any:
        roll = self.rng.random()
        if roll < 0.4:
            return self.rng.choice(HOSTILE_STRINGS)
        if roll < 0.8 or depth > 2:
            return self.rng.choice(HOSTILE_NUMBERS)
        if roll < 0.9:
            return [self.hostile(depth + 1) for _ in range(self.rng.randrange(4))]
        return {self.rng.choice(HOSTILE_STRINGS[:12]): self.hostile(depth + 1) for _ in range(self.rng.randrange(3))}

    def deep(self) -> Any:
        """Nested 100,000 deep (as a list or a dict), or one huge string."""
        roll = self.rng.random()
        if roll < 0.4:
            return "[" * 100_000  # a text frame, not a value
        if roll < 0.7:
            return b"\x91" * 100_000  # msgpack: a list holding a list holding ...
        return {"request": "submit", "jobs": [{"name": "big", "execution": {"exec": "x" * 5_000_000}}]}

    # --- structure -----------------------------------------------------------------------
    def _slots(self, obj: Any, out: List[Tuple[Any, Any]]) -> List[Tuple[Any, Any]]:
        """Every (container, key) in ``obj``, depth first."""
        if isinstance(obj, dict):
            for key in list(obj):
                out.append((obj, key))
                self._slots(obj[key], out)
        elif isinstance(obj, list):
            for i in range(len(obj)):
                out.append((obj, i))
                self._slots(obj[i], out)
        return out

    def mutate(self, valid: Any) -> Any:
        obj = copy.deepcopy(valid)
        for _ in range(self.rng.randint(1, 3)):
            slots = self._slots(obj, [])
            if not slots:
                return self.hostile()
            container, key = self.rng.choice(slots)
            op = self.rng.random()
            if op < 0.7:
                container[key] = self.hostile()
            elif op < 0.85:
                del container[key]
            elif isinstance(container, dict):
                container[self.rng.choice(("extra", "", "\ud800", "name", "0"))] = self.hostile()
            else:
                container.insert(key, self.hostile())
        return obj

    def mangle(self, data: bytes) -> bytes:
        buf = bytearray(data)
        op = self.rng.random()
        if op < 0.4 and buf:
            for _ in range(self.rng.randint(1, 4)):
                buf[self.rng.randrange(len(buf))] = self.rng.randrange(256)
        elif op < 0.6 and len(buf) > 1:
            del buf[self.rng.randrange(1, len(buf)):]
        elif op < 0.8 and buf:
            start = self.rng.randrange(len(buf))
            buf[start:start] = buf[start:start + self.rng.randint(1, 16)] * self.rng.randint(2, 50)
        else:
            buf[self.rng.randrange(len(buf) + 1):0] = bytes(self.rng.randrange(256) for _ in range(8))
        return bytes(buf)

    # --- messages ------------------------------------------------------------------------
    def message(self, valid: Any) -> Tuple[str, Any]:
        """A hostile variant of ``valid``: (kind, value). ``bytes`` and ``deep`` may give
        bytes or text to send as they are; the others give a value to encode."""
        roll = self.rng.random()
        kind = "mutated" if roll < 0.6 else "bytes" if roll < 0.8 else "random" if roll < 0.93 else "deep"
        self.made[kind] += 1
        if kind == "mutated":
            return kind, self.mutate(valid)
        if kind == "bytes":
            return kind, self.mangle(pack(valid))
        if kind == "random":
            return kind, self.hostile()
        return kind, self.deep()

    def frame(self, valid: Any) -> Tuple[str, bytes]:
        """:meth:`message` as msgpack bytes (what peers of the partition and agent channels
        send); ``valid`` is a batch, ``[version, [[type, field, ...]]]``."""
        if self.rng.random() < 0.3:
            self.made["fields"] += 1
            batch = copy.deepcopy(valid)
            message = batch[1][0]
            fields = self.mutate(message[1:])
            message[1:] = fields if isinstance(fields, list) else [fields]
            return "fields", pack(batch)
        kind, value = self.message(valid)
        if isinstance(value, (bytes, bytearray)):
            return kind, bytes(value)
        if isinstance(value, str) and kind == "deep":
            return kind, value.encode()
        return kind, pack(value)
