"""Task indexes held as half-open ranges ``(start, stop)``, so that a job of 10,000,000
iterations costs a few ranges, not a list entry per task, until its tasks start. Pure.

:class:`IntervalMap` maps disjoint ranges to a value (where the tasks of a job were sent).
The functions work on sorted lists of disjoint ranges (what waits to be sent).

>>> m = IntervalMap()
>>> m.assign(0, 10, 1); m.assign(4, 6, 2)
>>> m.items()
[(0, 4, 1), (4, 6, 2), (6, 10, 1)]
>>> m.get(5), m.get(10)
(2, None)
>>> m.gaps(0, 12)
[(10, 12)]
>>> m.assign(4, 6, 1); m.items()
[(0, 10, 1)]
>>> split([(0, 3), (5, 10)], 4)
([(0, 3), (5, 6)], [(6, 10)])
>>> as_ranges([0, 1, 2, 5, 7, 8])
[(0, 3), (5, 6), (7, 9)]
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

__all__ = ["IntervalMap", "Range", "as_ranges", "count", "indexes", "merge", "split", "subtract"]

Range = Tuple[int, int]


class IntervalMap:
    """Disjoint ranges of integers, each with a value; adjacent ranges of one value are joined."""

    __slots__ = ("_starts", "_stops", "_values")

    def __init__(self) -> None:
        self._starts: List[int] = []
        self._stops: List[int] = []
        self._values: List[int] = []

    def __bool__(self) -> bool:
        return bool(self._starts)

    def get(self, i: int) -> Optional[int]:
        pos = bisect_right(self._starts, i) - 1
        if pos >= 0 and i < self._stops[pos]:
            return self._values[pos]
        return None

    def items(self) -> List[Tuple[int, int, int]]:
        return list(zip(self._starts, self._stops, self._values))

    def assign(self, start: int, stop: int, value: Optional[int]) -> None:
        """Give ``[start, stop)`` the ``value`` (None: no value any more)."""
        if start >= stop:
            return
        lo = bisect_right(self._starts, start) - 1
        if lo < 0 or self._stops[lo] <= start:
            lo += 1
        hi = bisect_left(self._starts, stop)  # ranges [lo, hi) overlap [start, stop)
        keep: List[Tuple[int, int, int]] = []
        if lo < hi and self._starts[lo] < start:
            keep.append((self._starts[lo], start, self._values[lo]))
        if value is not None:
            keep.append((start, stop, value))
        if lo < hi and self._stops[hi - 1] > stop:
            keep.append((stop, self._stops[hi - 1], self._values[hi - 1]))
        # join with the neighbours of the same value
        if keep and lo > 0 and self._stops[lo - 1] == keep[0][0] and self._values[lo - 1] == keep[0][2]:
            lo -= 1
            keep[0] = (self._starts[lo], keep[0][1], keep[0][2])
        if keep and hi < len(self._starts) and self._starts[hi] == keep[-1][1] and self._values[hi] == keep[-1][2]:
            keep[-1] = (keep[-1][0], self._stops[hi], keep[-1][2])
            hi += 1
        joined: List[Tuple[int, int, int]] = []
        for item in keep:
            if joined and joined[-1][1] == item[0] and joined[-1][2] == item[2]:
                joined[-1] = (joined[-1][0], item[1], item[2])
            else:
                joined.append(item)
        self._starts[lo:hi] = [a for a, _, _ in joined]
        self._stops[lo:hi] = [b for _, b, _ in joined]
        self._values[lo:hi] = [v for _, _, v in joined]

    def gaps(self, start: int, stop: int) -> List[Range]:
        """The parts of ``[start, stop)`` that hold no value."""
        out: List[Range] = []
        pos = max(0, bisect_right(self._starts, start) - 1)
        at = start
        while pos < len(self._starts) and self._starts[pos] < stop:
            if self._stops[pos] > at:
                if self._starts[pos] > at:
                    out.append((at, self._starts[pos]))
                at = self._stops[pos]
            pos += 1
        if at < stop:
            out.append((at, stop))
        return out

    def holds(self, start: int, stop: int, value: int) -> bool:
        """Whether all of ``[start, stop)`` has ``value``.

        >>> m = IntervalMap(); m.assign(0, 4, 1); m.assign(4, 8, 1); m.assign(8, 9, 2)
        >>> m.holds(1, 8, 1), m.holds(1, 9, 1), m.holds(8, 9, 2)
        (True, False, True)
        """
        pos = bisect_right(self._starts, start) - 1
        at = start
        while at < stop:
            if pos < 0 or pos >= len(self._starts) or self._starts[pos] > at or self._stops[pos] <= at \
                    or self._values[pos] != value:
                return False
            at = self._stops[pos]
            pos += 1
        return True

    def with_value(self, value: int) -> List[Range]:
        return [(a, b) for a, b, v in zip(self._starts, self._stops, self._values) if v == value]


def count(ranges: Iterable[Range]) -> int:
    return sum(b - a for a, b in ranges)


def indexes(ranges: Iterable[Range]) -> Iterator[int]:
    for a, b in ranges:
        yield from range(a, b)


def as_ranges(idxs: Iterable[int]) -> List[Range]:
    """Sorted indexes as ranges."""
    out: List[Range] = []
    for i in idxs:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def merge(ranges: Iterable[Range]) -> List[Range]:
    """Sorted, disjoint, joined.

    >>> merge([(5, 7), (0, 2), (1, 3), (3, 4)])
    [(0, 4), (5, 7)]
    """
    out: List[Range] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        elif a < b:
            out.append((a, b))
    return out


def split(ranges: Sequence[Range], n: int) -> Tuple[List[Range], List[Range]]:
    """The first ``n`` indexes of ``ranges``, and the rest."""
    head: List[Range] = []
    for pos, (a, b) in enumerate(ranges):
        if n <= 0:
            return head, list(ranges[pos:])
        if b - a <= n:
            head.append((a, b))
            n -= b - a
        else:
            return [*head, (a, a + n)], [(a + n, b), *ranges[pos + 1:]]
    return head, []


def subtract(ranges: Sequence[Range], idxs: Iterable[int]) -> List[Range]:
    """``ranges`` without the indexes ``idxs`` (sorted or not).

    >>> subtract([(0, 5), (8, 10)], [2, 9, 20])
    [(0, 2), (3, 5), (8, 9)]
    """
    out = list(ranges)
    for i in sorted(set(idxs)):
        pos = bisect_right(out, (i, float("inf"))) - 1
        if pos < 0:
            continue
        a, b = out[pos]
        if a <= i < b:
            out[pos:pos + 1] = [r for r in ((a, i), (i + 1, b)) if r[0] < r[1]]
    return out
