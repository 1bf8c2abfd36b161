"""What ends with a task (issue 9): the task mark, finding marked processes, which of them
are leftovers, and when the ``/proc`` sweep runs."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List, Tuple

import pytest

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.partition import leftovers as leftovers_mod
from qcg_pilotjob.partition.environment import TASK_MARK, build_plan, leftover_marks, mark_in, scan_marked
from qcg_pilotjob.partition.leftovers import Leftovers
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.service.config import ServiceConfig
from qcg_pilotjob.service.partitions import partition_args


@pytest.mark.parametrize("environ, mark", [
    (b"QCG_PM_TASK_MARK=r:1\0A=1\0", "r:1"),
    (b"A=1\0QCG_PM_TASK_MARK=r:2", "r:2"),
    (b"A=QCG_PM_TASK_MARK=r:3\0", None),
    (b"QCG_PM_TASK_MARKX=r:4\0", None),
    (b"", None),
])
def test_mark_in(environ, mark):
    assert mark_in(environ) == mark


def test_leftover_marks_keep_running_tasks_and_other_runs():
    found = [(1, "run:1"), (2, "run:2"), (3, "other:1"), (4, "nocolon"), (5, "run:3")]
    assert leftover_marks(found, {"run"}, {"run:2"}) == [(1, "run:1"), (5, "run:3")]
    assert leftover_marks(found, set(), set()) == []


def test_build_plan_sets_the_mark(tmp_path):
    desc = JobDescription.from_dict({"name": "j", "execution": {"exec": "true"}})
    alloc = ResourcePool(parse_nodes_spec("1")).allocate_cores(1, 1)
    kw = {"root_wd": str(tmp_path), "base_env": {TASK_MARK: "outer:7"}, "step_id": "1", "env_schema": "auto",
          "zmq_address": None, "hostfile_dir": str(tmp_path)}
    assert build_plan(desc, None, alloc, task_mark="r:1", **kw).env[TASK_MARK] == "r:1"  # not the outer one


def test_scan_finds_a_marked_process():
    env = dict(os.environ, **{TASK_MARK: "unit-scan:1"})
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], env=env, stdin=subprocess.PIPE)
    try:
        assert (proc.pid, "unit-scan:1") in scan_marked()
    finally:
        proc.communicate(b"")
    assert (proc.pid, "unit-scan:1") not in scan_marked()


class Handle:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Records timers; ``time()`` is set by the test."""

    def __init__(self) -> None:
        self.now = 100.0
        self.at: List[Tuple[float, object]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when, cb, *args):
        self.at.append((when, cb))
        return Handle()

    def call_later(self, delay, cb, *args):
        return self.call_at(self.now + delay, cb, *args)


def test_sweep_is_throttled_and_only_after_a_task_ended():
    scans: List[int] = []
    loop = FakeLoop()
    left = Leftovers(loop, 1.0, scan=lambda: scans.append(1) or [])  # type: ignore[arg-type]
    left.started("r:1")
    left.started("r:2")
    assert loop.at == []
    left.ended(0, "r:1")
    left.ended(0, "r:2")  # one sweep for both
    assert [w for w, _ in loop.at] == [100.0 + leftovers_mod.SWEEP_DELAY]
    left.sweep()
    assert scans == [1] and left.running == set() and left.runs == {"r"}
    loop.now = 100.5
    left.ended(0, "r:3")  # the next one no sooner than SWEEP_EVERY after the last
    assert loop.at[-1][0] == 100.0 + leftovers_mod.SWEEP_EVERY
    left.close()  # a sweep that was due runs at once
    assert scans == [1, 1]


def test_sweep_spares_running_tasks_and_pids_it_cannot_verify():
    loop = FakeLoop()
    found = [(os.getpid(), "r:1"), (os.getpid(), "r:2")]  # this process carries no mark: not verified
    left = Leftovers(loop, 1.0, scan=lambda: found)  # type: ignore[arg-type]
    left.started("r:1")
    assert left.sweep() == 0
    assert left.pidfds == {}


def test_option_reaches_partitions():
    cfg = ServiceConfig(nodes="2", governor=True, keep_task_children=True).validate()
    nodes = parse_nodes_spec("2")
    args = partition_args(cfg, "p0", nodes, "tcp://x:1", "/wd", "/aux", None)
    assert "--keep-task-children" in args
    assert "--keep-task-children" not in partition_args(ServiceConfig(nodes="2", governor=True).validate(),
                                                        "p0", nodes, "tcp://x:1", "/wd", "/aux", None)


def test_group_kill_spares_a_new_process_with_the_leaders_pid(monkeypatch):
    """The leader was reaped: if a process has its pid now, the task's group ended and the
    number is not SIGKILLed; if none has it, what is left of the group is."""
    killed: List[int] = []
    monkeypatch.setattr(leftovers_mod.os, "killpg", lambda pgid, sig: killed.append(pgid))
    live = subprocess.Popen(["sleep", "30"], start_new_session=True)
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    try:
        left = Leftovers(FakeLoop(), 1.0)  # type: ignore[arg-type]
        left.groups.update({live.pid, gone.pid})
        left._kill_group(live.pid)
        left._kill_group(gone.pid)
        left._kill_group(gone.pid)  # once only
        assert killed == [gone.pid] and left.groups == set()
    finally:
        live.kill()
        live.wait()
