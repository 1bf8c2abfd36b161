"""Unit tests of qcg_pilotjob.front: cancelJob, removeJob, control and finish requests
(harness: :mod:`tests.unit.front_harness`)."""

from __future__ import annotations

from qcg_pilotjob.protocol.messages import CancelMsg, ForgetMsg, StoppedMsg
from qcg_pilotjob.states import JobState
from tests.unit.front_harness import Harness, harness, job  # noqa: F401  (harness is the h fixture)

# ---- cancelJob ------------------------------------------------------------------------------------

def test_cancel_queued_not_dispatched(h: Harness) -> None:
    h.submit(job("a"), job("b", after=["a"]))
    h.dispatched()
    resp = h.req("cancelJob", jobNames=["b"])
    assert resp == {"code": 0, "message": "1 jobs canceled", "data": {"canceled": 1}}
    assert h.status("b") == "CANCELED"
    assert h.others() == []  # nothing to tell the partition
    h.ran("a", None, JobState.SUCCEED)
    assert h.dispatched() == []


def test_cancel_dispatched_sends_cancel(h: Harness) -> None:
    h.submit(job("a"), job("it", iterations=3))
    h.dispatched()
    resp = h.req("cancelJob", jobNames=["a", "it"])
    assert resp["data"] == {"canceled": 2}
    assert h.others() == [CancelMsg("a", None), CancelMsg("it", None)]
    assert h.status("a") == "QUEUED"  # until the partition reports
    h.event("a", None, JobState.CANCELED)
    assert h.status("a") == "CANCELED"
    h.events(("it", 0, JobState.EXECUTING))
    h.events(("it", 0, JobState.SUCCEED), ("it", 1, JobState.CANCELED), ("it", 2, JobState.CANCELED))
    assert h.status("it") == "CANCELED"


def test_cancel_one_iteration(h: Harness) -> None:
    h.submit(job("it", iterations=3))
    h.dispatched()
    h.req("cancelJob", jobNames=["it:1"])
    assert h.others() == [CancelMsg("it", [1])]


def test_cancel_undispatched_iterative_job(h: Harness) -> None:
    h.submit(job("a"), job("it", after=["a"], iterations=3))
    h.dispatched()
    h.req("cancelJob", jobNames=["it"])
    assert h.status("it") == "CANCELED"
    assert h.info("it")["iterations"]["finished"] == 3
    assert h.others() == []


def test_cancel_finished_and_unknown_job(h: Harness) -> None:
    h.submit(job("a"), job("it", iterations=2))
    h.ran("a", None, JobState.SUCCEED)
    h.ran("it", 0, JobState.SUCCEED)
    h.sent.clear()
    resp = h.req("cancelJob", jobNames=["a", "zz", "it:0"])
    assert resp["code"] == 0
    assert resp["data"]["canceled"] == 0
    assert resp["data"]["errors"] == {
        "a": "Job 'a' already finished (SUCCEED)",
        "zz": "Job 'zz' doesn't exist",
        "it:0": "Iteration 'it:0' already finished (SUCCEED)",
    }
    assert h.sent == []


# ---- removeJob ---------------------------------------------------------------------------------------

def test_remove_unfinished_job(h: Harness) -> None:
    h.submit(job("x"))
    resp = h.req("removeJob", jobNames=["x", "nope"])
    assert resp == {"code": 0, "data": {"removed": 0, "errors": {
        "x": "Job 'x' not finished - can not be removed", "nope": "Job 'nope' doesn't exist"}}}
    assert h.status("x") == "QUEUED"


def test_remove_finished_job_and_reuse_name(h: Harness) -> None:
    h.submit(job("x"))
    h.ran("x", None, JobState.SUCCEED)
    h.dispatched()
    resp = h.req("removeJob", jobNames=["x"])
    assert resp == {"code": 0, "data": {"removed": 1}}
    assert h.others() == [ForgetMsg(["x"])]
    assert h.req("jobStatus", jobNames=["x"])["data"]["jobs"]["x"]["status"] == 1
    assert h.req("status")["data"]["JobStats"]["TotalJobs"] == 0
    assert h.req("status")["data"]["JobStats"]["FinishedJobs"] == 0
    assert h.submit(job("x"))["code"] == 0
    assert h.dispatched() == [("x", None)]
    assert h.status("x") == "QUEUED"


def test_events_for_removed_job_are_ignored(h: Harness) -> None:
    h.submit(job("x"))
    h.ran("x", None, JobState.SUCCEED)
    h.req("removeJob", jobNames=["x"])
    h.event("x", None, JobState.FAILED, used=0)
    assert h.req("listJobs")["data"]["length"] == 0


# ---- control and finish ----------------------------------------------------------------------------------

def test_control_finish_after_all_twice(h: Harness) -> None:
    cmd = {"command": "finishAfterAllTasksDone"}
    assert h.req("control", **cmd) == {"code": 0, "message": "finishAfterAllTasksDone command accepted"}
    assert h.front.finish_after_all
    assert h.req("control", **cmd) == {"code": 1, "message": "Finish request already requested"}


def test_control_errors(h: Harness) -> None:
    assert h.req("control") == {"code": 1, "message": "Invalid request: Wrong control request - missing command"}
    assert h.req("control", command="explode") == \
        {"code": 1, "message": 'Invalid request: Wrong control request - unknown command "explode"'}


def test_finish_twice(h: Harness) -> None:
    assert h.req("finish") == {"code": 0, "data": {"when": "0s"}}
    assert h.req("finish") == {"code": 1, "message": "Finish request already requested"}
    assert h.req("control", command="finishAfterAllTasksDone")["message"] == "Finish request already requested"


def test_stopped_message_marks_link(h: Harness) -> None:
    h.front.on_message(h.link, StoppedMsg())
    assert h.link.stopped
