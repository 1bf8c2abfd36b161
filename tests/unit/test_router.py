"""Unit tests of the pure router (qcg_pilotjob.front.router): no sockets, no front."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional

from qcg_pilotjob.front.links import PartitionLink
from qcg_pilotjob.front.ranges import count
from qcg_pilotjob.front.registry import JobRecord
from qcg_pilotjob.front.router import ReadyEntry, Router
from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.protocol.messages import Message
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.states import JobState

_seq = 0


def record(name: str, iterations: Optional[int] = None, **resources: Any) -> JobRecord:
    global _seq
    data: Dict[str, Any] = {"name": name, "execution": {"exec": "/bin/true"}}
    if iterations is not None:
        data["iteration"] = {"stop": iterations}
    if resources:
        data["resources"] = resources
    _seq += 1
    return JobRecord(JobDescription.from_dict(data), time.time(), _seq)


def links(*specs: str) -> List[PartitionLink]:
    sent: List[Message] = []
    return [PartitionLink(i, f"p{i}", ResourcePool(parse_nodes_spec(s)), sent.append) for i, s in enumerate(specs)]


def ready_of(*jobs: JobRecord) -> Deque[ReadyEntry]:
    return deque(ReadyEntry(job, [(0, job.total)]) for job in jobs)


def routed(router: Router, ready: Deque[ReadyEntry], lks: List[PartitionLink], final: bool = False
           ) -> Dict[str, int]:
    """Route once, mark the routed tasks as the front would; tasks per partition name."""
    out: Dict[str, int] = {}
    routing = router.route(ready, lks, final=final)
    for d in routing.dispatches:
        for a, b in d.ranges:
            d.job.tasks.place(a, b, d.link.index)
        out[d.link.name] = out.get(d.link.name, 0) + count(d.ranges)
    return out


def finish(job: JobRecord, link: PartitionLink, n: int, router: Router) -> None:
    """``n`` tasks of ``job`` on ``link`` end (what the front does on final events)."""
    done = 0
    for idx in range(job.total):
        if done == n:
            break
        if job.tasks.partition(idx) == link.index and not job.tasks.state(idx).is_final:
            job.tasks[idx].state = JobState.SUCCEED
            link.outstanding -= router.known_weight(job.name)
            done += 1


def test_single_partition_takes_everything_at_once() -> None:
    router, lks = Router(), links("2")
    ready = ready_of(record("a", 1000))
    assert routed(router, ready, lks) == {"p0": 1000}
    assert not ready


def test_equal_shares_between_partitions() -> None:
    router, lks = Router(), links("2", "2")
    ready = ready_of(record("a", 100))
    assert routed(router, ready, lks) == {"p0": 50, "p1": 50}


def test_windows_keep_the_rest_in_the_front() -> None:
    router, lks = Router(), links("2", "2")
    ready = ready_of(record("a", 1000))
    assert routed(router, ready, lks) == {"p0": 64, "p1": 64}
    assert sum(count(e.ranges) for e in ready) == 1000 - 128
    assert all(lk.credit == 0 for lk in lks)


def test_busy_partition_topped_up_a_batch_at_a_time() -> None:
    router, lks = Router(), links("2", "2")
    job = record("a", 1000)
    ready = ready_of(job)
    routed(router, ready, lks)
    finish(job, lks[0], 1, router)
    assert routed(router, ready, lks) == {}  # one free slot: no message per task
    finish(job, lks[0], 15, router)
    assert routed(router, ready, lks) == {"p0": 16}  # a batch: window // 4


def test_work_released_later_goes_where_there_is_most_room() -> None:
    """A dependency releases work while the partitions are unevenly loaded (what the
    integration test of dependencies across partitions cannot pin: it depends on timing)."""
    router, lks = Router(), links("2", "2")
    lks[0].outstanding = lks[0].window - 2  # nearly full
    lks[1].outstanding = 4
    assert routed(router, ready_of(record("y")), lks) == {"p1": 1}  # one task: the emptier one
    lks[0].outstanding = lks[0].window  # one full: the other takes the whole released job
    assert routed(router, ready_of(record("b", 4)), lks) == {"p1": 4}
    lks[0].outstanding = lks[1].outstanding = 4  # even again: a released job is shared
    assert routed(router, ready_of(record("b2", 4)), lks) == {"p0": 2, "p1": 2}


def test_lookahead_passes_a_head_that_fits_nowhere_now() -> None:
    router, lks = Router(), links("64", "64")
    ready = ready_of(record("filler", 500))
    assert routed(router, ready, lks) == {"p0": 250, "p1": 250}  # windows of 256: a credit of 6 each
    big = record("big", None, numCores=8)
    small = record("small")
    ready.extend(ready_of(big, small))
    assert routed(router, ready, lks) == {"p0": 1}  # small goes past big (8 cores fit no window now)
    assert [e.job.name for e in ready] == ["big"]


def test_whole_job_with_an_iteration_scheduler_goes_to_one_partition() -> None:
    router, lks = Router(), links("2", "2")
    job = record("mi", 10, numCores={"min": 1, "scheduler": {"name": "maximum-iters"}})
    assert routed(router, ready_of(job), lks) in ({"p0": 10}, {"p1": 10})


def test_nothing_routed_without_partitions_until_one_joins() -> None:
    router = Router()
    ready = ready_of(record("a", 10))
    assert routed(router, ready, []) == {}
    assert sum(count(e.ranges) for e in ready) == 10
    lks = links("4")
    assert routed(router, ready, lks) == {"p0": 10}


def test_partition_joining_while_work_waits_gets_work() -> None:
    router = Router()
    first, second = links("2", "2")
    ready = ready_of(record("c", 1000))
    routed(router, ready, [first])  # one partition: it takes all (its scheduler orders it)
    assert not ready
    router = Router()
    first, second, third = links("2", "2", "2")
    ready = ready_of(record("d", 1000))
    first.outstanding = first.window  # both busy
    second.outstanding = second.window
    third.lost = True  # not there yet
    assert routed(router, ready, [first, second, third]) == {}
    third.lost = False  # it joins while work waits
    router.links_changed()
    assert routed(router, ready, [first, second, third]) == {"p2": 64}


def test_lost_partition_tasks_requeued_at_the_head() -> None:
    router, lks = Router(), links("2", "2")
    job, other = record("a", 200), record("b", 10)
    ready = ready_of(job, other)
    routed(router, ready, lks)
    on_lost = job.tasks.placed_on(1)
    for a, b in on_lost:
        job.tasks.place(a, b, None)
    lks[1].lost = True
    lks[1].outstanding = 0
    router.requeue_lost(ready, [ReadyEntry(job, on_lost)])
    assert ready[0].ranges == on_lost
    router.links_changed()
    lks[0].outstanding = 0
    out = routed(router, ready, lks)
    assert set(out) == {"p0"}


def test_no_live_partition_left_makes_waiting_work_unroutable_only_when_final() -> None:
    router, lks = Router(), links("2")
    lks[0].lost = True
    ready = ready_of(record("a", 3))
    assert router.route(ready, lks).unroutable == []
    routing = router.route(ready, lks, final=True)
    assert [(j.name, ranges) for j, ranges, _ in routing.unroutable] == [("a", [(0, 3)])]
    assert "no live partition" in routing.unroutable[0][2]


def test_job_too_large_for_every_live_partition_is_unroutable() -> None:
    router, lks = Router(), links("2", "8")
    lks[1].lost = True
    ready = ready_of(record("wide", None, numCores=8))
    routing = router.route(ready, lks)
    assert [j.name for j, _, _ in routing.unroutable] == ["wide"]
    assert not ready


def test_dispatch_carries_iteration_ranges_with_the_start() -> None:
    router, lks = Router(), links("4")
    job = JobRecord(JobDescription.from_dict({"name": "r", "execution": {"exec": "true"},
                                              "iteration": {"start": 10, "stop": 15}}), time.time(), 1)
    ready: Deque[ReadyEntry] = deque([ReadyEntry(job, [(0, 2), (3, 5)])])
    routing = router.route(ready, lks)
    assert routing.dispatches[0].msg.iterations == [(10, 12), (13, 15)]


def test_jobs_of_one_shape_share_where_they_fit(monkeypatch: Any) -> None:
    """Which partitions a job fits in is worked out once per shape (resources as submitted,
    iterations), not once per job: 10,000 one-core jobs through 10 partitions asked it
    100,000 times. A job of another shape gets its own answer, and a change of the
    partitions asks again."""
    from qcg_pilotjob.front import router as mod

    asked: List[str] = []
    real = mod.unfit_reason

    def counting(pool: ResourcePool, desc: JobDescription, total: int, with_gpus: bool = True) -> Optional[str]:
        asked.append(desc.name)
        return real(pool, desc, total, with_gpus=with_gpus)

    monkeypatch.setattr(mod, "unfit_reason", counting)
    lks = links("4", "8")
    router = Router()
    small = [record(f"s{i}") for i in range(50)]
    wide = [record(f"w{i}", numCores={"exact": 6}) for i in range(50)]
    for job in small + wide:
        router.fitting(job, lks, lks)
    assert asked == ["s0", "s0", "w0", "w0"]  # (each shape: once per partition)
    assert [lk.name for lk in router.fitting(wide[7], lks, lks)] == ["p1"]
    assert [lk.name for lk in router.fitting(small[7], lks, lks)] == ["p0", "p1"]
    router.links_changed()
    router.fitting(record("s_after"), lks, lks)
    assert asked[4:] == ["s_after", "s_after"]
