"""Executors: how a partition starts its tasks and learns of their exit.

:class:`Executor` is what every executor shares: the running tasks, wall-time timers,
stopping (SIGTERM, then SIGKILL after ``kill_grace`` seconds), the exit bookkeeping and
waiting until nothing runs. Subclasses decide how a task starts and how a signal reaches
it:

- :class:`LocalExecutor` starts task processes on this host. Each task runs in its own
  session (so a cancel or a wall-time kill reaches every process the task started).
  Exits are delivered by a pidfd registered with the event loop (Linux >= 5.3); elsewhere
  (or with ``QCG_PM_EXIT_WATCH=sigchld`` in the service's environment) by SIGCHLD. Either
  way an exit is handled in a later loop turn than the start, so a task's EXECUTING event
  always goes out before its end.
- :class:`SrunExecutor` (``--disable-nl``) is a local executor whose processes are
  ``srun`` clients: each task is its own srun step on its first node.
- :class:`~.agents.AgentExecutor` sends tasks to node agents (Slurm).
- :class:`DryRunExecutor` starts nothing (``--dry-run``).

What a task leaves behind is ended by :class:`~.leftovers.Leftovers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from ..resources import Allocation
from ..slurm.srun import step_command
from .environment import TASK_MARK, LaunchPlan, build_plan
from .leftovers import Leftovers
from .scheduler import TaskSpec
from .spawn import Spawner, spawner

__all__ = ["DryRunExecutor", "Executor", "Leftovers", "LocalExecutor", "RunningTask", "SrunExecutor", "TaskKey"]

_log = logging.getLogger(__name__)

TaskKey = Tuple[str, Optional[int]]

#: Why a task was stopped; decides its final state and message.
STOP_CANCEL = "cancel"
STOP_WALLTIME = "walltime"
STOP_SHUTDOWN = "shutdown"

@dataclass
class RunningTask:
    spec: TaskSpec
    iteration: Optional[int]
    allocation: Allocation
    plan: LaunchPlan
    proc: Optional[subprocess.Popen] = None
    pid: int = 0
    started: float = 0.0
    pidfd: int = -1
    stop_reason: Optional[str] = None
    timers: List[asyncio.TimerHandle] = field(default_factory=list)
    error: Optional[str] = None  # set when it could not be started after all (remote start)

    @property
    def key(self) -> TaskKey:
        return (self.spec.name, self.iteration)


ExitCallback = Callable[[RunningTask, int, float], None]


class Executor:
    """What every executor shares; subclasses define :meth:`start` and :meth:`_signal`."""

    #: how tasks start (what :func:`~.environment.build_plan` prepares them for):
    #: ``local`` processes, ``agents``, ``srun``
    launch = "local"

    def __init__(self, loop: asyncio.AbstractEventLoop, *, root_wd: str, aux_dir: str, env_schema: str,
                 zmq_address: Optional[str], kill_grace: float, on_exit: ExitCallback,
                 base_env: Optional[Mapping[str, str]] = None, keep_children: bool = False) -> None:
        self.loop = loop
        self.root_wd = root_wd
        self.hostfile_dir = os.path.join(aux_dir, "hostfiles")
        self.env_schema = env_schema
        self.zmq_address = zmq_address
        self.kill_grace = kill_grace
        self.on_exit = on_exit
        self.base_env: Dict[str, str] = dict(os.environ if base_env is None else base_env)
        self.running: Dict[TaskKey, RunningTask] = {}
        self._made_dirs: Set[str] = set()
        self._steps = 0
        self._run = uuid.uuid4().hex[:12]  # this executor's tasks are marked <run>:<step>
        self.keep_children = keep_children
        self.leftovers: Optional[Leftovers] = None if keep_children else Leftovers(loop, kill_grace)
        self._idle = asyncio.Event()
        self._idle.set()

    # --- starting --------------------------------------------------------------------------
    def start(self, spec: TaskSpec, iteration: Optional[int], alloc: Allocation) -> Optional[str]:
        """Start a task. Returns an error message if it could not be started."""
        raise NotImplementedError

    def _ensure_dir(self, path: str) -> None:
        if path not in self._made_dirs:
            os.makedirs(path, exist_ok=True)
            self._made_dirs.add(path)

    def _plan(self, spec: TaskSpec, iteration: Optional[int], alloc: Allocation) -> Union[LaunchPlan, str]:
        """The task's launch plan, or why it cannot have one."""
        self._steps += 1
        try:
            return build_plan(spec.desc, iteration, alloc, root_wd=self.root_wd, base_env=self.base_env,
                              step_id=str(self._steps), env_schema=self.env_schema,
                              zmq_address=self.zmq_address, hostfile_dir=self.hostfile_dir, launch=self.launch,
                              task_mark=f"{self._run}:{self._steps}")
        except Exception as exc:  # a bug in a description we accepted: fail the task, not the service
            _log.exception("cannot prepare task %s", spec.name)
            return f"cannot prepare the task: {exc}"

    @staticmethod
    def _venv_problem(plan: LaunchPlan) -> Optional[str]:
        if plan.venv is not None and not os.path.isfile(os.path.join(plan.venv, "bin", "activate")):
            return f"virtual environment {plan.venv!r} not found (no bin/activate)"
        return None

    def _write_hostfile(self, plan: LaunchPlan, alloc: Allocation) -> None:
        if plan.hostfile:
            self._ensure_dir(self.hostfile_dir)
            with open(plan.hostfile, "w") as fh:
                fh.write("".join(f"{p.name}\n" * len(p.cores) for p in alloc.parts))

    def _track(self, task: RunningTask) -> None:
        """``task`` runs: keep it, and stop it when its wall time is up."""
        self.running[task.key] = task
        self._idle.clear()
        wt = task.spec.desc.resources.wt
        if wt is not None:
            task.timers.append(self.loop.call_later(wt, self.stop, task.key, STOP_WALLTIME))

    def _finished(self, task: RunningTask, code: int, when: float) -> None:
        """``task`` ended with ``code``: forget it and tell ``on_exit``."""
        for timer in task.timers:
            timer.cancel()
        if task.plan.hostfile:
            with contextlib.suppress(OSError):
                os.unlink(task.plan.hostfile)
        self.running.pop(task.key, None)
        if not self.running:
            self._idle.set()
        self.on_exit(task, code, when)

    # --- stopping ----------------------------------------------------------------------
    def _signal(self, task: RunningTask, sig: int) -> None:
        """Send ``sig`` to every process of a running ``task``."""
        raise NotImplementedError

    def stop(self, key: TaskKey, reason: str) -> bool:
        """SIGTERM now, SIGKILL after the grace period. False if not running."""
        task = self.running.get(key)
        if task is None:
            return False
        if task.stop_reason is None:
            task.stop_reason = reason
        self._signal(task, signal.SIGTERM)
        task.timers.append(self.loop.call_later(self.kill_grace, self._signal, task, signal.SIGKILL))
        return True

    def stop_all(self, reason: str) -> None:
        for key in list(self.running):
            self.stop(key, reason)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def close(self) -> None:
        """Release what the executor holds (nothing runs any more)."""


