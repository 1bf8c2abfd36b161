"""What a task gets: its command line, working directory and environment.

Start-time variables (``it``, ``itval``, ``root_wd``, ``ncores``, ``nnodes``, ``nlist``)
are substituted in the ``execution`` element; the QCG execution environment and, with
``--envschema slurm``, the Slurm one are added. Every task is marked with
:data:`TASK_MARK`; :func:`scan_marked` finds the processes that carry a mark again.

>>> from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
>>> alloc = ResourcePool(parse_nodes_spec("a:2,b:2")).allocate_cores(3, 3)
>>> tasks_per_node(alloc)
'2,1'
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Set, Tuple

from ..jobdesc import Execution, JobDescription
from ..resources import Allocation
from ..variables import substitute
from .models import MPI_MODELS, wrap_model

__all__ = ["TASK_MARK", "LaunchPlan", "build_plan", "leftover_marks", "mark_in", "scan_marked", "start_variables",
           "tasks_per_node"]

#: the variable that marks every process of a task (``<run>:<step>``); children inherit it,
#: which is how the ones that left the task's process group are found again
TASK_MARK = "QCG_PM_TASK_MARK"


@dataclass
class LaunchPlan:
    argv: List[str]
    wd: str
    env: Dict[str, str]
    stdin: Optional[str]
    stdout: Optional[str]
    stderr: Optional[str]
    hostfile: Optional[str]
    venv: Optional[str] = None


def mark_in(environ: bytes, var: str = TASK_MARK) -> Optional[str]:
    """The value of ``var`` in a ``/proc/PID/environ`` image, or None.

    >>> mark_in(b"A=1\\0QCG_PM_TASK_MARK=r:3\\0B=2\\0")
    'r:3'
    >>> mark_in(b"XQCG_PM_TASK_MARK=r:3\\0") is None
    True
    """
    key = var.encode() + b"="
    if environ.startswith(key):
        start = len(key)
    else:
        at = environ.find(b"\0" + key)
        if at < 0:
            return None
        start = at + 1 + len(key)
    end = environ.find(b"\0", start)
    return environ[start:end if end >= 0 else len(environ)].decode(errors="replace")


def scan_marked(var: str = TASK_MARK) -> List[Tuple[int, str]]:
    """``(pid, mark)`` of every other process of this user whose environment holds ``var``."""
    uid, me = os.getuid(), os.getpid()
    found: List[Tuple[int, str]] = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/environ", "rb") as fh:
                mark = mark_in(fh.read(), var)
        except OSError:
            continue
        if mark is not None:
            found.append((int(name), mark))
    return found


def leftover_marks(found: List[Tuple[int, str]], runs: Set[str], running: Set[str]) -> List[Tuple[int, str]]:
    """Of the marked processes ``found``, those of a task of ``runs`` that runs no more.

    >>> leftover_marks([(1, "r:1"), (2, "r:2"), (3, "other:1"), (4, "r")], {"r"}, {"r:2"})
    [(1, 'r:1')]
    """
    return [(pid, mark) for pid, mark in found
            if mark not in running and ":" in mark and mark.rpartition(":")[0] in runs]



def tasks_per_node(alloc: Allocation) -> str:
    return ",".join(str(len(p.cores)) for p in alloc.parts)


def start_variables(desc: JobDescription, iteration: Optional[int], alloc: Allocation,
                    root_wd: str) -> Dict[str, str]:
    values = {
        "root_wd": root_wd,
        "ncores": str(alloc.cores),
        "nnodes": str(alloc.nodes),
        "nlist": ",".join(alloc.node_names),
    }
    if iteration is not None and desc.iteration is not None:
        values["it"] = str(iteration)
        values["itval"] = desc.iteration.value(iteration)
    return values


def _resolve(path: Optional[str], values: Mapping[str, str], base: str) -> Optional[str]:
    if path is None:
        return None
    path = os.path.expanduser(substitute(path, values))
    return path if os.path.isabs(path) else os.path.join(base, path)


def _user_env(ex: Execution, values: Mapping[str, str], base_env: Mapping[str, str]) -> Dict[str, str]:
    """The inherited environment with the job's own variables (substituted) over it."""
    env = dict(base_env)
    for key, val in ex.env.items():
        env[key] = substitute(val, values)
    return env


