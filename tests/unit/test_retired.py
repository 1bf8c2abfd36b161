"""Finished iterations in columns (qcg_pilotjob.front.retired, issue 10): about 50 bytes
each instead of 700 and more, and nothing a user or a partition sees may change because
of it. Each scenario runs twice, with retiring and with it turned off, and every view
(jobInfo with childs, jobStatus, list, status, the report and the journal) must be equal;
the registry's own answers (states, counts, what was placed where) are checked directly."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from qcg_pilotjob.front.registry import JobRecord, TaskRecord, TaskTable
from qcg_pilotjob.front.retired import CHUNK, PRUNED, Retired
from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.protocol.messages import DispatchMsg, TaskEvent, TaskEventsMsg, TasksEndedMsg
from qcg_pilotjob.states import JobState
from tests.unit.test_front_bulk import Files


def _scenario(tmp: Path, prune: bool = False) -> Tuple[Files, List[Dict[str, Any]]]:
    """A job of 12 iterations over two partitions: some succeed (with and without a pid),
    some fail with a message, one ends with an int run time (not retired), one fails
    before it starts, and the rest are canceled; then partition p0 is lost."""
    f = Files(tmp, parts=2)
    f.front.prune = prune
    assert f.submit({"name": "it", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 12}})["code"] == 0
    placed = {i: n for n, sent in enumerate(f.sent) for m in sent if isinstance(m, DispatchMsg)
              for a, b in m.iterations or () for i in range(a, b)}
    now = 1_700_000_000.0

    def send(it: int, state: JobState, when: float, data: Dict[str, Any]) -> None:
        f.front.on_message(f.links[placed[it]], TaskEventsMsg([TaskEvent("it", it, int(state), when, data)], 0))

    for it in range(8):
        started = {"allocation": f"n0[{it % 4}]", "wd": "/w"} | ({"pid": 1000 + it} if it % 2 else {})
        send(it, JobState.EXECUTING, now + it, started)
        ended: Dict[str, Any] = {"allocation": f"n0[{it % 4}]", "exit_code": 0 if it < 5 else 3,
                                 "rtime": 0.5 + it if it != 6 else 7}
        if it >= 5:
            ended["message"] = f"exit code 3 (iteration {it})"
        send(it, JobState.SUCCEED if it < 5 else JobState.FAILED, now + it + 0.25, ended)
    send(8, JobState.FAILED, now + 9, {"message": "cannot start the task: no such file"})
    send(9, JobState.EXECUTING, now + 10, {"allocation": "n0[1]", "wd": "/w", "pid": 77})
    send(1, JobState.SUCCEED, now + 20, {"exit_code": 0, "rtime": 1.0})  # a late word: refused
    lost = placed[9]  # (running, and the partition of retired iterations too)
    assert {n for i, n in placed.items() if i < 8} == {0, 1}
    f.front.lose_link(f.links[lost], f"partition p{lost} lost")
    views = [f.front.handle_request({"request": "jobInfo", "jobNames": ["it"], "params": {"withChilds": True}}),
             f.front.handle_request({"request": "jobStatus", "jobNames": ["it"]}),
             f.front.handle_request({"request": "listJobs"}), f.front.task_counts.copy(),
             f.front.invalid_events]
    f.front.handle_request({"request": "cancelJob", "jobNames": ["it"]})
    tasks = f.front.jobs["it"].tasks
    left = [i for i in range(12) if not tasks.state(i).is_final]
    assert left and all(tasks.partition(i) == 1 - lost for i in left)  # (routed again to the other)
    f.front.on_message(f.links[1 - lost], TasksEndedMsg("it", [(i, i + 1) for i in left], int(JobState.CANCELED),
                                                        now + 30, "canceled before it started"))
    views += [f.front.handle_request({"request": "jobInfo", "jobNames": ["it"], "params": {"withChilds": True}}),
              f.front.task_counts.copy(), [str(m) for sent in f.sent for m in sent]]
    f.front.handle_request({"request": "removeJob", "jobNames": ["it"]})
    views += [f.front.task_counts.copy(), f.lines("jobs.report"),
              f.lines("journal.jsonl")]
    return f, views


def test_retiring_changes_nothing_anybody_sees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setattr(time, "time", lambda: 1_700_000_100.125)  # (ends the front dates itself)
    kept, with_retiring = _scenario(tmp_path / "a")
    assert kept.front.invalid_events == 1
    monkeypatch.setattr(TaskTable, "retire", lambda self, idx, submit_time, prune=False: None)
    _, without = _scenario(tmp_path / "b")
    for got, expected in zip(with_retiring, without):
        assert json.loads(json.dumps(got, default=str)) == json.loads(json.dumps(expected, default=str))
    assert with_retiring[3][JobState.EXECUTING] == 0  # (iteration 9 was FAILED with p0's loss)
    assert all(n == 0 for n in with_retiring[8].values())  # every count back to 0 after the removal


def test_most_iterations_retire_and_odd_ones_keep_their_record() -> None:
    desc = JobDescription.from_dict({"name": "j", "execution": {"exec": "x"}, "iteration": {"stop": 3 * CHUNK}})
    job = JobRecord(desc, 100.0, 0)
    for idx in (0, CHUNK + 5, 2 * CHUNK + 1):
        rec = job.tasks[idx]
        rec.set_state(JobState.SCHEDULED, 101.0, 100.0)
        rec.set_state(JobState.EXECUTING, 101.0, 100.0)
        rec.set_state(JobState.SUCCEED, 102.0, 100.0)
        rec.runtime = {"allocation": "n[0]", "wd": "/w", "exit_code": 0, "rtime": 1.0}
    odd = job.tasks[7]
    odd.set_state(JobState.SCHEDULED, 101.0, 100.0)
    odd.set_state(JobState.EXECUTING, 101.5, 100.0)  # (not at one time with SCHEDULED)
    odd.set_state(JobState.FAILED, 102.0, 100.0)
    for idx in (0, CHUNK + 5, 2 * CHUNK + 1, 7):
        job.tasks.retire(idx, 100.0)
    assert sorted(job.tasks.made()) == [7]
    assert job.tasks.made_in(0, 3 * CHUNK) == [0, 7, CHUNK + 5, 2 * CHUNK + 1]
    assert job.tasks.made_in(1, CHUNK + 5) == [7]
    assert job.tasks.state(CHUNK + 5) is JobState.SUCCEED and job.tasks.state(3) is JobState.QUEUED
    counts = job.tasks.state_counts()
    assert counts[JobState.SUCCEED] == 3 and counts[JobState.FAILED] == 1
    assert counts == {JobState.SUCCEED: 3, JobState.FAILED: 1, JobState.QUEUED: 3 * CHUNK - 4}
    view = job.tasks.view(0)
    assert view.history == [(100.0, JobState.QUEUED), (101.0, JobState.SCHEDULED), (101.0, JobState.EXECUTING),
                            (102.0, JobState.SUCCEED)]
    # a record asked for again (only a wrong message would) leaves the columns
    again = job.tasks[0]
    assert again.history == view.history and sorted(job.tasks.made()) == [0, 7]
    assert job.tasks.state_counts() == counts


@pytest.mark.parametrize("runtime", [
    {"allocation": "a", "wd": "/w", "exit_code": 0, "rtime": 1},         # an int run time
    {"allocation": "a", "wd": "/w", "exit_code": 0},                     # no run time
    {"wd": "/w", "allocation": "a", "exit_code": 0, "rtime": 1.0},       # another order
    {"allocation": "a", "wd": "/w", "pid": 2 ** 40, "exit_code": 0, "rtime": 1.0},  # a pid too big
    {"allocation": 5, "wd": "/w", "exit_code": 0, "rtime": 1.0},         # not a text
])
def test_unusual_records_are_not_retired(runtime: Dict[str, Any]) -> None:
    rec = TaskRecord()
    rec.set_state(JobState.SCHEDULED, 1.0, 0.0)
    rec.set_state(JobState.EXECUTING, 1.0, 0.0)
    rec.set_state(JobState.SUCCEED, 2.0, 0.0)
    rec.runtime = runtime
    assert Retired(0.0).add(0, rec) is False


def test_a_retired_iteration_costs_tens_of_bytes() -> None:
    import tracemalloc
    store = Retired(1.0)
    recs = []
    for i in range(CHUNK):
        rec = TaskRecord()
        rec.set_state(JobState.SCHEDULED, time.time(), 1.0)
        rec.set_state(JobState.EXECUTING, rec.history[-1][0], 1.0)  # type: ignore[index]
        rec.set_state(JobState.SUCCEED, time.time(), 1.0)
        rec.runtime = {"allocation": f"n{i % 8}[{i % 16}]", "wd": "/w", "pid": i + 1, "exit_code": 0, "rtime": 0.1}
        recs.append(rec)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, rec in enumerate(recs):
        assert store.add(i, rec)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert used / CHUNK < 64, used / CHUNK  # (a record with its history and runtime: over 700)


def test_pruned_iterations_keep_counts_reports_and_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--prune-finished``: a finished iteration keeps its state alone. Counts, states,
    the job list, the report and the journal are those of a run without pruning; jobInfo
    shows each pruned iteration's state and says its details were not kept."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setattr(time, "time", lambda: 1_700_000_100.125)
    _, with_pruning = _scenario(tmp_path / "a", prune=True)
    _, without = _scenario(tmp_path / "b")
    same = [1, 2, 3, 4, 6, 7, 8, 9, 10]  # (jobStatus, list, counts, refusals, messages sent, report, journal)
    for i in same:
        assert json.loads(json.dumps(with_pruning[i], default=str)) == json.loads(json.dumps(without[i], default=str))
    childs = with_pruning[0]["data"]["jobs"]["it"]["data"]["childs"]
    plain = without[0]["data"]["jobs"]["it"]["data"]["childs"]
    assert [c["state"] for c in childs] == [c["state"] for c in plain]
    finals = [c for c in childs if c["state"] in ("SUCCEED", "FAILED") and c["iteration"] != 6]
    assert finals and all(c.get("messages") == PRUNED and "runtime" not in c for c in finals)
    assert any("runtime" in c for c in plain)


def test_a_pruned_iteration_costs_a_byte() -> None:
    import tracemalloc
    store = Retired(1.0, pruned=True)
    rec = TaskRecord()
    rec.set_state(JobState.FAILED, 2.0, 1.0)
    rec.message = "exit code 1"
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(4 * CHUNK):
        assert store.add(i, rec)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert used / (4 * CHUNK) < 2, used
    assert store.record(5).state is JobState.FAILED and store.record(5).message == PRUNED
    assert store.counts == {JobState.FAILED: 4 * CHUNK}