class LocalExecutor(Executor):
    """Runs tasks as local processes of this host."""

    _module_ok: Optional[bool] = None  # is the ``module`` command there? (asked once)
    # set False on the first pidfd_open that is refused
    _use_pidfd = hasattr(os, "pidfd_open") and os.environ.get("QCG_PM_EXIT_WATCH", "").lower() != "sigchld"
    _sigchld = False  # a SIGCHLD handler is installed
    _spawner: Optional[Spawner] = None  # made at the first start (posix_spawn; None: Popen)
    _spawner_made = False

    # --- starting --------------------------------------------------------------------------
    def _module_available(self) -> bool:
        if self._module_ok is None:
            try:
                res = subprocess.run(["bash", "-l", "-c", "type module"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, timeout=60, check=False)
                self._module_ok = res.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                self._module_ok = False
        return self._module_ok

    def start(self, spec: TaskSpec, iteration: Optional[int], alloc: Allocation) -> Optional[str]:
        plan = self._plan(spec, iteration, alloc)
        if isinstance(plan, str):
            return plan
        if spec.desc.execution.modules and not self._module_available():
            return ("cannot load modules: the 'module' command is not available in a login shell "
                    "on this host (no environment-modules or Lmod)")
        problem = self._venv_problem(plan)
        if problem is not None:
            return problem
        try:
            self._ensure_dir(plan.wd)
        except OSError as exc:
            return f"cannot create the working directory {plan.wd!r}: {exc.strerror}"
        try:
            self._write_hostfile(plan, alloc)
        except OSError as exc:
            return f"cannot write the hostfile {plan.hostfile!r}: {exc.strerror or exc}"
        stdio = self._open_stdio(plan)
        if isinstance(stdio, str):
            return stdio
        started = time.time()  # before the spawn: the run time covers all of the process's life
        try:
            proc, pid = self._launch(self._command(plan, alloc), plan, stdio)
        except (OSError, ValueError) as exc:  # (ValueError: a NUL that got past the checks)
            return f"cannot start {plan.argv[0]!r}: {getattr(exc, 'strerror', None) or exc}"
        finally:
            for fd in set(stdio) - {subprocess.DEVNULL}:
                os.close(fd)
        task = RunningTask(spec, iteration, alloc, plan, proc, pid, started)
        if self.leftovers is not None:
            self.leftovers.started(plan.env.get(TASK_MARK))
        self._track(task)
        self._watch(task)
        return None

    def _launch(self, argv: List[str], plan: LaunchPlan, stdio: Tuple[int, int, int]
                ) -> Tuple[Optional[subprocess.Popen], int]:
        """Start the task's process: with posix_spawn (:mod:`.spawn`) where it can, else Popen."""
        if not self._spawner_made:
            self._spawner_made = True
            self._spawner = spawner()
        if self._spawner is not None and Spawner.usable(stdio):
            return None, self._spawner.spawn(argv, plan.wd, plan.env, stdio)
        proc = subprocess.Popen(argv, cwd=plan.wd, env=plan.env, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                                start_new_session=True, close_fds=True)
        return proc, proc.pid

    @staticmethod
    def _open_stdio(plan: LaunchPlan) -> Union[Tuple[int, int, int], str]:
        """File descriptors for the task's stdin, stdout and stderr, or why one cannot be opened."""
        fds: List[int] = []
        write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        wanted = [(plan.stdin, "stdin", os.O_RDONLY | os.O_CLOEXEC), (plan.stdout, "stdout", write),
                  (plan.stderr if plan.stderr != plan.stdout else None, "stderr", write)]
        for path, what, flags in wanted:
            if not path:
                fds.append(subprocess.DEVNULL)
                continue
            try:
                fds.append(os.open(path, flags, 0o644))
            except OSError as exc:
                for fd in set(fds) - {subprocess.DEVNULL}:
                    os.close(fd)
                return f"cannot open {what} file {path!r}: {exc.strerror}"
        if plan.stderr and plan.stderr == plan.stdout:
            fds[2] = fds[1]
        return fds[0], fds[1], fds[2]

    def _command(self, plan: LaunchPlan, alloc: Allocation) -> List[str]:
        return plan.argv

    # --- exit detection ----------------------------------------------------------------
    def _watch(self, task: RunningTask) -> None:
        if self._use_pidfd:
            try:
                task.pidfd = os.pidfd_open(task.pid)
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.EPERM):
                    raise
                self._use_pidfd = False
            else:
                self.loop.add_reader(task.pidfd, self._reap, task)
                return
        if not self._sigchld:
            self.loop.add_signal_handler(signal.SIGCHLD, self._reap_all)
            self._sigchld = True
            # tasks that exited before there was a handler sent their SIGCHLD to nobody; not
            # reaped here and now: the caller has not reported this task's start yet
            self.loop.call_soon(self._reap_all)

    def _reap_all(self) -> None:
        for task in list(self.running.values()):
            self._reap(task)

    def _reap(self, task: RunningTask) -> None:
        if self.running.get(task.key) is not task:
            return  # reaped already (a SIGCHLD and a catch-up pass both saw it)
        try:
            pid, status = os.waitpid(task.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = task.pid, 255 << 8
        if pid == 0:
            return
        if task.pidfd >= 0:
            self.loop.remove_reader(task.pidfd)
            os.close(task.pidfd)
            task.pidfd = -1
        if self.leftovers is not None:  # the end is reported at once; the leftovers end meanwhile
            self.leftovers.ended(task.pid, task.plan.env.get(TASK_MARK))
        code = os.waitstatus_to_exitcode(status)
        if task.proc is not None:
            task.proc.returncode = code
            task.proc = None
        self._finished(task, code, time.time())

    # --- stopping ----------------------------------------------------------------------
    def _signal(self, task: RunningTask, sig: int) -> None:
        if task.key not in self.running:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(task.pid, sig)

    def close(self) -> None:
        if self.leftovers is not None:
            self.leftovers.close()
        if self._spawner is not None:
            self._spawner.close()
            self._spawner = None
        if self._sigchld:
            self.loop.remove_signal_handler(signal.SIGCHLD)
            self._sigchld = False


class DryRunExecutor(Executor):
    """Starts nothing: every task "exits" with code 0 on the next loop iteration. For
    measuring the scheduling and routing machinery alone (``--dry-run``)."""

    _dry_plan: Optional[LaunchPlan] = None
    _ending: Optional[List[RunningTask]] = None

    def start(self, spec: TaskSpec, iteration: Optional[int], alloc: Allocation) -> Optional[str]:
        if self._dry_plan is None:  # (one plan for all: nothing reads or changes it)
            self._dry_plan = LaunchPlan(argv=[], wd=self.root_wd, env={}, stdin=None, stdout=None, stderr=None,
                                        hostfile=None)
        task = RunningTask(spec, iteration, alloc, self._dry_plan, None, 0, time.time())
        self.running[task.key] = task
        if self._ending is None:  # the tasks started in this loop turn end together in the next
            self._ending = []
            self._idle.clear()
            self.loop.call_soon(self._finish)
        self._ending.append(task)
        return None

    def _finish(self) -> None:
        ending, self._ending = self._ending or [], None
        now = time.time()
        for task in ending:
            if task.key in self.running:
                self._finished(task, 0, now)

    def _signal(self, task: RunningTask, sig: int) -> None:
        """Nothing to signal."""

    def stop(self, key: TaskKey, reason: str) -> bool:
        task = self.running.get(key)
        if task is None:
            return False
        task.stop_reason = task.stop_reason or reason
        return True


class SrunExecutor(LocalExecutor):
    """``--disable-nl``: every task is its own ``srun`` step on its first node (models that
    start ranks on all nodes wrap themselves). The srun client is a local process, started,
    watched and signalled like any other."""

    launch = "srun"

    #: the task's variables of ``--envschema slurm``: srun replaces most by the step's own
    #: (SLURM_NTASKS_PER_NODE is also an srun option: a per-node list such as ``2,1`` fails it)
    _TASK_VARS = ("SLURM_NNODES", "SLURM_NODELIST", "SLURM_NPROCS", "SLURM_NTASKS", "SLURM_JOB_NODELIST",
                  "SLURM_JOB_NUM_NODES", "SLURM_STEP_NODELIST", "SLURM_STEP_NUM_NODES", "SLURM_STEP_NUM_TASKS",
                  "SLURM_NTASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")

    def _command(self, plan: LaunchPlan, alloc: Allocation) -> List[str]:
        if plan.argv and plan.argv[0] == "srun":
            return plan.argv
        own: List[str] = []
        if self.env_schema == "slurm":  # set again inside the step, after srun set its own
            own = [f"{k}={plan.env[k]}" for k in self._TASK_VARS if k in plan.env]
            plan.env.pop("SLURM_NTASKS_PER_NODE", None)
        return step_command(alloc.parts[0].name, [*(["env", *own] if own else []), *plan.argv],
                            kill_on_bad_exit=True, wd=plan.wd)
