"""The partition manager's side of the protocol, in process with a dry-run executor: one
TaskEventsMsg per loop turn, a dispatch during shutdown answered CANCELED."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Dict, List, Optional

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.partition.manager import PartitionManager
from qcg_pilotjob.protocol.messages import (
    CancelMsg,
    DispatchMsg,
    Message,
    ShutdownMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
    TasksEndedMsg,
)
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.states import JobState


def desc(name: str, n: int) -> JobDescription:
    return JobDescription.from_dict({"name": name, "execution": {"exec": "/bin/true"}, "iteration": {"stop": n}})


def manager(loop: asyncio.AbstractEventLoop, sent: List[Message], tmp: str, cores: int = 8,
            dry_run: bool = True) -> PartitionManager:
    return PartitionManager(loop, ResourcePool(parse_nodes_spec(str(cores))), sent.append, dry_run=dry_run,
                            executor_options={"root_wd": tmp, "aux_dir": tmp, "env_schema": "none",
                                              "zmq_address": None, "kill_grace": 1.0})


def test_one_task_events_message_per_loop_turn(tmp_path: object) -> None:
    async def scenario() -> List[Message]:
        sent: List[Message] = []
        pm = manager(asyncio.get_running_loop(), sent, str(tmp_path))
        pm.receive(DispatchMsg(desc("a", 8), 8, [(0, 8)]))
        for _ in range(3):  # schedule, start: 8 EXECUTING events; then 8 exits
            await asyncio.sleep(0)
        return sent

    sent = asyncio.run(scenario())
    assert sent and all(isinstance(m, TaskEventsMsg) for m in sent)
    first = sent[0]
    assert isinstance(first, TaskEventsMsg)
    assert [e.state for e in first.events[:8]] == [int(JobState.EXECUTING)] * 8  # 8 starts, one message
    events = [e for m in sent if isinstance(m, TaskEventsMsg) for e in m.events]
    assert sorted(e.state for e in events) == [int(JobState.EXECUTING)] * 8 + [int(JobState.SUCCEED)] * 8
    assert len(sent) <= 2  # 16 events in at most one message per loop turn


def test_dispatch_during_shutdown_answered_canceled(tmp_path: object) -> None:
    async def scenario() -> List[Message]:
        sent: List[Message] = []
        pm = manager(asyncio.get_running_loop(), sent, str(tmp_path))
        pm.receive(ShutdownMsg("finish"))
        for _ in range(5):
            await asyncio.sleep(0)
        pm.receive(DispatchMsg(desc("late", 2), 2, [(0, 2)]))
        for _ in range(3):
            await asyncio.sleep(0)
        return sent

    sent = asyncio.run(scenario())
    assert any(isinstance(m, StoppedMsg) for m in sent)
    # its iterations are answered together: one message of ranges, not an event each
    [ended] = [m for m in sent if isinstance(m, TasksEndedMsg)]
    assert (ended.job, ended.iterations, ended.state) == ("late", [(0, 2)], int(JobState.CANCELED))
    assert "finishing" in ended.message
    assert not [e for m in sent if isinstance(m, TaskEventsMsg) for e in m.events]


def test_a_jobs_spec_goes_with_its_last_task_here(tmp_path: object) -> None:
    """A long run of many jobs must not keep every job's description in its partitions:
    a job's spec goes when its last task here ends (done, failed to start, or canceled
    while queued), and comes back with the next dispatch of that job."""
    async def turns(pm: PartitionManager, until: Callable[[], bool]) -> None:
        for _ in range(200):  # (loop turns, not time: the dry-run executor ends tasks a turn later)
            if until():
                return
            await asyncio.sleep(0)
        raise AssertionError("the condition did not come true")

    async def scenario() -> List[Message]:
        sent: List[Message] = []
        pm = manager(asyncio.get_running_loop(), sent, str(tmp_path))
        pm.receive(DispatchMsg(desc("a", 4), 4, [(0, 4)]))
        pm.receive(DispatchMsg(desc("b", 20), 20, [(0, 12)]))  # (8 cores: b's last ones wait)
        await turns(pm, lambda: "a" not in pm.specs)
        assert "b" in pm.specs  # (some of b still run or wait)
        await turns(pm, lambda: not pm.specs)
        pm.receive(DispatchMsg(desc("b", 20), 20, [(12, 20)]))  # more of b, later
        assert "b" in pm.specs
        await turns(pm, lambda: not pm.specs)
        pm.receive(DispatchMsg(desc("c", 30), 30, [(0, 30)]))
        pm.receive(CancelMsg("c", None))  # (queued ones end together, running ones when stopped)
        await turns(pm, lambda: not pm.specs and not pm.executor.running)
        assert not pm._tasks_here
        return sent

    sent = asyncio.run(scenario())
    done = [(e.job, e.iteration) for m in sent if isinstance(m, TaskEventsMsg) for e in m.events
            if e.state == int(JobState.SUCCEED)]
    assert sorted(it for job, it in done if job == "b") == list(range(20))
    ended = [m for m in sent if isinstance(m, TasksEndedMsg)]
    canceled = sum(b - a for m in ended for a, b in m.iterations) + sum(
        1 for m in sent if isinstance(m, TaskEventsMsg) for e in m.events
        if e.job == "c" and e.state in (int(JobState.CANCELED), int(JobState.SUCCEED)))
    assert canceled == 30


def test_sigchld_exit_watch_reports_each_start_before_its_end(tmp_path: object, monkeypatch: Any) -> None:
    """Regression (2026-12-02): with exits seen through SIGCHLD (kernels without pidfd_open),
    a task that had exited by the time it was watched was reaped at once, inside the start:
    its end went out before its EXECUTING event, the scheduler pass died on a KeyError and
    the tasks of that pass never started (a run of 2,000 iterations stalled)."""
    from qcg_pilotjob.partition.executor import LocalExecutor
    monkeypatch.setattr(LocalExecutor, "_use_pidfd", False)

    async def scenario() -> List[TaskEvent]:
        sent: List[Message] = []
        pm = manager(asyncio.get_running_loop(), sent, str(tmp_path), dry_run=False)
        pm.receive(DispatchMsg(desc("fast", 200), 200, [(0, 200)]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            events = [e for m in sent if isinstance(m, TaskEventsMsg) for e in m.events]
            if sum(e.state == JobState.SUCCEED for e in events) == 200:
                break
            await asyncio.sleep(0.01)
        pm.executor.close()
        return events

    events = asyncio.run(scenario())
    order: Dict[Optional[int], List[int]] = {}
    for e in events:
        order.setdefault(e.iteration, []).append(e.state)
    assert len(order) == 200
    assert all(states == [JobState.EXECUTING, JobState.SUCCEED] for states in order.values())


def test_run_time_shorter_than_the_task_lived(tmp_path: object, monkeypatch: Any) -> None:
    """Regression (2026-12-02, a CI run): a task of ``sleep 0.3`` was reported with a run time
    of 0.29984 s. Its start was stamped when the spawn had returned, by which time the
    process was already running. The start is now stamped before the spawn: the EXECUTING
    event's time is no later than the spawn's call, and the run time is the span between
    the start and end events."""
    from qcg_pilotjob.partition.executor import LocalExecutor
    spawn_called: List[float] = []
    launch = LocalExecutor._launch

    def timed_launch(self: LocalExecutor, *args: Any) -> Any:
        spawn_called.append(time.time())
        return launch(self, *args)

    monkeypatch.setattr(LocalExecutor, "_launch", timed_launch)

    async def scenario() -> List[TaskEvent]:
        sent: List[Message] = []
        pm = manager(asyncio.get_running_loop(), sent, str(tmp_path), cores=1, dry_run=False)
        pm.receive(DispatchMsg(desc("one", 1), 1, [(0, 1)]))
        deadline = time.monotonic() + 60
        events: List[TaskEvent] = []
        while time.monotonic() < deadline and len(events) < 2:
            events = [e for m in sent if isinstance(m, TaskEventsMsg) for e in m.events]
            await asyncio.sleep(0.01)
        pm.executor.close()
        return events

    start, end = asyncio.run(scenario())
    assert (start.state, end.state) == (JobState.EXECUTING, JobState.SUCCEED)
    assert len(spawn_called) == 1 and start.time <= spawn_called[0]
    assert end.data is not None and end.data["rtime"] == end.time - start.time > 0
