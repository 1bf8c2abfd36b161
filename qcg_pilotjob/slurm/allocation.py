"""What a Slurm allocation holds, read from the environment of the batch script.

Job-level variables are used (``SLURM_JOB_NODELIST``, ``SLURM_JOB_CPUS_PER_NODE``),
because inside a step the plain ones describe the step. Cores per node are the CPUs Slurm
gave the job on that node; the node agents later map them onto the CPUs they may really
use.

>>> env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "n[1-3]", "SLURM_JOB_CPUS_PER_NODE": "4(x2),2"}
>>> a = SlurmAllocation.from_env(env)
>>> [(n.name, n.total) for n in a.nodes()]
[('n1', 4), ('n2', 4), ('n3', 2)]
>>> [n.name for n in SlurmAllocation.from_env(env, begin=1, end=3).nodes()]
['n2', 'n3']
>>> parse_slurm_version("slurm-wlm 22.05.8")
(22, 5, 8)
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from ..errors import ResourceError
from ..resources import Node
from .hostlist import HostlistError, expand_counts, expand_hostlist

__all__ = ["SlurmAllocation", "in_slurm_allocation", "job_end_time", "parse_slurm_version", "slurm_version"]


def in_slurm_allocation(env: Optional[Mapping[str, str]] = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("SLURM_JOB_ID")) and bool(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST"))


@dataclass
class SlurmAllocation:
    job_id: str
    node_names: List[str]
    cpus: List[int]
    gpus: Dict[str, List[str]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, begin: Optional[int] = None,
                 end: Optional[int] = None) -> SlurmAllocation:
        env = os.environ if env is None else env
        job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or ""
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not job_id or not nodelist:
            raise ResourceError("not inside a Slurm allocation (SLURM_JOB_ID and SLURM_JOB_NODELIST are not set)")
        try:
            names = expand_hostlist(nodelist)
            counts_text = env.get("SLURM_JOB_CPUS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
            if not counts_text:
                raise ResourceError("SLURM_JOB_CPUS_PER_NODE is not set")
            cpus = expand_counts(counts_text)
        except HostlistError as exc:
            raise ResourceError(f"cannot read the Slurm allocation: {exc}") from None
        if len(cpus) != len(names):
            raise ResourceError(f"SLURM_JOB_CPUS_PER_NODE gives {len(cpus)} nodes but the node list has "
                                f"{len(names)}")
        total = len(names)
        b = 0 if begin is None else begin
        e = total if end is None else end
        if b >= total or e > total or b >= e:
            raise ResourceError(f"--slurm-limit-nodes-range-begin/end {b}..{e} is outside the allocation's "
                                f"{total} nodes (begin inclusive, end exclusive)")
        gpus: Dict[str, List[str]] = {}
        job_gpus = env.get("SLURM_JOB_GPUS") or env.get("SLURM_STEP_GPUS")
        if job_gpus and len(names) == 1:
            gpus[names[0]] = [g for g in job_gpus.split(",") if g]
        return cls(job_id, names[b:e], cpus[b:e], gpus)

    def nodes(self) -> List[Node]:
        return [Node(name, [str(c) for c in range(count)], list(self.gpus.get(name, [])))
                for name, count in zip(self.node_names, self.cpus)]


def parse_slurm_version(text: str) -> Tuple[int, ...]:
    """The version number from ``srun --version`` (``slurm 23.02.1``, ``slurm-wlm 22.05.8``)."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if m is None:
        raise ResourceError(f"cannot read a Slurm version from {text.strip()!r}")
    return tuple(int(g) for g in m.groups() if g is not None)


def slurm_version() -> Tuple[int, ...]:
    out = subprocess.run(["srun", "--version"], capture_output=True, text=True, timeout=30, check=False)
    return parse_slurm_version(out.stdout or out.stderr)


def job_end_time(job_id: str) -> Optional[float]:
    """When the allocation ends (epoch seconds), from ``scontrol show job``; None if unknown."""
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\bEndTime=(\S+)", out)
    if m is None or m.group(1) in ("Unknown", "None"):
        return None
    try:
        return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None
