"""What ends with a task (issue 9): the processes a task leaves behind when its main
process exits are ended after the task's final state is reported, unless
``--keep-task-children``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from qcg.pilotjob.api.job import Jobs
from qcg_pilotjob.partition.environment import TASK_MARK
from qcg_pilotjob.protocol.codec import encode_batch
from qcg_pilotjob.protocol.messages import AgentHelloMsg, AgentStopMsg, ExitMsg, RunMsg
from tests.conftest import wait_for
from tests.integration.conftest import wait_state
from tests.integration.test_agent_loops import AgentPeer

pytestmark = pytest.mark.integration

#: the task waits until its child is ready (trap set, own session): a SIGTERM to the group before
#: that would end it
_READY = "; until [ -e ready ]; do :; done"
#: a background child in the task's process group
GROUP_CHILD = "sleep 300 & echo $! > child.pid"
#: ... without the task's mark: only what is sent to the group reaches it
UNMARKED_CHILD = "env -u QCG_PM_TASK_MARK sleep 304 & echo $! > child.pid"
#: ... that ignores SIGTERM: only the SIGKILL after the grace period ends it
STUBBORN_CHILD = ("env -u QCG_PM_TASK_MARK bash -c \"trap '' TERM; touch ready; exec sleep 302\" & echo $! > child.pid"
                  + _READY)
#: a child that left the group: its own session (setsid)
SETSID_CHILD = "setsid bash -c 'touch ready; exec sleep 301' & echo $! > child.pid" + _READY
#: a daemon: double fork and setsid, its parent gone before the task ends
DAEMON_CHILD = "( (exec setsid bash -c 'touch ready; exec sleep 303') & echo $! > child.pid )" + _READY
#: a child that left the group and ignores SIGTERM
STUBBORN_SETSID_CHILD = "setsid bash -c \"trap '' TERM; touch ready; exec sleep 305\" & echo $! > child.pid" + _READY


def alive(pid: int) -> bool:
    """A zombie counts as gone (PID 1 of a container may never reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def children():
    """Pids of task children the test saw; whatever is left is killed at the end."""
    pids: list = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def run_task(manager, tmp_path, name: str, script: str, children: list) -> int:
    """Run ``script`` as job ``name`` in its own directory; wait until it is SUCCEED and
    return the pid its child wrote."""
    wd = tmp_path / name
    manager.submit(Jobs().add_std({"name": name, "execution": {"script": script, "wd": str(wd)}}))
    wait_state(manager, name, "SUCCEED")
    pid = int((wd / "child.pid").read_text())
    children.append(pid)
    return pid


@pytest.mark.parametrize("script", [GROUP_CHILD, UNMARKED_CHILD], ids=["marked", "unmarked"])
def test_group_child_gets_sigterm_at_once(local, tmp_path, children, script):
    manager = local("--wd", str(tmp_path), "--nodes", "2", "--kill-grace", "30")
    pid = run_task(manager, tmp_path, "bg", script, children)
    wait_for(lambda: not alive(pid), timeout=5, what="the task's child gone")


@pytest.mark.parametrize("script", [STUBBORN_CHILD, STUBBORN_SETSID_CHILD], ids=["group", "setsid"])
def test_task_end_is_reported_before_its_stubborn_child_is_killed(local, tmp_path, children, script):
    manager = local("--wd", str(tmp_path), "--nodes", "2", "--kill-grace", "3")
    pid = run_task(manager, tmp_path, "stubborn", script, children)
    assert alive(pid)  # SUCCEED came first: the SIGKILL is still 3 s away
    wait_for(lambda: not alive(pid), timeout=2 + 3 + 5, what="the stubborn child killed")


@pytest.mark.parametrize("script", [SETSID_CHILD, DAEMON_CHILD], ids=["setsid", "daemon"])
def test_child_that_left_the_group_is_found_by_its_mark(local, tmp_path, children, script):
    manager = local("--wd", str(tmp_path), "--nodes", "2", "--kill-grace", "30")
    pid = run_task(manager, tmp_path, "escaped", script, children)
    # the sweep runs at most every 2 s; its SIGTERM ends sleep
    wait_for(lambda: not alive(pid), timeout=2 + 5, what="the escaped child gone")


def test_stop_kills_leftovers_at_once(local, tmp_path, children):
    manager = local("--wd", str(tmp_path), "--nodes", "2", "--kill-grace", "30")
    stubborn = run_task(manager, tmp_path, "stubborn", STUBBORN_CHILD, children)
    escaped = run_task(manager, tmp_path, "escaped", STUBBORN_SETSID_CHILD, children)
    manager.finish()  # returns once the service process exited
    assert not alive(stubborn) and not alive(escaped)


def test_keep_task_children_leaves_them_running(local, tmp_path, children):
    manager = local("--wd", str(tmp_path), "--nodes", "2", "--kill-grace", "1", "--keep-task-children")
    group = run_task(manager, tmp_path, "bg", GROUP_CHILD, children)
    escaped = run_task(manager, tmp_path, "escaped", SETSID_CHILD, children)
    manager.finish()  # a sweep due would run now, and pending kills happen now
    assert alive(group) and alive(escaped)


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep"])
def test_governor_partitions_end_or_keep_children(local, tmp_path, children, keep):
    """The option reaches partition managers a governor starts."""
    args = ["--wd", str(tmp_path), "--nodes", "1,1", "--slurm-partition-nodes", "1", "--kill-grace", "30"]
    manager = local(*args, *(["--keep-task-children"] if keep else []))
    escaped = run_task(manager, tmp_path, "escaped", SETSID_CHILD, children)
    if keep:
        manager.finish()  # the partitions stopped: a sweep due would have run
        assert alive(escaped)
    else:
        wait_for(lambda: not alive(escaped), timeout=2 + 5, what="the escaped child gone")


# ---- a node agent (the same ending, in launcher/agent.py) -----------------------------------------
def _agent(tmp_path, peer, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qcg_pilotjob.launcher.agent", "--address",
                             f"tcp://127.0.0.1:{peer.port}", "--node", "n0", "--log", str(tmp_path / "agent.log"),
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _agent_task(peer, tmp_path, step: int, script: str, children: list) -> int:
    """Run ``script`` through the agent as task ``t:step`` marked ``agentrun:step``; wait for its
    exit (code 0) and return the pid its child wrote."""
    wd = tmp_path / f"t{step}"
    peer.send(encode_batch([RunMsg(["t", step], ["bash", "-c", script], str(wd), {TASK_MARK: f"agentrun:{step}"},
                                   None, None, None, None)]))
    assert peer.wait(ExitMsg, lambda m: m.key == ["t", step]).code == 0
    pid = int((wd / "child.pid").read_text())
    children.append(pid)
    return pid


@pytest.mark.timeout(60)
def test_agent_ends_what_its_tasks_leave_behind(tmp_path, children):
    peer = AgentPeer()
    proc = _agent(tmp_path, peer, "--kill-grace", "3")
    try:
        peer.wait(AgentHelloMsg)
        group = _agent_task(peer, tmp_path, 1, STUBBORN_CHILD, children)
        escaped = _agent_task(peer, tmp_path, 2, STUBBORN_SETSID_CHILD, children)
        assert alive(group) and alive(escaped)  # the exits came first: the SIGKILLs are 3 s away
        wait_for(lambda: not alive(group) and not alive(escaped), timeout=2 + 3 + 5, what="the children killed")
        short = _agent_task(peer, tmp_path, 3, SETSID_CHILD, children)
        peer.send(encode_batch([AgentStopMsg()]))  # a sweep that was due runs before the agent exits
        assert proc.wait(timeout=20) == 0
        assert not alive(short)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        peer.close()


@pytest.mark.timeout(60)
def test_agent_keeps_task_children_when_told(tmp_path, children):
    peer = AgentPeer()
    proc = _agent(tmp_path, peer, "--kill-grace", "1", "--keep-task-children")
    try:
        peer.wait(AgentHelloMsg)
        group = _agent_task(peer, tmp_path, 1, GROUP_CHILD, children)
        escaped = _agent_task(peer, tmp_path, 2, SETSID_CHILD, children)
        peer.send(encode_batch([AgentStopMsg()]))
        assert proc.wait(timeout=20) == 0
        assert alive(group) and alive(escaped)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        peer.close()
