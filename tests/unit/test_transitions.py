"""The task state machine: the table in qcg_pilotjob.front.transitions and the front applying
it to partition events (illegal ones are logged, ignored, and change no counter)."""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional

import pytest

from qcg_pilotjob.front.core import Front
from qcg_pilotjob.front.journal import Journal
from qcg_pilotjob.front.links import PartitionLink
from qcg_pilotjob.front.reports import LineWriter
from qcg_pilotjob.front.transitions import InvalidTransition, check_task
from qcg_pilotjob.protocol.messages import Message, TaskEvent, TaskEventsMsg
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.states import FINAL_STATES, JobState

Q, S, E = JobState.QUEUED, JobState.SCHEDULED, JobState.EXECUTING


@pytest.mark.parametrize("start, finish", [
    (Q, E), (Q, JobState.FAILED), (Q, JobState.CANCELED), (Q, JobState.OMITTED), (Q, Q),
    (E, E), (E, JobState.SUCCEED), (E, JobState.FAILED), (E, JobState.CANCELED),
])
def test_legal(start: JobState, finish: JobState) -> None:
    check_task("t", start, finish, [])


@pytest.mark.parametrize("start, finish", [
    (Q, JobState.SUCCEED), (Q, S), (E, Q), (E, JobState.OMITTED),
    *[(f, s) for f in FINAL_STATES for s in JobState],
])
def test_illegal(start: JobState, finish: JobState) -> None:
    with pytest.raises(InvalidTransition) as err:
        check_task("t:1", start, finish, [(0.0, Q)])
    assert err.value.task == "t:1" and err.value.start is start and err.value.finish is finish
    assert err.value.history == [(0.0, Q)]


@pytest.mark.parametrize("state", [S, JobState.OMITTED])
def test_partition_may_not_report(state: JobState) -> None:
    with pytest.raises(InvalidTransition, match="a partition never reports"):
        check_task("t", Q, state, [], from_partition=True)


class Two:
    """A front with two fake partitions."""

    def __init__(self) -> None:
        self.sent: List[Message] = []
        self.links = [PartitionLink(i, f"p{i}", ResourcePool(parse_nodes_spec("4")), self.sent.append)
                      for i in range(2)]
        self.front = Front(self.links, instance_id="t", report=LineWriter(None), report_format="json",
                           journal=Journal(LineWriter(None)))

    def submit(self, name: str, iterations: Optional[int] = None) -> None:
        job: Dict[str, Any] = {"name": name, "execution": {"exec": "/bin/true"}}
        if iterations:
            job["iteration"] = {"stop": iterations}
        assert self.front.handle_request({"request": "submit", "jobs": [job]})["code"] == 0

    def where(self, name: str, it: Optional[int] = None) -> PartitionLink:
        job = self.front.jobs[name]
        return self.links[job.tasks.partition(job.index(it))]

    def event(self, link: PartitionLink, name: str, it: Optional[int], state: Any) -> None:
        self.front.on_message(link, TaskEventsMsg([TaskEvent(name, it, int(state), time.time())], 0))

    def snapshot(self) -> Any:
        f = self.front
        return (dict(f.task_counts), dict(f.job_counts), f.active_jobs, f.tasks_done, f.all_done)


@pytest.fixture
def two() -> Two:
    return Two()


def test_regression_scheduled_from_partition_is_not_final(two: Two, caplog: pytest.LogCaptureFixture) -> None:
    """A SCHEDULED event used to count as final: the job "finished" and AllJobsFinished
    became true."""
    two.submit("a")
    before = two.snapshot()
    with caplog.at_level(logging.WARNING):
        two.event(two.where("a"), "a", None, S)
    assert two.snapshot() == before
    assert two.front.jobs["a"].state is Q
    assert two.front.handle_request({"request": "status", "options": {"allJobsFinished": True}})["data"] == \
        {"AllJobsFinished": False}
    assert "QUEUED -> SCHEDULED is not allowed" in caplog.text and "p" in caplog.text
    assert two.front.invalid_events == 1


def test_regression_unknown_state_ignored(two: Two, caplog: pytest.LogCaptureFixture) -> None:
    two.submit("a")
    before = two.snapshot()
    two.event(two.where("a"), "a", None, 99)
    assert two.snapshot() == before
    assert "99 is not a task state" in caplog.text


def test_event_from_the_wrong_partition_ignored(two: Two) -> None:
    two.submit("a")
    right = two.where("a")
    wrong = two.links[1 - right.index]
    before = two.snapshot()
    two.event(wrong, "a", None, E)
    two.event(wrong, "a", None, JobState.SUCCEED)
    assert two.snapshot() == before
    two.event(right, "a", None, E)
    two.event(right, "a", None, JobState.SUCCEED)
    assert two.front.jobs["a"].state is JobState.SUCCEED


def test_success_without_start_and_events_after_the_end_ignored(two: Two) -> None:
    two.submit("a")
    link = two.where("a")
    two.event(link, "a", None, JobState.SUCCEED)  # never started
    assert two.front.jobs["a"].state is Q
    two.event(link, "a", None, E)
    two.event(link, "a", None, JobState.FAILED)
    after = two.snapshot()
    two.event(link, "a", None, JobState.SUCCEED)  # a final state never changes
    two.event(link, "a", None, E)
    assert two.snapshot() == after
    assert two.front.jobs["a"].state is JobState.FAILED
    assert two.front.task_counts[JobState.FAILED] == 1


def test_iteration_mismatch_ignored(two: Two) -> None:
    two.submit("it", 2)
    two.submit("plain")
    before = two.snapshot()
    two.event(two.where("it", 0), "it", None, E)   # a job with iterations needs one
    two.event(two.where("it", 0), "it", 7, E)      # no such iteration
    two.event(two.where("plain"), "plain", 0, E)   # a job without iterations has none
    assert two.snapshot() == before


def test_window_credit_returned_only_for_a_legal_final(two: Two) -> None:
    two.submit("a")
    link = two.where("a")
    assert link.outstanding == 1
    two.event(link, "a", None, JobState.SUCCEED)  # illegal: ignored, no credit back
    assert link.outstanding == 1
    two.event(link, "a", None, E)
    two.event(link, "a", None, JobState.SUCCEED)
    assert link.outstanding == 0
