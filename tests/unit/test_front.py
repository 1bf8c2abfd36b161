"""Unit tests of qcg_pilotjob.front: requests, registry and dependencies, with a
fake partition (messages collected in a list, events fed back by hand)."""

from __future__ import annotations

import datetime
import re
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

from qcg_pilotjob.front.core import Front, PartitionLink
from qcg_pilotjob.front.journal import Journal
from qcg_pilotjob.front.reports import LineWriter
from qcg_pilotjob.protocol.messages import (
    CancelMsg,
    DispatchMsg,
    ForgetMsg,
    Message,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
)
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.states import JobState


class Harness:
    def __init__(self, spec: str = "4") -> None:
        self.sent: List[Message] = []
        self.link = PartitionLink(0, "p0", ResourcePool(parse_nodes_spec(spec)), self.sent.append)
        self.front = Front([self.link], instance_id="t", report=LineWriter(None), report_format="json",
                           journal=Journal(LineWriter(None)))

    def req(self, request: str, **fields: Any) -> Dict[str, Any]:
        return self.front.handle_request({"request": request, **fields})

    def submit(self, *jobs: Dict[str, Any]) -> Dict[str, Any]:
        return self.req("submit", jobs=list(jobs))

    def events(self, *events: Tuple[str, Optional[int], JobState], used: int = 0,
               data: Optional[Dict[str, Any]] = None) -> None:
        now = time.time()
        msg = TaskEventsMsg([TaskEvent(j, i, int(s), now, data) for j, i, s in events], used)
        self.front.on_message(self.link, msg)

    def event(self, job: str, it: Optional[int], state: JobState, used: int = 0,
              data: Optional[Dict[str, Any]] = None) -> None:
        self.events((job, it, state), used=used, data=data)

    def ran(self, job: str, it: Optional[int], state: JobState = JobState.SUCCEED, used: int = 0,
            data: Optional[Dict[str, Any]] = None) -> None:
        """The task started, then ended in ``state`` (a task must run to succeed)."""
        self.events((job, it, JobState.EXECUTING), used=used)
        self.events((job, it, state), used=used, data=data)

    def dispatched(self) -> List[Tuple[str, Optional[List[Tuple[int, int]]]]]:
        """Dispatches since the last call."""
        out = [(m.desc.name, m.iterations) for m in self.sent if isinstance(m, DispatchMsg)]
        self.sent[:] = [m for m in self.sent if not isinstance(m, DispatchMsg)]
        return out

    def others(self) -> List[Message]:
        return [m for m in self.sent if not isinstance(m, DispatchMsg)]

    def status(self, name: str) -> str:
        resp = self.req("jobStatus", jobNames=[name])
        entry = resp["data"]["jobs"][name]
        assert entry["status"] == 0, entry
        return entry["data"]["status"]

    def info(self, name: str, **params: Any) -> Dict[str, Any]:
        resp = self.req("jobInfo", jobNames=[name], params=params)
        entry = resp["data"]["jobs"][name]
        assert entry["status"] == 0, entry
        return entry["data"]


def job(name: str, after: Optional[List[str]] = None, iterations: Optional[int] = None,
        **extra: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = {"name": name, "execution": {"exec": "/bin/true"}}
    if after is not None:
        data["dependencies"] = {"after": after}
    if iterations is not None:
        data["iteration"] = {"stop": iterations}
    data.update(extra)
    return data


@pytest.fixture
def h() -> Harness:
    return Harness()


# ---- request envelope ---------------------------------------------------------------------------

@pytest.mark.parametrize("req", [None, [], "submit", {}, {"request": 5}, {"jobs": []}])
def test_invalid_request(h: Harness, req: Any) -> None:
    assert h.front.handle_request(req) == {"code": 1, "message": "Invalid request: Invalid request"}


def test_unknown_request_name(h: Harness) -> None:
    assert h.req("frobnicate") == {"code": 1, "message": "Invalid request: Unknown request name: frobnicate"}


@pytest.mark.parametrize("fields", [{}, {"jobs": None}, {"jobs": []}, {"jobs": {"name": "a"}}, {"jobs": "a"}])
def test_submit_missing_jobs(h: Harness, fields: Dict[str, Any]) -> None:
    assert h.req("submit", **fields) == {"code": 1, "message": "Wrong submit request - missing jobs data"}


@pytest.mark.parametrize("request_name,what", [
    ("jobStatus", "job status"), ("jobInfo", "job info"), ("cancelJob", "cancel job"),
    ("removeJob", "remove job"),
])
@pytest.mark.parametrize("fields", [{}, {"jobNames": []}, {"jobNames": None}, {"jobNames": [1]}])
def test_missing_job_names(h: Harness, request_name: str, what: str, fields: Dict[str, Any]) -> None:
    assert h.req(request_name, **fields) == {"code": 1, "message": f"Wrong {what} request - missing job names"}


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
        "a": {"status": "QUEUED"}, "b": {"status": "QUEUED"}}}}


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
    assert h.submit({"execution": {"exec": "x"}}) == {"code": 1, "message": "Missing name in job description"}
    assert h.submit("notadict") == {"code": 1, "message": "Wrong submit request - wrong job data"}


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


