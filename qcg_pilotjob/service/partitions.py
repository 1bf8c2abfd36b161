"""Partition managers a governor starts (``--slurm-partition-nodes``), and how to end
what a lost partition left running.

Outside Slurm each partition is a local process with a lifeline pipe (it never outlives
the governor); inside Slurm it is an ``srun`` step on its group's first node, whose node
agents are steps of their own. Either way the process's end wakes the governor, which
declares the partition lost at once.

When a partition is lost, its :data:`~..front.links.Stopper` ends what it can before its
tasks are reported FAILED: a local partition's process and its tasks' process groups; a
Slurm partition's step and its agents' steps (which kill their tasks).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from ..auxdir import make_private_dir, open_private_fd
from ..front.links import PartitionLink, Stopper
from ..processes import end_process_groups, kill_process
from ..protocol.messages import RegisterMsg
from ..resources import Node
from ..slurm.srun import agent_step_name, cancel_steps, step_command
from .config import ServiceConfig
from .nodefile import partition_groups

__all__ = ["PartitionProcess", "local_stopper", "spawn_partitions", "stopper_for"]

_log = logging.getLogger("qcg_pilotjob.service")

Procs = List[Tuple[int, float]]


def _ended(what: List[str]) -> str:
    return f"ended: {', '.join(what)}" if what else "nothing of it was left running"


def local_stopper(link: PartitionLink, procs: Procs) -> str:
    """A partition on this host: kill its process and its tasks' process groups."""
    what = []
    if link.pid > 0 and kill_process(link.pid, "--parent", created_before=link.joined):
        what.append(f"its manager process {link.pid}")
    ended = end_process_groups(procs)
    if ended:
        what.append(f"{ended} running task(s)")
    return _ended(what)


def slurm_stopper(job_id: str) -> Stopper:
    """A partition started with srun in allocation ``job_id``: cancel its step and its
    node agents' steps (an agent kills its tasks when its step ends)."""

    def stop(link: PartitionLink, procs: Procs) -> str:
        names = [link.name, *(agent_step_name(n.name) for n in link.pool.nodes)]
        steps = cancel_steps(job_id, names)
        return _ended([f"srun step(s) {', '.join(steps)}"] if steps else [])

    return stop


class PartitionProcess:
    """A partition manager process this governor started; its exit is noticed at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, args: List[str], aux: str,
                 on_exit: Callable[[PartitionProcess], None], lifeline: bool = True) -> None:
        self.name = name
        self.loop = loop
        self.on_exit = on_exit
        self.stderr_path = os.path.join(aux, "stderr.log")
        # a pipe whose end closes when this governor dies; srun cannot carry it to a node,
        # where partitions notice a dead governor by its missing heartbeats instead
        self.lifeline = -1
        fds: List[int] = []
        if lifeline:
            life_r, self.lifeline = os.pipe()
            os.set_inheritable(self.lifeline, False)
            args = [*args, "--lifeline-fd", str(life_r)]
            fds.append(life_r)
        with os.fdopen(open_private_fd(self.stderr_path, "w"), "wb") as err:
            try:
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=err, pass_fds=tuple(fds))
            finally:
                for fd in fds:
                    os.close(fd)
        self.exited = False
        self.returncode: Optional[int] = None
        self._done = asyncio.Event()
        self.pidfd = os.pidfd_open(self.proc.pid)
        loop.add_reader(self.pidfd, self._on_exit)

    def _on_exit(self) -> None:
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.returncode = self.proc.wait()
        self.exited = True
        self._done.set()
        if self.returncode != 0:
            _log.warning("partition manager %s exited with code %s", self.name, self.returncode)
        self.on_exit(self)

    def last_error(self) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as fh:
                lines = [ln.strip() for ln in fh if ln.strip()]
            return lines[-1] if lines else "(no output)"
        except OSError:
            return "(no output)"

    async def wait_exit(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except asyncio.TimeoutError:
            _log.warning("partition manager %s did not exit within %gs; killing it", self.name, timeout)
            self.kill()

    def kill(self) -> None:
        if self.lifeline >= 0:
            os.close(self.lifeline)
            self.lifeline = -1
        if not self.exited and self.proc.poll() is None:
            self.proc.kill()


def partition_args(cfg: ServiceConfig, name: str, group: Sequence[Node], address: str, wd: str, aux: str,
                   launcher: Optional[str]) -> List[str]:
    """The command line of one partition manager."""
    spec = ",".join(f"{n.name}:{n.total}" + (f":{len(n.gpu_ids)}" if n.gpu_ids else "") for n in group)
    args = [sys.executable, "-m", "qcg_pilotjob.service", "--parent", address, "--id", name,
            "--nodes", spec, "--wd", wd, "--aux-dir", aux, "--kill-grace", str(cfg.kill_grace),
            "--envschema", cfg.envschema, "--log", cfg.log, "--heartbeat", str(cfg.heartbeat)]
    if cfg.system_core:
        args.append("--system-core")
    if cfg.dry_run:
        args.append("--dry-run")
    if cfg.keep_task_children:
        args.append("--keep-task-children")
    args += ["--nl-init-timeout", str(cfg.nl_init_timeout)]
    if cfg.nl_ready_threshold is not None:
        args += ["--nl-ready-threshold", str(cfg.nl_ready_threshold)]
    if launcher is not None:
        args += ["--launcher", launcher]
    return args


def spawn_partitions(loop: asyncio.AbstractEventLoop, cfg: ServiceConfig, nodes: Sequence[Node], address: str,
                     wd: str, aux: str, on_exit: Callable[[PartitionProcess], None],
                     launcher: Optional[str] = None) -> List[PartitionProcess]:
    """One partition manager per group of ``--slurm-partition-nodes`` nodes: with srun on
    the group's first node when ``launcher`` is set (inside Slurm), else as local processes
    (the same command line splits virtual ``--nodes`` on a laptop)."""
    size = cfg.slurm_partition_nodes or 1
    children = []
    for name, group in partition_groups(nodes, size):
        part_aux = os.path.join(aux, name)
        make_private_dir(part_aux)
        args = partition_args(cfg, name, group, address, wd, part_aux, launcher)
        if launcher is not None:
            args = step_command(group[0].name, args, name=name, unbuffered=True)
        children.append(PartitionProcess(loop, name, args, part_aux, on_exit, lifeline=launcher is None))
    _log.info("started %d partition managers of up to %d nodes", len(children), size)
    return children


def stopper_for(spawned: Sequence[PartitionProcess], slurm_job: Optional[str]) -> Callable[[RegisterMsg],
                                                                                           Optional[Stopper]]:
    """How the hub ends a lost partition: by its srun steps if this governor started it in
    Slurm, by pids if it runs on this host, else not at all."""
    names = {child.name for child in spawned}
    host = socket.gethostname()

    def choose(msg: RegisterMsg) -> Optional[Stopper]:
        if slurm_job is not None and msg.id in names:
            return slurm_stopper(slurm_job)
        if msg.host == host:
            return local_stopper
        return None

    return choose
