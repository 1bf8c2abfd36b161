"""Iterations that never started end together (qcg_pilotjob.front.core._end_together): a
canceled or omitted job of 10,000,000 iterations, or the queued iterations a partition
cancels in one TasksEndedMsg, cost one shared record and one journal line, not one each.
Checked against the journal and report files, a resume, and lying partitions."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from qcg_pilotjob.front.core import Front
from qcg_pilotjob.front.journal import Journal, read_journal
from qcg_pilotjob.front.links import PartitionLink
from qcg_pilotjob.front.reports import LineWriter
from qcg_pilotjob.protocol.messages import DispatchMsg, Message, TaskEvent, TaskEventsMsg, TasksEndedMsg
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.states import JobState

BIG = 10 ** 7


class Files:
    """A front writing its journal and report to ``tmp``, with partitions p0 and p1."""

    def __init__(self, tmp: Path, parts: int = 1) -> None:
        self.tmp = tmp
        self.sent: List[List[Message]] = [[] for _ in range(parts)]
        self.journal = LineWriter(str(tmp / "journal.jsonl"))
        self.report = LineWriter(str(tmp / "jobs.report"))
        self.front = Front([], instance_id="t", report=self.report, report_format="json",
                           journal=Journal(self.journal))
        self.journal.write(json.dumps({"t": "start"}) + "\n")
        self.links = [self.front.add_link(f"p{i}", ResourcePool(parse_nodes_spec("4")), self.sent[i].append)
                      for i in range(parts)]

    def submit(self, *jobs: Dict[str, Any]) -> Dict[str, Any]:
        return self.front.handle_request({"request": "submit", "jobs": list(jobs)})

    def events(self, link: PartitionLink, *events: Tuple[str, Any, JobState]) -> None:
        self.front.on_message(link, TaskEventsMsg([TaskEvent(j, i, int(s), time.time()) for j, i, s in events], 0))

    def status(self, *names: str) -> List[str]:
        jobs = self.front.handle_request({"request": "jobStatus", "jobNames": list(names)})["data"]["jobs"]
        return [jobs[n]["data"]["status"] for n in names]

    def lines(self, name: str) -> List[Dict[str, Any]]:
        self.journal.flush()
        self.report.flush()
        with open(self.tmp / name) as fh:
            return [json.loads(line) for line in fh if line.strip()]


def big(name: str, **extra: Any) -> Dict[str, Any]:
    return {"name": name, "execution": {"exec": "/bin/true"}, "iteration": {"stop": BIG}, **extra}


def test_an_omitted_job_of_ten_million_iterations_ends_at_once(tmp_path: Path) -> None:
    f = Files(tmp_path)
    f.submit({"name": "gate", "execution": {"exec": "/bin/false"}})
    f.submit(big("many", dependencies={"after": ["gate"]}))
    f.submit({"name": "after_it", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 3},
              "dependencies": {"after": ["many:${it}"]}})
    f.events(f.links[0], ("gate", None, JobState.EXECUTING), ("gate", None, JobState.FAILED))
    assert f.status("many", "many:0", f"many:{BIG - 1}", "after_it", "after_it:2") == ["OMITTED"] * 5
    job = f.front.jobs["many"]
    assert job.tasks.made() == {} and (job.finished, job.failed) == (BIG, BIG)
    assert f.front.task_counts[JobState.OMITTED] == BIG + 3 and f.front.task_counts[JobState.QUEUED] == 0
    ended = [r for r in f.lines("journal.jsonl") if r["t"] == "ended"]
    assert [(r["j"], r["r"], r["s"]) for r in ended] == [("many", [[0, BIG]], "OMITTED")]
    # the report: a line per job, none per iteration of the 10**7 that never ran; the
    # iterations waited for one by one (after_it:i after many:i) end one by one
    assert sorted(r["name"] for r in f.lines("jobs.report")) == sorted(
        ["gate", "many", "after_it", "after_it:0", "after_it:1", "after_it:2"])
    many = next(r for r in f.lines("jobs.report") if r["name"] == "many")
    assert many["iterations"] == {"start": 0, "stop": BIG, "total": BIG, "finished": BIG, "failed": BIG}


def test_a_few_iterations_ended_together_still_get_a_report_line_each(tmp_path: Path) -> None:
    f = Files(tmp_path)
    f.submit({"name": "gate", "execution": {"exec": "/bin/true"}})
    f.submit({"name": "few", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 3},
              "dependencies": {"after": ["gate"]}})
    f.front.handle_request({"request": "cancelJob", "jobNames": ["few"]})
    report = {r["name"]: r for r in f.lines("jobs.report")}
    assert sorted(report) == ["few", "few:0", "few:1", "few:2"]
    assert report["few:1"]["state"] == "CANCELED" and report["few:1"]["messages"] == "canceled by user"
    assert [h["state"] for h in report["few:1"]["history"]] == ["QUEUED", "CANCELED"]
    assert [r["t"] for r in f.lines("journal.jsonl")].count("ended") == 1


def test_a_partition_ends_queued_iterations_in_one_message(tmp_path: Path) -> None:
    f = Files(tmp_path)
    p0 = f.links[0]
    f.submit(big("many"))
    assert [m.iterations for m in f.sent[0] if isinstance(m, DispatchMsg)] == [[(0, BIG)]]
    f.events(p0, ("many", 0, JobState.EXECUTING), ("many", 0, JobState.SUCCEED), ("many", 1, JobState.EXECUTING))
    f.front.handle_request({"request": "cancelJob", "jobNames": ["many"]})
    f.front.on_message(p0, TasksEndedMsg("many", [(2, BIG)], int(JobState.CANCELED), time.time(), "canceled"))
    f.events(p0, ("many", 1, JobState.CANCELED))
    assert f.status("many", "many:0", "many:1", "many:5") == ["CANCELED", "SUCCEED", "CANCELED", "CANCELED"]
    assert sorted(f.front.jobs["many"].tasks.made()) == [0, 1]
    assert p0.outstanding == 0  # its window: every dispatched task came back
    assert f.front.invalid_events == 0


def test_lying_or_late_tasks_ended_messages_are_ignored(tmp_path: Path) -> None:
    f = Files(tmp_path, parts=2)
    p0, p1 = f.links
    f.submit({"name": "j", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 100}})
    on0 = f.front.jobs["j"].tasks.placed_on(p0.index)
    on1 = f.front.jobs["j"].tasks.placed_on(p1.index)
    assert on0 and on1
    a0, b0 = on0[0]
    f.events(p0, ("j", a0, JobState.EXECUTING))
    now = time.time()
    bad = [
        TasksEndedMsg("j", [on1[0]], int(JobState.CANCELED), now, "not p0's"),       # another partition's tasks
        TasksEndedMsg("j", [(a0, b0)], int(JobState.CANCELED), now, "one started"),  # a0 is running
        TasksEndedMsg("j", [(a0 + 1, b0)], int(JobState.EXECUTING), now, "not final"),
        TasksEndedMsg("j", [(0, 1000)], int(JobState.CANCELED), now, "no such tasks"),
    ]
    for msg in bad:
        f.front.on_message(p0, msg)
    assert f.front.invalid_events == len(bad)
    assert f.front.jobs["j"].finished == 0 and f.status("j") == ["EXECUTING"]
    f.front.on_message(p0, TasksEndedMsg("nope", [(0, 1)], int(JobState.CANCELED), now, "removed"))  # (ignored)
    f.front.on_message(p0, TasksEndedMsg("j", [(a0 + 1, b0)], int(JobState.CANCELED), now, "ok"))
    assert f.front.jobs["j"].finished == b0 - a0 - 1 and f.front.invalid_events == len(bad)


def test_ended_together_survives_a_resume(tmp_path: Path) -> None:
    first = Files(tmp_path)
    first.submit({"name": "gate", "execution": {"exec": "/bin/true"}})
    first.submit(big("many", dependencies={"after": ["gate"]}))
    first.front.handle_request({"request": "cancelJob", "jobNames": ["many"]})
    assert first.status("many") == ["CANCELED"]
    first.lines("journal.jsonl")
    replay = read_journal(str(tmp_path))
    os.rename(tmp_path / "journal.jsonl", tmp_path / "old.jsonl")
    second = Files(tmp_path)
    second.front.replay(replay)
    assert second.status("gate", "many", "many:123") == ["QUEUED", "CANCELED", "CANCELED"]
    assert second.front.jobs["many"].tasks.made() == {}
    # nothing of it was sent to run again
    assert [m.desc.name for m in second.sent[0] if isinstance(m, DispatchMsg)] == ["gate"]


def test_job_canceled_while_waiting_for_a_partition_is_never_dispatched(tmp_path: Path) -> None:
    """Review finding: a job canceled while its task waited in the ready queue (its
    partition was lost, none was left) was dispatched when a partition joined later, with
    the description it had let go of at its end; in governor mode the whole frame of
    dispatches it went in was refused by the partition."""
    f = Files(tmp_path)
    assert f.submit({"name": "a", "execution": {"exec": "/bin/true"}})["code"] == 0
    f.front.lose_link(f.links[0], "partition p0 lost: no message for 30.1s")  # (a goes back to waiting)
    assert f.front.handle_request({"request": "cancelJob", "jobNames": ["a"]})["code"] == 0
    assert f.status("a") == ["CANCELED"]
    later: List[Message] = []
    link = f.front.add_link("p1", ResourcePool(parse_nodes_spec("4")), later.append)
    assert not [m for m in later if isinstance(m, DispatchMsg)]
    assert link.outstanding == 0