# ---- jobStatus / jobInfo ---------------------------------------------------------------------------------

def test_job_status_unknown_name_is_per_name(h: Harness) -> None:
    h.submit(job("a"))
    resp = h.req("jobStatus", jobNames=["a", "zz"])
    assert resp["code"] == 0
    assert resp["data"]["jobs"]["a"] == {"status": 0, "data": {"jobName": "a", "status": "QUEUED"}}
    assert resp["data"]["jobs"]["zz"] == {"status": 1, "message": "Job 'zz' doesn't exist"}


def test_job_info_unknown_name_is_per_name(h: Harness) -> None:
    h.submit(job("a"))
    resp = h.req("jobInfo", jobNames=["nope", "a"])
    assert resp["code"] == 0
    assert resp["data"]["jobs"]["nope"] == {"status": 1, "message": "Job 'nope' doesn't exist"}
    assert resp["data"]["jobs"]["a"]["status"] == 0
    assert resp["data"]["jobs"]["a"]["data"]["status"] == "QUEUED"


def test_job_names_as_single_string(h: Harness) -> None:
    h.submit(job("a"))
    assert h.req("jobStatus", jobNames="a")["data"]["jobs"]["a"]["data"]["status"] == "QUEUED"


def test_iteration_status(h: Harness) -> None:
    h.submit(job("it", iterations=3), job("plain"))
    h.event("it", 1, JobState.EXECUTING, used=1, data={"allocation": "n0[0]", "pid": 7})
    assert h.status("it:1") == "EXECUTING"
    assert h.status("it:0") == "QUEUED"
    assert h.status("it") == "EXECUTING"
    h.ran("it", 1, JobState.SUCCEED)
    assert h.status("it:1") == "SUCCEED"
    jobs = h.req("jobStatus", jobNames=["it:3", "it:x", "plain:0", "zz:1"])["data"]["jobs"]
    assert jobs["it:3"] == {"status": 1, "message": "Unknown iteration 3 for job it"}
    assert jobs["it:x"] == {"status": 1, "message": "Unknown iteration x for job it"}
    assert jobs["plain:0"] == {"status": 1, "message": "Unknown iteration 0 for job plain"}
    assert jobs["zz:1"] == {"status": 1, "message": "Job 'zz' doesn't exist"}


def test_job_info_of_finished_job(h: Harness) -> None:
    h.submit(job("a"))
    h.event("a", None, JobState.EXECUTING, used=1, data={"allocation": "n0[0]", "wd": "/w", "pid": 12})
    h.ran("a", None, JobState.SUCCEED, data={"exit_code": 0, "rtime": 1.5})
    info = h.info("a")
    assert info["status"] == "SUCCEED"
    assert info["runtime"] == {"allocation": "n0[0]", "wd": "/w", "pid": "12", "exit_code": "0",
                               "rtime": "0:00:01.500000"}
    assert [line.split(": ")[-1] for line in info["history"].strip().split("\n")] == \
        ["QUEUED", "SCHEDULED", "EXECUTING", "SUCCEED"]


def test_job_info_of_iterative_job(h: Harness) -> None:
    h.submit(job("it", iterations=2))
    h.ran("it", 0, JobState.SUCCEED, data={"exit_code": 0})
    h.event("it", 1, JobState.FAILED, data={"exit_code": 3, "message": "exit code 3"})
    info = h.info("it", withChilds=True)
    assert info["status"] == "FAILED"
    assert info["iterations"] == {"start": 0, "stop": 2, "total": 2, "finished": 2, "failed": 1}
    assert [(c["iteration"], c["state"]) for c in info["childs"]] == [(0, "SUCCEED"), (1, "FAILED")]
    assert info["childs"][1]["messages"] == "exit code 3"
    assert "1 of 2 iterations did not succeed" in info["messages"]
    it1 = h.info("it:1")
    assert it1["status"] == "FAILED" and it1["messages"] == "exit code 3"
    assert "childs" not in h.info("it")


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


