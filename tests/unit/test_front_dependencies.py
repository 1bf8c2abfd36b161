"""Unit tests of qcg_pilotjob.front: job dependencies, whole-job and per-iteration, and the
dependency-cycle check (harness: :mod:`tests.unit.front_harness`)."""

from __future__ import annotations

from qcg_pilotjob.protocol.messages import CancelMsg
from qcg_pilotjob.states import JobState
from tests.unit.front_harness import Harness, harness, job  # noqa: F401  (harness is the h fixture)

# ---- dependencies ------------------------------------------------------------------------------------------

def test_chain_dispatch_order(h: Harness) -> None:
    h.submit(job("a"), job("b", after=["a"]), job("c", after=["b"]))
    assert h.dispatched() == [("a", None)]
    h.event("a", None, JobState.EXECUTING, used=1)
    assert h.dispatched() == []
    h.ran("a", None, JobState.SUCCEED)
    assert h.dispatched() == [("b", None)]
    assert h.status("c") == "QUEUED"
    h.ran("b", None, JobState.SUCCEED)
    assert h.dispatched() == [("c", None)]


def test_dependency_later_in_same_request(h: Harness) -> None:
    h.submit(job("b", after=["a"]), job("a"))
    assert h.dispatched() == [("a", None)]
    h.ran("a", None, JobState.SUCCEED)
    assert h.dispatched() == [("b", None)]


def test_dependency_on_finished_job(h: Harness) -> None:
    h.submit(job("a"))
    h.ran("a", None, JobState.SUCCEED)
    h.dispatched()
    h.submit(job("b", after=["a"]))
    assert h.dispatched() == [("b", None)]


def test_failed_dependency_omits_chain(h: Harness) -> None:
    h.submit(job("a"), job("b", after=["a"]), job("c", after=["b"]))
    h.dispatched()
    h.event("a", None, JobState.FAILED, data={"exit_code": 1})
    assert h.dispatched() == []
    assert h.status("b") == "OMITTED"
    assert h.status("c") == "OMITTED"
    assert "dependency 'a' finished FAILED" in h.info("b")["messages"]
    assert "dependency 'b' finished OMITTED" in h.info("c")["messages"]
    assert h.req("status", options={"allJobsFinished": True})["data"] == {"AllJobsFinished": True}


def test_dependency_on_failed_finished_job(h: Harness) -> None:
    h.submit(job("a"))
    h.event("a", None, JobState.CANCELED)
    h.dispatched()
    h.submit(job("b", after=["a"]))
    assert h.dispatched() == []
    assert h.status("b") == "OMITTED"
    assert "dependency 'a' finished CANCELED" in h.info("b")["messages"]


def test_missing_dependency_omits(h: Harness) -> None:
    resp = h.submit(job("b", after=["nope"]), job("c", after=["b"]))
    assert resp["code"] == 0
    assert h.dispatched() == []
    assert h.status("b") == "OMITTED"
    assert h.status("c") == "OMITTED"
    assert "dependency 'nope' is not a known job" in h.info("b")["messages"]


def test_single_iteration_dependency(h: Harness) -> None:
    h.submit(job("a", iterations=3), job("b", after=["a:1"]), job("c", after=["a:7"]))
    assert h.dispatched() == [("a", [(0, 3)])]
    assert h.status("c") == "OMITTED"
    h.ran("a", 0, JobState.SUCCEED)
    assert h.dispatched() == []
    h.ran("a", 1, JobState.SUCCEED)
    assert h.dispatched() == [("b", None)]


