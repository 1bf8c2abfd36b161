"""Unit tests of qcg_pilotjob.front: jobStatus and jobInfo, resources and status requests
(harness: :mod:`tests.unit.front_harness`)."""

from __future__ import annotations

from typing import List

from qcg_pilotjob.front.core import Front, PartitionLink
from qcg_pilotjob.front.journal import Journal
from qcg_pilotjob.front.reports import LineWriter
from qcg_pilotjob.protocol.messages import Message, TaskEventsMsg
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.states import JobState
from tests.unit.front_harness import Harness, harness, job  # noqa: F401  (harness is the h fixture)

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
                               "rtime": "0:00:01.500000", "pname": "true"}
    assert [line.split(": ")[-1] for line in info["history"].strip().split("\n")] == \
        ["QUEUED", "SCHEDULED", "EXECUTING", "SUCCEED"]


def test_pname_names_the_process_as_qcg_pilotjob_does(h: Harness) -> None:
    """``runtime.pname`` (read by QCG-PilotJob's qcg-pm-processes): the program's base
    name, ``bash`` for a script, per iteration with ``${it}`` replaced; only once ended."""
    h.submit(job("s", execution={"script": "echo hi"}),
             job("per", iterations=2, execution={"exec": "/opt/bin/model_${it}", "args": ["x"]}))
    h.event("s", None, JobState.EXECUTING, used=1, data={"allocation": "n0[0]", "wd": "/w", "pid": 5})
    assert "pname" not in h.info("s")["runtime"]
    h.ran("s", None, JobState.SUCCEED, data={"exit_code": 0, "rtime": 0.1})
    assert h.info("s")["runtime"]["pname"] == "bash"
    h.ran("per", 1, JobState.SUCCEED, data={"exit_code": 0, "rtime": 0.1})
    assert h.info("per:1")["runtime"]["pname"] == "model_1"


def test_list_jobs_in_queue_counts_jobs_not_started(h: Harness) -> None:
    h.submit(job("a"), job("b"), job("c", iterations=2))
    h.event("a", None, JobState.EXECUTING, used=1, data={"allocation": "n0[0]", "pid": 7})
    jobs = h.req("listJobs")["data"]["jobs"]
    assert jobs["a"] == {"status": "EXECUTING"}
    assert (jobs["b"]["inQueue"], jobs["c"]["inQueue"]) == (0, 1)


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


def test_iteration_status_events_only_while_subscribed(h: Harness) -> None:
    """IST (QCG-PilotJob's iteration-state event) is made only while a subscriber's topic
    covers it; JST, IFI, JFI and NOJ always, each with the ``manager`` field."""
    published: List[tuple] = []
    h.front.attach_publisher(lambda topic, data: published.append((topic, data)), "tcp://x:1", "tcp://x:2")
    h.submit(job("it", iterations=2))
    h.ran("it", 0, JobState.SUCCEED)
    assert [t for t, _ in published if t == "IST"] == []
    h.front.iteration_events = True
    h.ran("it", 1, JobState.FAILED)
    ist = [(d["it"], d["state"]) for t, d in published if t == "IST"]
    assert ist == [(1, "EXECUTING"), (1, "FAILED")]
    topics = [t for t, _ in published]
    assert topics.count("IFI") == 2 and topics[-2:] == ["JFI", "NOJ"] and "JST" in topics
    assert all(d["manager"] == h.front.instance_id for _, d in published)
