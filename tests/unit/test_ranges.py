"""Unit tests of the task ranges (qcg_pilotjob.front.ranges) and the lazy task table
(qcg_pilotjob.front.registry.TaskTable), against plain per-index models."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from qcg_pilotjob.front.ranges import IntervalMap, as_ranges, count, indexes, merge, split, subtract
from qcg_pilotjob.front.registry import WAITING, TaskTable
from qcg_pilotjob.states import JobState

N = 40
spans = st.tuples(st.integers(0, N), st.integers(0, N)).map(lambda ab: (min(ab), max(ab)))
assignments = st.lists(st.tuples(spans, st.one_of(st.none(), st.integers(0, 3))), max_size=25)


@settings(max_examples=300, deadline=None)
@given(assignments)
def test_interval_map_is_a_per_index_map(steps: List[Tuple[Tuple[int, int], Optional[int]]]) -> None:
    m = IntervalMap()
    model: Dict[int, int] = {}
    for (a, b), value in steps:
        m.assign(a, b, value)
        for i in range(a, b):
            if value is None:
                model.pop(i, None)
            else:
                model[i] = value
    assert {i: m.get(i) for i in range(N + 2) if m.get(i) is not None} == model
    items = m.items()
    assert all(a < b for a, b, _ in items)
    # disjoint, sorted, and neighbours of one value joined
    assert all(x[1] <= y[0] for x, y in zip(items, items[1:]))
    assert not any(x[1] == y[0] and x[2] == y[2] for x, y in zip(items, items[1:]))
    lo, hi = 3, N - 3
    assert list(indexes(m.gaps(lo, hi))) == [i for i in range(lo, hi) if i not in model]
    for value in range(4):
        assert list(indexes(m.with_value(value))) == sorted(i for i, v in model.items() if v == value)


@given(st.lists(st.integers(0, N), unique=True).map(sorted), st.integers(0, N + 2),
       st.lists(st.integers(0, N)))
def test_range_helpers(idxs: List[int], n: int, gone: List[int]) -> None:
    ranges = as_ranges(idxs)
    assert list(indexes(ranges)) == idxs and count(ranges) == len(idxs)
    head, rest = split(ranges, n)
    assert list(indexes(head)) == idxs[:n] and list(indexes(rest)) == idxs[n:]
    assert list(indexes(subtract(ranges, gone))) == [i for i in idxs if i not in set(gone)]
    assert merge(head + rest) == merge(ranges)


def test_task_table_makes_records_only_when_asked() -> None:
    table = TaskTable(10 ** 8)
    assert len(table) == 10 ** 8 and table.made() == {}
    assert table.state(5) is JobState.QUEUED and table.view(5) is WAITING and table.partition(5) == -1
    table.place(0, 1000, 2)
    assert table.partition(999) == 2 and table.partition(1000) == -1
    assert table.waiting([(0, 10 ** 8)]) == [(1000, 10 ** 8)]
    table[7].state = JobState.EXECUTING
    assert list(table.made()) == [7] and table.state(7) is JobState.EXECUTING
    # a task that ended before it was dispatched is skipped by what still waits
    table[2000].state = JobState.CANCELED
    table.final_before_dispatch(2000)
    table[1500].state = JobState.OMITTED
    table.final_before_dispatch(1500)
    assert table.waiting([(1000, 2500)]) == [(1000, 1500), (1501, 2000), (2001, 2500)]
    assert table.made_in(0, 3000) == [7, 1500, 2000]