def test_per_iteration_dependencies(h: Harness) -> None:
    h.submit(job("a", iterations=3), job("b", after=["a:${it}"], iterations=3),
             job("c", after=["b:${it}"], iterations=3))
    assert h.dispatched() == [("a", [(0, 3)])]
    h.ran("a", 1, JobState.SUCCEED)
    assert h.dispatched() == [("b", [(1, 2)])]
    h.ran("a", 0, JobState.SUCCEED)
    assert h.dispatched() == [("b", [(0, 1)])]
    # a:2 is cancelled on the partition: b:2 and then c:2 are omitted
    resp = h.req("cancelJob", jobNames=["a:2"])
    assert resp["data"]["canceled"] == 1
    assert h.others() == [CancelMsg("a", [2])]
    h.event("a", 2, JobState.CANCELED)
    assert h.status("a") == "FAILED"
    assert h.status("b:2") == "OMITTED"
    assert h.status("c:2") == "OMITTED"
    assert h.dispatched() == []
    h.ran("b", 0, JobState.SUCCEED)
    assert h.dispatched() == [("c", [(0, 1)])]
    h.ran("b", 1, JobState.SUCCEED)
    assert h.dispatched() == [("c", [(1, 2)])]
    assert h.status("b") == "FAILED"
    assert "1 of 3 iterations did not succeed" in h.info("b")["messages"]
    assert "dependency 'a:2' finished CANCELED" in h.info("b:2")["messages"]
    assert "dependency 'b:2' finished OMITTED" in h.info("c:2")["messages"]
    h.events(("c", 0, JobState.EXECUTING), ("c", 1, JobState.EXECUTING))
    h.events(("c", 0, JobState.SUCCEED), ("c", 1, JobState.SUCCEED))
    assert h.status("c") == "FAILED"
    assert h.req("status", options={"allJobsFinished": True})["data"] == {"AllJobsFinished": True}


def test_per_iteration_dependencies_all_omitted(h: Harness) -> None:
    h.submit(job("a", iterations=2), job("b", after=["a:${it}"], iterations=2))
    h.events(("a", 0, JobState.FAILED), ("a", 1, JobState.FAILED))
    assert h.status("b") == "OMITTED"
    assert h.dispatched() == [("a", [(0, 2)])]


def test_per_iteration_dependency_on_missing_job(h: Harness) -> None:
    h.submit(job("b", after=["nope:${it}"], iterations=2))
    assert h.status("b") == "OMITTED"
    assert h.dispatched() == []


def test_whole_and_per_iteration_dependencies(h: Harness) -> None:
    h.submit(job("x"), job("a", iterations=2), job("b", after=["x", "a:${it}"], iterations=2))
    h.dispatched()
    h.ran("a", 0, JobState.SUCCEED)
    assert h.dispatched() == []  # still waits for x
    h.ran("x", None, JobState.SUCCEED)
    assert h.dispatched() == [("b", [(0, 1)])]
    h.ran("a", 1, JobState.SUCCEED)
    assert h.dispatched() == [("b", [(1, 2)])]


# ---- regressions -----------------------------------------------------------------------------------------

def test_regression_dependency_cycle_rejected(h: Harness) -> None:
    # jobs depending on each other used to be accepted and then waited forever, so
    # finishAfterAllTasksDone never ended
    resp = h.submit(job("x"), job("a", after=["b"]), job("b", after=["a"]))
    assert resp == {"code": 1, "message": "job 'a': dependencies: dependency cycle: a -> b -> a"}
    assert h.req("listJobs")["data"]["length"] == 0
    assert h.sent == []
    resp = h.submit(job("p", after=["q:${it}"], iterations=2), job("q", after=["r:1"], iterations=2),
                    job("r", after=["x_unknown", "q"], iterations=2))
    assert resp == {"code": 1, "message": "job 'q': dependencies: dependency cycle: q -> r -> q"}


def test_regression_dependency_cycle_check_long_chain(h: Harness) -> None:
    jobs = [job("c0")] + [job(f"c{i}", after=[f"c{i - 1}"]) for i in range(1, 1500)]
    assert h.submit(*jobs)["data"]["submitted"] == 1500
    assert h.dispatched() == [("c0", None)]
    jobs = [job("d0", after=["d1499"])] + [job(f"d{i}", after=[f"d{i - 1}"]) for i in range(1, 1500)]
    resp = h.submit(*jobs)
    assert resp["code"] == 1
    assert "dependency cycle: d0 -> d1499 -> d1498" in resp["message"]
