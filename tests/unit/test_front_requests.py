"""Unit tests of qcg_pilotjob.front: the request envelope, submit requests and their validation,
and submit-time variables (harness: :mod:`tests.unit.front_harness`)."""

from __future__ import annotations

import datetime
import re
from typing import Any, Dict

import pytest

from qcg_pilotjob.protocol.messages import DispatchMsg
from qcg_pilotjob.states import JobState
from tests.unit.front_harness import Harness, harness, job  # noqa: F401  (harness is the h fixture)

# ---- request envelope ---------------------------------------------------------------------------

@pytest.mark.parametrize("req", [None, [], "submit", {}, {"request": 5}, {"jobs": []}])
def test_invalid_request(h: Harness, req: Any) -> None:
    assert h.front.handle_request(req) == {"code": 1, "message": "Invalid request: Invalid request"}


def test_unknown_request_name(h: Harness) -> None:
    assert h.req("frobnicate") == {"code": 1, "message": "Invalid request: Unknown request name: frobnicate"}


@pytest.mark.parametrize("fields", [{}, {"jobs": None}, {"jobs": []}, {"jobs": {"name": "a"}}, {"jobs": "a"}])
def test_submit_missing_jobs(h: Harness, fields: Dict[str, Any]) -> None:
    assert h.req("submit", **fields) == {"code": 1,
                                         "message": "Invalid request: Wrong submit request - missing jobs data"}


@pytest.mark.parametrize("request_name,what", [
    ("jobStatus", "job status"), ("jobInfo", "job info"), ("cancelJob", "cancel job"),
    ("removeJob", "remove job"),
])
@pytest.mark.parametrize("fields", [{}, {"jobNames": []}, {"jobNames": None}, {"jobNames": [1]}])
def test_missing_job_names(h: Harness, request_name: str, what: str, fields: Dict[str, Any]) -> None:
    assert h.req(request_name, **fields) == {"code": 1,
                                             "message": f"Invalid request: Wrong {what} request - missing job names"}


def test_register_and_notify_not_supported(h: Harness) -> None:
    assert h.req("register")["message"] == \
        "Register manager request not supported in this kind of manager (direct)"
    assert h.req("notify") == {"code": 1, "message": "Operation not supported"}


def test_processing_stopped(h: Harness) -> None:
    h.front.stopping = True
    assert h.submit(job("a")) == {"code": 1, "message": "processing stopped"}
    assert h.req("resourcesInfo")["code"] == 0
    assert h.req("status")["code"] == 0


# ---- submit ---------------------------------------------------------------------------------------

def test_submit_ok_and_dispatch(h: Harness) -> None:
    resp = h.submit(job("a"), job("b", iterations=3))
    assert resp == {"code": 0, "message": "2 jobs submitted", "data": {"submitted": 2, "jobs": ["a", "b"]}}
    assert h.dispatched() == [("a", None), ("b", [(0, 3)])]
    assert h.status("a") == "QUEUED"
    assert h.req("listJobs") == {"code": 0, "data": {"length": 2, "jobs": {
        "a": {"status": "QUEUED", "inQueue": 0}, "b": {"status": "QUEUED", "inQueue": 1}}}}


def test_dispatch_carries_iteration_start(h: Harness) -> None:
    h.submit(job("it", iteration={"start": 5, "stop": 8}))
    msgs = [m for m in h.sent if isinstance(m, DispatchMsg)]
    assert len(msgs) == 1
    assert (msgs[0].iterations, msgs[0].iter_total) == ([(5, 8)], 3)


def test_submit_is_all_or_nothing(h: Harness) -> None:
    resp = h.submit(job("good"), job("bad", resources={"numCores": {"min": 0}}), job("good2"))
    assert resp["code"] == 1
    assert resp["message"] == "job 'bad': resources.numCores.min: must be an integer >= 1, not 0"
    assert h.req("listJobs")["data"] == {"length": 0, "jobs": {}}
    assert h.sent == []
    # the good name is still free
    assert h.submit(job("good"))["code"] == 0