def _add_qcg_env(env: Dict[str, str], desc: JobDescription, iteration: Optional[int], alloc: Allocation, *,
                 step_id: str, zmq_address: Optional[str], nodelist: str, ncores: str, tpn: str) -> None:
    """Add the QCG execution environment (``QCG_PM_*``, and the GPUs given to the task)."""
    env.update({
        "QCG_PM_NNODES": str(alloc.nodes),
        "QCG_PM_NODELIST": nodelist,
        "QCG_PM_NPROCS": ncores,
        "QCG_PM_NTASKS": ncores,
        "QCG_PM_STEP_ID": step_id,
        "QCG_PM_TASKS_PER_NODE": tpn,
        "QCG_PM_CPU_SET": ",".join(c for p in alloc.parts for c in p.core_ids),
        "QCG_PM_JOB_NAME": desc.name,
    })
    if iteration is not None:
        env["QCG_PM_ITERATION"] = str(iteration)
    if zmq_address:
        env["QCG_PM_ZMQ_ADDRESS"] = zmq_address
    gpus = [g for p in alloc.parts for g in p.gpu_ids]
    if gpus:
        # per-node GPU ids: the first node's ids are what a process on it sees
        env["CUDA_VISIBLE_DEVICES"] = ",".join(alloc.parts[0].gpu_ids)
        env["QCG_PM_GPU_SET"] = ";".join(f"{p.name}:{','.join(p.gpu_ids)}" for p in alloc.parts)


#: bytes of a job name kept in its hostfile's name (a file name holds at most 255 bytes)
_HOSTFILE_NAME_BYTES = 160


def _hostfile_path(hostfile_dir: str, name: str, iteration: Optional[int]) -> str:
    """``<name>[.<iteration>].hostfile``; a long name is cut and made unique by its hash.

    >>> _hostfile_path("/h", "a/b", 3)
    '/h/a_b.3.hostfile'
    >>> len(os.path.basename(_hostfile_path("/h", "é" * 5000, None)).encode())
    186
    """
    suffix = f".{iteration}" if iteration is not None else ""
    base = name.replace("/", "_")
    if len(base.encode("utf-8", "surrogatepass")) > _HOSTFILE_NAME_BYTES:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        base = base.encode("utf-8", "surrogatepass")[:_HOSTFILE_NAME_BYTES].decode("utf-8", "ignore") + "-" + digest
    return os.path.join(hostfile_dir, f"{base}{suffix}.hostfile")


def _add_slurm_env(env: Dict[str, str], nnodes: int, *, nodelist: str, ncores: str, tpn: str,
                   hostfile: Optional[str]) -> None:
    """Add the Slurm execution environment (``--envschema slurm``)."""
    env.update({
        "SLURM_NNODES": str(nnodes),
        "SLURM_NODELIST": nodelist,
        "SLURM_NPROCS": ncores,
        "SLURM_NTASKS": ncores,
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_JOB_NUM_NODES": str(nnodes),
        "SLURM_STEP_NODELIST": nodelist,
        "SLURM_STEP_NUM_NODES": str(nnodes),
        "SLURM_STEP_NUM_TASKS": ncores,
        "SLURM_NTASKS_PER_NODE": tpn,
        "SLURM_STEP_TASKS_PER_NODE": tpn,
        "SLURM_TASKS_PER_NODE": tpn,
        "SLURM_JOB_CPUS_PER_NODE": tpn,  # (a comma list is valid Slurm syntax: "2,2,1" as "2(x2),1")
        "SLURM_OVERLAP": "1",            # a task's own srun steps may share the cores of running steps
    })
    if hostfile:
        env["SLURM_HOSTFILE"] = hostfile


def _add_threads_env(env: Dict[str, str], ncores: str, launch: str) -> None:
    """OpenMP settings of the ``threads`` model: one thread per allocated core."""
    env["OMP_NUM_THREADS"] = ncores
    if launch == "agents":  # the agent binds the task to its cores: keep threads on them
        env.setdefault("OMP_PROC_BIND", "true")
        env.setdefault("OMP_PLACES", "cores")


def _prelude(ex: Execution, values: Mapping[str, str], root_wd: str) -> Tuple[List[str], Optional[str]]:
    """The shell commands run before the task (``module load``, venv activation) and
    the resolved venv directory (``None`` without one)."""
    prelude: List[str] = []
    venv: Optional[str] = None
    if ex.modules:
        prelude.append("module load " + " ".join(shlex.quote(substitute(m, values)) for m in ex.modules))
    if ex.venv:
        venv = _resolve(ex.venv, values, root_wd) or ""
        prelude.append(f"source {shlex.quote(os.path.join(venv, 'bin', 'activate'))}")
    return prelude, venv


