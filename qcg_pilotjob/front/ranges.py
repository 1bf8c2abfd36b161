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

__all__ = ["IntervalMap", "Range", "as_ranges", "count", "cut", "indexes", "merge", "split", "subtract"]

Range = Tuple[int, int]


_PAST = float("inf")


class IntervalMap:
    """Disjoint ranges of integers, each with a value; adjacent ranges of one value are joined.

    One sorted list of ``(start, stop, value)`` tuples: tuples of integers are not tracked by
    the garbage collector, so a job's map costs it two objects however many ranges it holds.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: List[Tuple[int, int, int]] = []

    def __bool__(self) -> bool:
        return bool(self._items)

    def _at(self, i: int) -> int:
        """Position of the last range starting at or before ``i`` (-1: none)."""
        return bisect_right(self._items, (i, _PAST)) - 1

    def get(self, i: int) -> Optional[int]:
        pos = self._at(i)
        if pos >= 0:
            _, stop, value = self._items[pos]
            if i < stop:
                return value
        return None

    def items(self) -> List[Tuple[int, int, int]]:
        return list(self._items)

    def assign(self, start: int, stop: int, value: Optional[int]) -> None:
        """Give ``[start, stop)`` the ``value`` (None: no value any more)."""
        if start >= stop:
            return
        items = self._items
        if not items or start >= items[-1][1]:  # (after the last range: the common case)
            if value is None:
                return
            if items and items[-1][1] == start and items[-1][2] == value:
                items[-1] = (items[-1][0], stop, value)
            else:
                items.append((start, stop, value))
            return
        lo = self._at(start)
        if lo < 0 or items[lo][1] <= start:
            lo += 1
        hi = bisect_left(items, (stop,))  # ranges [lo, hi) overlap [start, stop)
        keep: List[Tuple[int, int, int]] = []
        if lo < hi and items[lo][0] < start:
            keep.append((items[lo][0], start, items[lo][2]))
        if value is not None:
            keep.append((start, stop, value))
        if lo < hi and items[hi - 1][1] > stop:
            keep.append((stop, items[hi - 1][1], items[hi - 1][2]))
        # join with the neighbours of the same value
        if keep and lo > 0 and items[lo - 1][1] == keep[0][0] and items[lo - 1][2] == keep[0][2]:
            lo -= 1
            keep[0] = (items[lo][0], keep[0][1], keep[0][2])
        if keep and hi < len(items) and items[hi][0] == keep[-1][1] and items[hi][2] == keep[-1][2]:
            keep[-1] = (keep[-1][0], items[hi][1], keep[-1][2])
            hi += 1
        joined: List[Tuple[int, int, int]] = []
        for item in keep:
            if joined and joined[-1][1] == item[0] and joined[-1][2] == item[2]:
                joined[-1] = (joined[-1][0], item[1], item[2])
            else:
                joined.append(item)
        items[lo:hi] = joined

    def gaps(self, start: int, stop: int) -> List[Range]:
        """The parts of ``[start, stop)`` that hold no value."""
        out: List[Range] = []
        items = self._items
        pos = max(0, self._at(start))
        at = start
        while pos < len(items) and items[pos][0] < stop:
            a, b, _ = items[pos]
            if b > at:
                if a > at:
                    out.append((at, a))
                at = b
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
        items = self._items
        pos = self._at(start)
        at = start
        while at < stop:
            if pos < 0 or pos >= len(items) or items[pos][0] > at or items[pos][1] <= at or items[pos][2] != value:
                return False
            at = items[pos][1]
            pos += 1
        return True

    def with_value(self, value: int) -> List[Range]:
        return [(a, b) for a, b, v in self._items if v == value]


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


def cut(start: int, stop: int, idxs: Iterable[int]) -> List[Range]:
    """``[start, stop)`` without the sorted indexes ``idxs`` (all inside it).

    >>> cut(0, 10, [0, 4, 5, 9])
    [(1, 4), (6, 9)]
    """
    out: List[Range] = []
    at = start
    for i in idxs:
        if i > at:
            out.append((at, i))
        at = i + 1
    if at < stop:
        out.append((at, stop))
    return out


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