def test_submit_missing_execution_names_job(h: Harness) -> None:
    resp = h.submit({"name": "noexec"})
    assert resp["code"] == 1
    assert "noexec" in resp["message"]
    assert "Missing execution element in job description" in resp["message"]


def test_submit_missing_name(h: Harness) -> None:
    assert h.submit({"execution": {"exec": "x"}}) == {"code": 1,
                                                      "message": "Invalid request: Missing name in job description"}
    assert h.submit("notadict") == {"code": 1, "message": "Invalid request: Wrong submit request - wrong job data"}


def test_duplicate_name_in_one_request(h: Harness) -> None:
    resp = h.submit(job("a"), job("a"))
    assert resp == {"code": 1, "message": "Job a already exist"}
    assert h.req("listJobs")["data"]["length"] == 0


def test_duplicate_name_of_registered_job(h: Harness) -> None:
    assert h.submit(job("a"))["code"] == 0
    resp = h.submit(job("b"), job("a"))
    assert resp == {"code": 1, "message": "Job a already exist"}
    assert set(h.req("listJobs")["data"]["jobs"]) == {"a"}


def test_job_larger_than_resources(h: Harness) -> None:
    resp = h.submit(job("ok"), job("big", resources={"numCores": 5}))
    assert resp["code"] == 1
    assert resp["message"].startswith("Not enough resources for job big")
    assert "requested 5 cores but the resources have 4 in total" in resp["message"]
    assert h.req("listJobs")["data"]["length"] == 0


def test_gpu_job_on_pool_without_gpus_accepted_for_the_scheduler_to_fail(h: Harness) -> None:
    # cores/nodes beyond the resources reject the request; GPUs that no node has fail the job
    # in the partition's scheduler (with a message), so the other jobs of the request still run
    resp = h.submit(job("g", resources={"nodeCrs": {"gpu": 1}}), job("other"))
    assert resp["code"] == 0
    assert resp["data"]["jobs"] == ["g", "other"]


# ---- submit-time variables ---------------------------------------------------------------------------

def test_submit_variables(h: Harness) -> None:
    h.req("resourcesInfo")  # request 1
    before = datetime.datetime.now().replace(microsecond=0)
    resp = h.submit(
        job("j_${rcnt}", execution={"exec": "prog", "args": [
            "${jname}", "${uniq}", "${time}", "${date}", "${sname}", "$${it}", "${HOME}", "$$x"]}),
        job("k_${ rcnt }", execution={"exec": "prog", "args": ["${uniq}", "${dateTime}"]}),
    )
    after = datetime.datetime.now().replace(microsecond=0)
    assert resp["code"] == 0, resp
    assert resp["data"]["jobs"] == ["j_2", "k_2"]
    msgs = {m.desc.name: m.desc for m in h.sent if isinstance(m, DispatchMsg)}
    args = msgs["j_2"].execution.args
    assert args[0] == "j_2"
    assert re.fullmatch(r"[0-9a-f]{32}", args[1])
    when = datetime.datetime.combine(datetime.date.fromisoformat(args[3]),
                                     datetime.time.fromisoformat(args[2]))
    assert before <= when <= after
    assert args[4] == "local"
    assert args[5:] == ("${it}", "${HOME}", "$x")
    other = msgs["k_2"].execution.args
    assert re.fullmatch(r"[0-9a-f]{32}", other[0])
    assert other[0] != args[1]  # each job has its own uniq
    stamp = datetime.datetime.strptime(other[1], "%Y-%m-%d_%H:%M:%S")
    assert before <= stamp <= after


def test_rcnt_counts_requests(h: Harness) -> None:
    assert h.submit(job("a_${rcnt}"))["data"]["jobs"] == ["a_1"]
    h.req("listJobs")
    h.req("resourcesInfo")
    assert h.submit(job("a_${rcnt}"))["data"]["jobs"] == ["a_4"]