def _command_line(ex: Execution, values: Mapping[str, str], root_wd: str) -> Tuple[List[str], Optional[str]]:
    """The task's own command line (before any execution-model wrapper) and its venv:
    the executable with its arguments or the script, behind a shell prelude when the
    job loads modules or a venv."""
    if ex.script is not None:
        body = substitute(ex.script, values)
        command = None
    else:
        assert ex.exec is not None
        command = [substitute(ex.exec, values)] + [substitute(a, values) for a in ex.args]
        body = None
    if not (ex.modules or ex.venv):
        if body is not None:
            return ["bash", "-c", body], None
        assert command is not None
        return command, None
    prelude, venv = _prelude(ex, values, root_wd)
    if body is not None:
        return ["bash", "-l", "-c", " && ".join(prelude) + " || exit $?\n" + body], venv
    assert command is not None
    return ["bash", "-l", "-c", " && ".join(prelude) + ' && exec "$@"', "bash", *command], venv


def _wrap_mpi(ex: Execution, argv: List[str], alloc: Allocation, env: Dict[str, str], hostfile: str,
              base_env: Mapping[str, str]) -> List[str]:
    """Start ``argv`` with the job's MPI model; ``env`` is set up for srun."""
    env["SLURM_HOSTFILE"] = hostfile
    # srun reads these as options; the per-node comma list of the QCG schema is not its format
    for var in ("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE"):
        env.pop(var, None)
    # and this one describes the whole allocation to srun: the real one, not the task's share
    if "SLURM_JOB_CPUS_PER_NODE" in base_env:
        env["SLURM_JOB_CPUS_PER_NODE"] = base_env["SLURM_JOB_CPUS_PER_NODE"]
    else:
        env.pop("SLURM_JOB_CPUS_PER_NODE", None)
    return wrap_model(ex.model, argv, alloc, hostfile, ex.model_opts)


def build_plan(desc: JobDescription, iteration: Optional[int], alloc: Allocation, *, root_wd: str,
               base_env: Mapping[str, str], step_id: str, env_schema: str,
               zmq_address: Optional[str], hostfile_dir: str, launch: str = "local",
               task_mark: Optional[str] = None) -> LaunchPlan:
    """Everything needed to start one task, with variables substituted. With ``launch``
    other than ``local`` (inside Slurm) the execution model wraps the command; ``task_mark``
    becomes the task's :data:`TASK_MARK`."""
    ex: Execution = desc.execution
    mpi = launch != "local" and ex.model in MPI_MODELS
    values = start_variables(desc, iteration, alloc, root_wd)
    wd = _resolve(ex.wd, values, root_wd) or root_wd
    env = _user_env(ex, values, base_env)
    nodelist = ",".join(alloc.node_names)
    tpn = tasks_per_node(alloc)
    ncores = str(alloc.cores)
    _add_qcg_env(env, desc, iteration, alloc, step_id=step_id, zmq_address=zmq_address,
                 nodelist=nodelist, ncores=ncores, tpn=tpn)
    if task_mark:
        env[TASK_MARK] = task_mark
    hostfile = None
    if alloc.cores > 1 or mpi:
        hostfile = _hostfile_path(hostfile_dir, desc.name, iteration)
        env["QCG_PM_HOSTFILE"] = hostfile
    if env_schema == "slurm":
        _add_slurm_env(env, alloc.nodes, nodelist=nodelist, ncores=ncores, tpn=tpn, hostfile=hostfile)
    if ex.model == "threads":
        _add_threads_env(env, ncores, launch)
    argv, venv = _command_line(ex, values, root_wd)
    if mpi:
        assert hostfile is not None
        argv = _wrap_mpi(ex, argv, alloc, env, hostfile, base_env)
    return LaunchPlan(
        argv=argv,
        wd=wd,
        env=env,
        stdin=_resolve(ex.stdin, values, wd),
        stdout=_resolve(ex.stdout, values, wd),
        stderr=_resolve(ex.stderr, values, wd),
        hostfile=hostfile,
        venv=venv,
    )
