"""srun command lines for one-node steps, and ending steps of the allocation by name.

Everything qcg_pilotjob runs inside an allocation, besides what a task's own model
starts, is a one-task step on one named node, built by :func:`step_command`:

- a partition manager of a governor: ``step_command(node, argv, name="partition-<i>", unbuffered=True)``
- a node agent: ``step_command(node, argv, name=agent_step_name(node), unbuffered=True,
  oversubscribe=True, extra=srun_extra)``
- a task with ``--disable-nl``: ``step_command(node, argv, kill_on_bad_exit=True, wd=task_wd)``

Every step shares its node with the others (``--overlap``), is not bound to CPUs by
Slurm (``--cpu-bind=none``: agents bind their tasks themselves) and asks for no memory
(``--mem-per-cpu=0``), so that it is never held back by the steps already running.

>>> step_command("n1", ["prog", "-x"], name="partition-0", unbuffered=True)  # doctest: +NORMALIZE_WHITESPACE
['srun', '--overlap', '-N', '1', '-n', '1', '-w', 'n1', '--cpu-bind=none', '--mem-per-cpu=0',
 '-J', 'partition-0', '-u', 'prog', '-x']
>>> parse_steps("7.0 agent-n1\\n7.1 partition 0\\n7.batch batch\\n", "7")
[('7.0', 'agent-n1'), ('7.1', 'partition 0'), ('7.batch', 'batch')]

:func:`cancel_steps` ends the steps of the current allocation that carry given names
(``squeue --steps`` to find them, ``scancel`` to end them): the governor ends a lost
partition's step and its agents' steps with it. It never raises: a missing ``squeue``,
a timeout or a refusal is logged and fewer (or no) step ids are returned.
"""

from __future__ import annotations

import logging
import subprocess
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

__all__ = ["agent_step_name", "cancel_steps", "parse_steps", "step_command"]

_log = logging.getLogger(__name__)

#: runs a command like :func:`subprocess.run` (replaced in tests)
Runner = Callable[..., Any]


def agent_step_name(node: str) -> str:
    """The step name (``-J``) of the node agent on ``node``."""
    return f"agent-{node}"


def step_command(node: str, argv: Sequence[str], *, name: Optional[str] = None, unbuffered: bool = False,
                 oversubscribe: bool = False, kill_on_bad_exit: bool = False, wd: Optional[str] = None,
                 extra: Sequence[str] = ()) -> List[str]:
    """The command line that runs ``argv`` as a one-task srun step on ``node``.

    :param node: the node (``-w``); the step has one node and one task (``-N 1 -n 1``)
    :param argv: what the step runs
    :param name: the step name (``-J``), which :func:`cancel_steps` finds it by
    :param unbuffered: ``-u``: the step's output is passed on at once (long-lived services
        whose output goes to a log file)
    :param oversubscribe: ``--oversubscribe --overcommit``: the step may start even when
        the allocation's CPUs on the node are all taken by other steps (node agents)
    :param kill_on_bad_exit: ``--kill-on-bad-exit=1``: a task that fails ends the step
    :param wd: the step's working directory (``-D``)
    :param extra: more srun options, after all of the above and before ``argv``
    """
    cmd = ["srun", "--overlap", "-N", "1", "-n", "1", "-w", node, "--cpu-bind=none", "--mem-per-cpu=0"]
    if oversubscribe:
        cmd += ["--oversubscribe", "--overcommit"]
    if kill_on_bad_exit:
        cmd.append("--kill-on-bad-exit=1")
    if wd is not None:
        cmd += ["-D", wd]
    if name is not None:
        cmd += ["-J", name]
    if unbuffered:
        cmd.append("-u")
    return [*cmd, *extra, *argv]


def squeue_steps_command(job_id: str) -> List[str]:
    """Lists the steps of job ``job_id``, one ``STEPID NAME`` line each (Slurm 22.05)."""
    return ["squeue", "--steps", "--job", str(job_id), "--noheader", "--format", "%i %j"]


def parse_steps(text: str, job_id: str) -> List[Tuple[str, str]]:
    """``(step id, step name)`` of each line of ``squeue --steps --format "%i %j"`` output
    that belongs to job ``job_id``; names may hold spaces; other lines are skipped."""
    steps = []
    for line in text.splitlines():
        step, _, name = line.strip().partition(" ")
        if step.startswith(f"{job_id}.") and name:
            steps.append((step, name.strip()))
    return steps


def _run(runner: Runner, cmd: List[str], timeout: float) -> Optional[str]:
    """Run ``cmd``; its standard output, or None (then logged) if it failed."""
    try:
        res = runner(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        _log.warning("%s failed: %s", cmd[0], exc)
        return None
    if res.returncode != 0:
        _log.warning("%s failed (exit code %s): %s", " ".join(cmd[:2]), res.returncode, (res.stderr or "").strip())
        return None
    return str(res.stdout)


def cancel_steps(job_id: str, names: Iterable[str], signal: Optional[str] = "KILL", *, timeout: float = 10.0,
                 runner: Runner = subprocess.run) -> List[str]:
    """End the steps of job ``job_id`` named ``names``; returns the step ids ended.

    ``signal``: sent to every process of those steps (``scancel --signal=KILL``); None:
    Slurm's own step cancel (SIGTERM, then SIGKILL after its KillWait). Errors (no
    ``squeue``/``scancel``, a timeout, a refusal) are logged at WARNING and never raised:
    then no step ids are returned. Steps already gone are not found and not returned.
    """
    wanted = set(names)
    out = _run(runner, squeue_steps_command(job_id), timeout)
    if out is None or not wanted:
        return []
    ids = [step for step, name in parse_steps(out, job_id) if name in wanted]
    if not ids:
        return []
    cmd = ["scancel", *([f"--signal={signal}"] if signal else []), *ids]
    # scancel 22.05 prints "Kill job error on job step id J: No error" for --signal on a step and exits 0
    if _run(runner, cmd, timeout) is None:
        return []
    _log.info("ended steps %s (%s) of job %s", " ".join(ids), ", ".join(sorted(wanted)), job_id)
    return ids
