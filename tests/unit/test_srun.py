"""srun step command lines and ending steps by name, without Slurm (a fake command runner)."""

from __future__ import annotations

import logging
import subprocess
from typing import Any, List, Optional

import pytest

from qcg_pilotjob.slurm.srun import agent_step_name, cancel_steps, parse_steps, step_command

PREFIX = ["srun", "--overlap", "-N", "1", "-n", "1", "-w", "n3", "--cpu-bind=none", "--mem-per-cpu=0"]


# ---- step_command: the three uses keep exactly the flags they had --------------------------------
def test_partition_step() -> None:
    """service/runtime.py: a governor's partition manager."""
    assert step_command("n3", ["python", "-m", "svc"], name="partition-1", unbuffered=True) == \
        [*PREFIX, "-J", "partition-1", "-u", "python", "-m", "svc"]


def test_agent_step() -> None:
    assert step_command("n3", ["python", "-m", "agent"], name=agent_step_name("n3"), unbuffered=True,
                        oversubscribe=True, extra=["--export=ALL"]) == \
        [*PREFIX, "--oversubscribe", "--overcommit", "-J", "agent-n3", "-u", "--export=ALL", "python", "-m", "agent"]


def test_task_step() -> None:
    """--disable-nl: a task is its own step."""
    assert step_command("n3", ["env", "A=1", "app"], kill_on_bad_exit=True, wd="/w/t") == \
        [*PREFIX, "--kill-on-bad-exit=1", "-D", "/w/t", "env", "A=1", "app"]


def test_plain_step_and_argv_untouched() -> None:
    argv = ["-J", "not an option of srun's"]
    assert step_command("n3", argv) == [*PREFIX, *argv]


# ---- parse_steps ---------------------------------------------------------------------------------
def test_parse_steps() -> None:
    out = ("41.0 agent-n1\n"
           "41.1 partition-0\n"
           "  41.2 a name with spaces  \n"
           "41.batch batch\n"
           "41.extern extern\n"
           "410.3 agent-n1\n"        # another job whose id starts alike
           "42.0 agent-n2\n"         # another job
           "41.4\n"                  # no name
           "\n"
           "garbage\n")
    assert parse_steps(out, "41") == [("41.0", "agent-n1"), ("41.1", "partition-0"), ("41.2", "a name with spaces"),
                                      ("41.batch", "batch"), ("41.extern", "extern")]
    assert parse_steps("", "41") == []


# ---- cancel_steps --------------------------------------------------------------------------------
class Runner:
    """Stands for subprocess.run: answers squeue with ``steps``; records every call."""

    def __init__(self, steps: str = "", squeue_rc: int = 0, scancel_rc: int = 0,
                 raises: Optional[BaseException] = None, raises_on: str = "squeue") -> None:
        self.steps = steps
        self.rc = {"squeue": squeue_rc, "scancel": scancel_rc}
        self.raises = raises
        self.raises_on = raises_on
        self.calls: List[List[str]] = []

    def __call__(self, cmd: List[str], **kw: Any) -> subprocess.CompletedProcess:
        assert kw["timeout"] > 0 and kw["check"] is False and kw["capture_output"] is True
        self.calls.append(cmd)
        if self.raises is not None and cmd[0] == self.raises_on:
            raise self.raises
        out = self.steps if cmd[0] == "squeue" else ""
        return subprocess.CompletedProcess(cmd, self.rc[cmd[0]], out, "error text" if self.rc[cmd[0]] else "")


STEPS = "7.0 agent-n1\n7.1 agent-n2\n7.2 partition-0\n7.3 partition-1\n7.batch batch\n"


def test_cancel_steps_by_name() -> None:
    run = Runner(STEPS)
    assert cancel_steps("7", ["partition-1", "agent-n2", "agent-n9"], runner=run) == ["7.1", "7.3"]
    assert run.calls == [["squeue", "--steps", "--job", "7", "--noheader", "--format", "%i %j"],
                         ["scancel", "--signal=KILL", "7.1", "7.3"]]


def test_cancel_steps_plain_scancel_and_other_signal() -> None:
    run = Runner(STEPS)
    assert cancel_steps("7", {"agent-n1"}, signal=None, runner=run) == ["7.0"]
    assert run.calls[-1] == ["scancel", "7.0"]
    assert cancel_steps("7", ["agent-n1"], signal="TERM", runner=run) == ["7.0"]
    assert run.calls[-1] == ["scancel", "--signal=TERM", "7.0"]


def test_cancel_steps_nothing_to_end() -> None:
    run = Runner(STEPS)
    assert cancel_steps("7", ["partition-9"], runner=run) == []
    assert cancel_steps("7", [], runner=run) == []
    assert all(c[0] == "squeue" for c in run.calls)  # scancel is never called with no step


@pytest.mark.parametrize("run, problem", [
    (Runner(raises=FileNotFoundError(2, "No such file or directory", "squeue")), "No such file"),
    (Runner(raises=subprocess.TimeoutExpired(["squeue"], 10)), "timed out"),
    (Runner(STEPS, squeue_rc=1), "exit code 1"),
    (Runner(STEPS, scancel_rc=1), "exit code 1"),
    (Runner(STEPS, raises=PermissionError(13, "Permission denied"), raises_on="scancel"), "Permission denied"),
])
def test_cancel_steps_errors_are_logged_not_raised(run: Runner, problem: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="qcg_pilotjob.slurm.srun"):
        assert cancel_steps("7", ["agent-n1"], runner=run) == []
    assert problem in caplog.text, caplog.text
