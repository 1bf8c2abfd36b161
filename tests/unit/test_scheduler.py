"""Unit tests of qcg_pilotjob.partition.scheduler: iteration sizes and the FIFO+backfill queue."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest

from qcg_pilotjob.jobdesc import JobDescription, ResourceSize
from qcg_pilotjob.partition import scheduler as sched_mod
from qcg_pilotjob.partition.scheduler import (
    Requirement,
    Scheduler,
    ScheduleResult,
    TaskSpec,
    iteration_size,
    unfit_reason,
)
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec


def desc(name: str, resources: Optional[Dict[str, Any]] = None, iterations: Optional[int] = None,
         **extra: Any) -> JobDescription:
    data: Dict[str, Any] = {"name": name, "execution": {"exec": "/bin/true"}}
    if resources is not None:
        data["resources"] = resources
    if iterations is not None:
        data["iteration"] = {"stop": iterations}
    data.update(extra)
    return JobDescription.from_dict(data)


def make(spec: str) -> Scheduler:
    return Scheduler(ResourcePool(parse_nodes_spec(spec)))


def add(s: Scheduler, d: JobDescription) -> TaskSpec:
    spec = TaskSpec(d, d.total_iterations)
    s.add(spec, [(d.iteration.start, d.iteration.stop)] if d.iteration else None)
    return spec


def started(result: ScheduleResult) -> List[Tuple[str, Optional[int], str]]:
    return [(st.spec.name, st.iteration, str(st.allocation)) for st in result.started]


def names(result: ScheduleResult) -> List[Tuple[str, Optional[int]]]:
    return [(st.spec.name, st.iteration) for st in result.started]


# ---- iteration_size -------------------------------------------------------------------------

def sizes(size: ResourceSize, total: int, count: int) -> List[int]:
    return [iteration_size(size, total, count, k) for k in range(count)]


def test_maximum_iters_spreads_all_cores() -> None:
    assert sizes(ResourceSize(min=1, scheduler="maximum-iters"), 10, 3) == [3, 3, 4]


def test_maximum_iters_with_minimum_runs_in_rounds() -> None:
    assert sizes(ResourceSize(min=5, scheduler="maximum-iters"), 11, 3) == [5, 6, 11]


def test_maximum_iters_without_minimum_defaults_to_one() -> None:
    assert sizes(ResourceSize(scheduler="maximum-iters"), 4, 4) == [1, 1, 1, 1]
    assert sizes(ResourceSize(scheduler="maximum-iters"), 4, 1) == [4]


def test_maximum_iters_minimum_larger_than_total() -> None:
    with pytest.raises(ValueError, match="minimum 5 is larger than the 4 resources"):
        iteration_size(ResourceSize(min=5, scheduler="maximum-iters"), 4, 2, 0)


def test_split_into_with_parts() -> None:
    size = ResourceSize(scheduler="split-into", scheduler_params={"parts": 2})
    assert sizes(size, 10, 4) == [5, 5, 5, 5]


def test_split_into_parts_defaults_to_iteration_count() -> None:
    assert sizes(ResourceSize(scheduler="split-into"), 10, 4) == [2, 2, 2, 2]
    assert sizes(ResourceSize(scheduler="split-into"), 12, 3) == [4, 4, 4]


def test_split_into_errors() -> None:
    with pytest.raises(ValueError, match="leave nothing for an iteration"):
        iteration_size(ResourceSize(scheduler="split-into", scheduler_params={"parts": 20}), 10, 2, 0)
    with pytest.raises(ValueError, match="smaller than the minimum 4"):
        iteration_size(ResourceSize(min=4, scheduler="split-into", scheduler_params={"parts": 3}), 10, 3, 0)


# ---- requirements ---------------------------------------------------------------------------

def test_requirement_forms() -> None:
    pool = ResourcePool(parse_nodes_spec("4,4"))
    assert TaskSpec(desc("a"), 1).requirement(pool, None) == Requirement(1, 1)
    assert TaskSpec(desc("a", {"numCores": {"min": 2, "max": 3}}), 1).requirement(pool, None) == \
        Requirement(2, 3)
    assert TaskSpec(desc("a", {"numNodes": 2}), 1).requirement(pool, None) == Requirement(None, None, 2, 2)
    req = TaskSpec(desc("a", {"numNodes": 2, "numCores": 3, "nodeCrs": {"gpu": 1}}), 1).requirement(pool, None)
    assert req == Requirement(3, 3, 2, 2, 1)
    assert req.least_cores == 6
    assert Requirement(None, None, 2, 2).least_cores == 2


# ---- FIFO and backfilling -------------------------------------------------------------------

def test_fifo_order() -> None:
    s = make("2")
    add(s, desc("a"))
    add(s, desc("b"))
    add(s, desc("c"))
    assert len(s) == 3
    res = s.schedule()
    assert started(res) == [("a", None, "n0[0]"), ("b", None, "n0[1]")]
    assert res.failed == []
    assert len(s) == 1
    assert s.schedule().started == []  # no free core: nothing else starts


def test_backfilling_keeps_place_of_big_job() -> None:
    s = make("4")
    add(s, desc("small1", {"numCores": 2}))
    add(s, desc("big", {"numCores": 4}))
    add(s, desc("small2", {"numCores": 1}))
    res = s.schedule()
    assert names(res) == [("small1", None), ("small2", None)]
    assert len(s) == 1
    # a later small job arrives; when everything is released the big one goes first
    add(s, desc("small3", {"numCores": 1}))
    for st in res.started:
        s.release(st.allocation)
    res2 = s.schedule()
    assert names(res2) == [("big", None)]
    assert s.pool.free_cores == 0
    s.release(res2.started[0].allocation)
    assert names(s.schedule()) == [("small3", None)]


def test_iterations_of_one_job_start_in_order() -> None:
    s = make("3")
    add(s, desc("it", iterations=5))
    res = s.schedule()
    assert started(res) == [("it", 0, "n0[0]"), ("it", 1, "n0[1]"), ("it", 2, "n0[2]")]
    assert len(s) == 2
    s.release(res.started[1].allocation)
    assert started(s.schedule()) == [("it", 3, "n0[1]")]
    assert len(s) == 1


def test_schedule_on_empty_queue() -> None:
    s = make("2")
    res = s.schedule()
    assert res.started == [] and res.failed == []


def test_range_job_takes_free_cores() -> None:
    s = make("10")
    add(s, desc("r", {"numCores": {"min": 2, "max": 20}}))
    res = s.schedule()
    assert len(res.started) == 1
    assert res.started[0].allocation.cores == 10


# ---- never fitting tasks ---------------------------------------------------------------------

def test_gpu_request_without_gpus_fails_and_does_not_stall() -> None:
    s = make("4")
    add(s, desc("gpu", {"numCores": 1, "nodeCrs": {"gpu": 1}}))
    add(s, desc("next"))
    res = s.schedule()
    assert names(res) == [("next", None)]
    assert len(res.failed) == 1
    failed = res.failed[0]
    assert failed.spec.name == "gpu"
    assert failed.iterations == [None]
    assert failed.message.startswith("Not enough resources: ")
    assert "1 gpu" in failed.message
    assert "GPUs per node: 0" in failed.message
    # reported once only
    assert s.schedule().failed == []
    assert len(s) == 0


def test_too_many_cores_fails_with_all_iterations() -> None:
    s = make("4")
    add(s, desc("huge", {"numCores": 5}, iterations=3))
    add(s, desc("ok"))
    res = s.schedule()
    assert names(res) == [("ok", None)]
    assert [(f.spec.name, f.iterations) for f in res.failed] == [("huge", [0, 1, 2])]
    assert res.failed[0].message == \
        "Not enough resources: requested 5 cores but the resources have 4 in total"


def test_too_many_nodes_fails() -> None:
    s = make("2,2")
    add(s, desc("n", {"numNodes": 3}))
    res = s.schedule()
    assert res.started == []
    assert res.failed[0].message == "Not enough resources: requested 3 nodes but the resources have 2"


def test_varying_iteration_that_cannot_be_sized_fails_per_iteration() -> None:
    s = make("4")
    add(s, desc("split", {"numCores": {"scheduler": {"name": "split-into", "params": {"parts": 20}}}},
                iterations=3))
    add(s, desc("next"))
    res = s.schedule()
    assert names(res) == [("next", None)]
    assert [f.iterations for f in res.failed] == [[0], [1], [2]]
    assert all("leave nothing for an iteration" in f.message for f in res.failed)
    assert len(s) == 0


# ---- nodes, cores per node ---------------------------------------------------------------------

def test_num_nodes_and_num_cores() -> None:
    s = make("4,4,4")
    add(s, desc("a", {"numCores": 1}))
    add(s, desc("mn", {"numNodes": 2, "numCores": 3}))
    res = s.schedule()
    assert started(res) == [("a", None, "n0[0]"), ("mn", None, "n0[1:2:3],n1[0:1:2]")]


def test_whole_nodes_wait_for_idle_nodes() -> None:
    s = make("2,2")
    add(s, desc("a"))
    add(s, desc("whole", {"numNodes": 2}))
    add(s, desc("b"))
    res = s.schedule()
    assert names(res) == [("a", None), ("b", None)]
    for st in res.started:
        s.release(st.allocation)
    res2 = s.schedule()
    assert started(res2) == [("whole", None, "n0[0:1],n1[0:1]")]


def test_gpu_job_on_gpu_nodes() -> None:
    s = make("a:2:0,b:2:2")
    add(s, desc("g", {"numCores": 1, "nodeCrs": {"gpu": 2}}))
    add(s, desc("g2", {"numCores": 1, "nodeCrs": {"gpu": 1}}))
    res = s.schedule()
    assert started(res) == [("g", None, "b[0]")]
    assert res.started[0].allocation.parts[0].gpu_ids == ["0", "1"]
    assert len(s) == 1
    s.release(res.started[0].allocation)
    assert started(s.schedule()) == [("g2", None, "b[0]")]


# ---- varying per-iteration requirements --------------------------------------------------------

def test_maximum_iters_allocations() -> None:
    s = make("10")
    add(s, desc("m", {"numCores": {"scheduler": "maximum-iters"}}, iterations=3))
    res = s.schedule()
    assert [(st.iteration, st.allocation.cores) for st in res.started] == [(0, 3), (1, 3), (2, 4)]
    assert s.pool.free_cores == 0


def test_maximum_iters_rounds_wait_for_resources() -> None:
    s = make("11")
    add(s, desc("m", {"numCores": {"min": 5, "scheduler": "maximum-iters"}}, iterations=3))
    res = s.schedule()
    assert [(st.iteration, st.allocation.cores) for st in res.started] == [(0, 5), (1, 6)]
    assert len(s) == 1
    s.release(res.started[0].allocation)
    assert s.schedule().started == []  # iteration 2 needs all 11 cores
    s.release(res.started[1].allocation)
    res2 = s.schedule()
    assert [(st.iteration, st.allocation.cores) for st in res2.started] == [(2, 11)]
    assert len(s) == 0


def test_split_into_nodes() -> None:
    s = make("2,2,2,2")
    add(s, desc("sp", {"numNodes": {"scheduler": {"name": "split-into", "params": {"parts": 2}}}},
                iterations=2))
    res = s.schedule()
    assert started(res) == [("sp", 0, "n0[0:1],n1[0:1]"), ("sp", 1, "n2[0:1],n3[0:1]")]


# ---- cancel -------------------------------------------------------------------------------------

def test_cancel_queued_iterations() -> None:
    s = make("1")
    add(s, desc("it", iterations=5))
    res = s.schedule()
    assert names(res) == [("it", 0)]
    assert len(s) == 4
    assert sorted(s.cancel("it", [2, 3])) == [2, 3]
    assert len(s) == 2
    assert s.cancel("it", [2, 0, 9]) == []  # already cancelled, running, unknown
    order = []
    alloc = res.started[0].allocation
    for _ in range(3):
        s.release(alloc)
        r = s.schedule()
        order += names(r)
        if r.started:
            alloc = r.started[0].allocation
    assert order == [("it", 1), ("it", 4)]
    assert len(s) == 0


def test_cancel_whole_job() -> None:
    s = make("1")
    add(s, desc("it", iterations=4))
    add(s, desc("other"))
    res = s.schedule()
    assert names(res) == [("it", 0)]
    assert s.cancel("it", None) == [1, 2, 3]
    assert len(s) == 1
    s.release(res.started[0].allocation)
    assert names(s.schedule()) == [("other", None)]


def test_cancel_job_without_iterations() -> None:
    s = make("1")
    add(s, desc("a"))
    add(s, desc("b"))
    add(s, desc("c"))
    res = s.schedule()
    assert s.cancel("b", None) == [None]
    assert s.cancel("c", [None]) == [None]
    assert s.cancel("b", None) == []
    assert s.cancel("nope", None) == []
    assert len(s) == 0
    s.release(res.started[0].allocation)
    assert s.schedule().started == []


def test_cancel_after_partial_iteration_cancel() -> None:
    s = make("1")
    add(s, desc("it", iterations=4))
    s.schedule()
    assert s.cancel("it", [2]) == [2]
    assert s.cancel("it", None) == [1, 3]
    assert len(s) == 0


# ---- scheduling cost ------------------------------------------------------------------------------

def test_release_one_starts_exactly_one_without_rescanning(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make("2")
    for i in range(10_000):
        add(s, desc(f"t{i}"))
    first = s.schedule()
    assert names(first) == [("t0", None), ("t1", None)]
    assert len(s) == 9_998

    visits = 0
    original_peek = sched_mod._Entry.peek

    def counting_peek(self: Any) -> Optional[int]:
        nonlocal visits
        visits += 1
        return original_peek(self)

    monkeypatch.setattr(sched_mod._Entry, "peek", counting_peek)
    s.release(first.started[0].allocation)
    res = s.schedule()
    assert names(res) == [("t2", None)]
    assert len(s) == 9_997
    # the pass stopped when the pool was full: it looked at a handful of entries, not 9,998
    assert visits <= 3
    visits = 0
    assert s.schedule().started == []
    assert visits == 0


def test_release_one_starts_one_iteration_of_big_job() -> None:
    s = make("2")
    d = desc("many", iterations=10_000)
    add(s, d)
    first = s.schedule()
    assert len(first.started) == 2
    s.release(first.started[1].allocation)
    res = s.schedule()
    assert names(res) == [("many", 2)]
    assert len(s) == 9_997


# ---- unfit_reason (submit-time check) ---------------------------------------------------------------

def test_feasibility() -> None:
    pool = ResourcePool(parse_nodes_spec("4"))
    assert unfit_reason(pool, desc("a", {"numCores": 4}), 1) is None
    assert unfit_reason(pool, desc("a", {"numCores": 5}), 1) == \
        "requested 5 cores but the resources have 4 in total"
    assert "gpu" in (unfit_reason(pool, desc("g", {"nodeCrs": {"gpu": 1}}), 1) or "")
    assert "leave nothing" in (unfit_reason(
        pool, desc("s", {"numCores": {"scheduler": {"name": "split-into", "params": {"parts": 8}}}},
                   iterations=2), 2) or "")


# ---- walltime awareness ---------------------------------------------------------------------------

def test_task_whose_walltime_outlasts_the_allocation_stays_queued() -> None:
    from qcg_pilotjob.jobdesc import JobDescription as JD

    s = Scheduler(ResourcePool(parse_nodes_spec("2")))
    s.deadline = 1000.0
    long_job = JD.from_dict({"name": "long", "execution": {"exec": "x"}, "resources": {"wt": "10m"}})
    short_job = JD.from_dict({"name": "short", "execution": {"exec": "x"}, "resources": {"wt": "1m"}})
    free_job = JD.from_dict({"name": "nowt", "execution": {"exec": "x"}})
    for d in (long_job, short_job, free_job):
        s.add(TaskSpec(d, 1), None)
    res = s.schedule(now=900.0)  # 100 s left: 10 min does not fit, 1 min does, no wt: runs
    assert sorted(st.spec.name for st in res.started) == ["nowt", "short"]
    assert [(spec.name, "outlast the allocation" in why) for spec, why in res.time_blocked] == [("long", True)]
    assert s.is_time_blocked("long") and len(s) == 1
    # reported once, not on every pass
    assert s.schedule(now=901.0).time_blocked == []
    assert s.cancel("long", None) == [None]