def test_job_name_with_unknown_variable(h: Harness) -> None:
    resp = h.submit(job("x_${foo}"))
    assert resp == {"code": 1,
                    "message": "Job identifier 'x_${foo}' contains invalid characters or unknown variables"}


def test_job_name_with_invalid_characters(h: Harness) -> None:
    resp = h.submit(job("a b"))
    assert resp == {"code": 1, "message": "Job identifier 'a b' contains invalid characters or unknown variables"}


def test_uniq_is_one_value_per_job_however_often_it_is_used(h: Harness) -> None:
    """``${uniq}`` is made when a job first uses it (not a uuid4 for every job): every use
    in one job gives the same value, another job gets another."""
    resp = h.submit(job("u1", execution={"exec": "prog", "args": ["${uniq}", "a-${uniq}"], "wd": "w-${uniq}"}),
                    job("u2", execution={"exec": "prog", "args": ["${uniq}"]}))
    assert resp["code"] == 0, resp
    msgs = {m.desc.name: m.desc for m in h.sent if isinstance(m, DispatchMsg)}
    first, second = msgs["u1"].execution.args
    assert re.fullmatch(r"[0-9a-f]{32}", first) and second == f"a-{first}"
    assert msgs["u1"].execution.wd == f"w-{first}"
    assert msgs["u2"].execution.args[0] != first


def test_submit_when_every_partition_was_lost_says_so(h: Harness) -> None:
    """A governor whose partitions were all lost answered a submit with "no partition has
    registered yet", which sent users looking for a start-up problem."""
    h.front.lose_link(h.link, "partition p0 lost: no message for 30.1s")
    resp = h.submit(job("late"))
    assert resp["code"] == 1
    assert resp["message"] == "Error: no resources available (all 1 partitions were lost)"


def test_list_jobs_shows_messages_of_failed_jobs_and_none_for_others(h: Harness) -> None:
    h.submit(job("ok"), job("bad"), job("it", iteration={"stop": 2}))
    h.ran("ok", None)
    h.ran("bad", None, JobState.FAILED, data={"exit_code": 2, "message": "exit code 2"})
    h.ran("it", 0, data={"exit_code": 0})
    h.ran("it", 1, JobState.FAILED, data={"exit_code": 1, "message": "exit code 1"})
    jobs = h.req("listJobs")["data"]["jobs"]
    assert jobs["ok"] == {"status": "SUCCEED"}
    assert jobs["bad"] == {"status": "FAILED", "messages": "exit code 2"}
    assert jobs["it"] == {"status": "FAILED", "messages": "1 of 2 iterations did not succeed"}


def test_regression_json_report_entries_of_tasks_that_never_ran_have_an_empty_runtime(h: Harness) -> None:
    """QCG-PilotJob's qcg-pm-report reads ``runtime`` on every JSON entry; ours left it out
    of iteration parents and of jobs that never ran, and its tools failed on our reports."""
    import json

    from qcg_pilotjob.front.views import job_report_line, report_entry, report_line
    h.submit(job("bad"), job("after", after=["bad"]), job("it", iterations=1))
    h.ran("bad", None, JobState.FAILED, data={"exit_code": 1, "message": "exit code 1"})
    h.ran("it", 0, data={"exit_code": 0})
    jobs = h.front.jobs
    assert json.loads(job_report_line(jobs["after"], "json"))["runtime"] == {}
    assert report_entry(jobs["after"], None)["runtime"] == {}
    assert json.loads(job_report_line(jobs["it"], "json"))["runtime"] == {}
    assert json.loads(report_line(jobs["it"], 0, "json"))["runtime"]["exit_code"] == "0"
    assert list(report_entry(jobs["after"], None))[:4] == ["name", "state", "history", "runtime"]