# ---- resources and status --------------------------------------------------------------------------------

def test_resources_info_reflects_events(h: Harness) -> None:
    assert h.req("resourcesInfo") == {"code": 0, "data": {
        "total_nodes": 1, "total_cores": 4, "used_cores": 0, "free_cores": 4}}
    h.submit(job("a", resources={"numCores": 3}))
    h.event("a", None, JobState.EXECUTING, used=3)
    assert h.req("resourcesInfo")["data"] == {"total_nodes": 1, "total_cores": 4, "used_cores": 3,
                                              "free_cores": 1}
    h.ran("a", None, JobState.SUCCEED, used=0)
    assert h.req("resourcesInfo")["data"]["used_cores"] == 0


def test_resources_info_sums_partitions() -> None:
    sent: List[Message] = []
    links = [PartitionLink(0, "p0", ResourcePool(parse_nodes_spec("4")), sent.append),
             PartitionLink(1, "p1", ResourcePool(parse_nodes_spec("2,2")), sent.append)]
    front = Front(links, instance_id="t", report=LineWriter(None), report_format="json",
                  journal=Journal(LineWriter(None)))
    front.on_message(links[1], TaskEventsMsg([], 3))
    assert front.handle_request({"request": "resourcesInfo"})["data"] == {
        "total_nodes": 3, "total_cores": 8, "used_cores": 3, "free_cores": 5}


def test_status_all_jobs_finished(h: Harness) -> None:
    assert h.req("status", options={"allJobsFinished": True}) == {"code": 0, "data": {"AllJobsFinished": True}}
    h.submit(job("a"), job("b", iterations=2))
    assert h.req("status", options={"allJobsFinished": True})["data"] == {"AllJobsFinished": False}
    h.events(("a", None, JobState.EXECUTING), ("b", 0, JobState.EXECUTING))
    h.events(("a", None, JobState.SUCCEED), ("b", 0, JobState.SUCCEED))
    assert h.req("status", options={"allJobsFinished": True})["data"] == {"AllJobsFinished": False}
    h.event("b", 1, JobState.FAILED)
    assert h.req("status", options={"allJobsFinished": True})["data"] == {"AllJobsFinished": True}
    assert h.front.all_done


def test_full_status_counts(h: Harness) -> None:
    h.submit(job("a"), job("b", iterations=3), job("c", after=["nope"]))
    h.event("b", 0, JobState.EXECUTING, used=1)
    h.ran("a", None, JobState.SUCCEED, used=1)
    h.event("b", 1, JobState.FAILED, used=1)
    data = h.req("status")["data"]
    assert data["System"]["InstanceId"] == "t"
    assert data["System"]["Partitions"] == 1
    assert data["Resources"] == {"TotalNodes": 1, "TotalCores": 4, "UsedCores": 1, "FreeCores": 3}
    assert data["JobStats"] == {"TotalJobs": 3, "InScheduleJobs": 0, "ExecutingJobs": 1, "FinishedJobs": 1,
                                "FailedJobs": 0, "CanceledJobs": 0, "OmittedJobs": 1}
    assert data["IterationStats"] == {"TotalIterations": 5, "InScheduleIterations": 1,
                                      "ExecutingIterations": 1, "FinishedIterations": 1,
                                      "FailedIterations": 1, "CanceledIterations": 0, "OmittedIterations": 1}


# ---- control and finish ----------------------------------------------------------------------------------

def test_control_finish_after_all_twice(h: Harness) -> None:
    cmd = {"command": "finishAfterAllTasksDone"}
    assert h.req("control", **cmd) == {"code": 0, "message": "finishAfterAllTasksDone command accepted"}
    assert h.front.finish_after_all
    assert h.req("control", **cmd) == {"code": 1, "message": "Finish request already requested"}


def test_control_errors(h: Harness) -> None:
    assert h.req("control") == {"code": 1, "message": "Wrong control request - missing command"}
    assert h.req("control", command="explode") == \
        {"code": 1, "message": 'Wrong control request - unknown command "explode"'}


def test_finish_twice(h: Harness) -> None:
    assert h.req("finish") == {"code": 0, "data": {"when": "0s"}}
    assert h.req("finish") == {"code": 1, "message": "Finish request already requested"}
    assert h.req("control", command="finishAfterAllTasksDone")["message"] == "Finish request already requested"


def test_stopped_message_marks_link(h: Harness) -> None:
    h.front.on_message(h.link, StoppedMsg())
    assert h.link.stopped


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
