"""Where the nodes of a run come from, in QCG-PilotJob's order: ``--slurm-resources-file``,
then ``--nodes``, then a Slurm allocation (``--resources slurm``, or ``auto`` inside one),
then this machine's cores."""

from __future__ import annotations

from typing import List, NamedTuple, Optional

from ..errors import ConfigError
from ..resources import Node, local_nodes, parse_nodes_spec, read_resources_file
from ..slurm.allocation import SlurmAllocation, in_slurm_allocation, job_end_time
from .config import ServiceConfig

__all__ = ["RunNodes", "find_nodes"]


class RunNodes(NamedTuple):
    nodes: List[Node]
    slurm: Optional[SlurmAllocation]  # None: tasks start as local processes
    end_time: Optional[float]         # the allocation's end, where known


def find_nodes(cfg: ServiceConfig) -> RunNodes:
    begin, end = cfg.slurm_limit_nodes_range_begin, cfg.slurm_limit_nodes_range_end
    if cfg.slurm_resources_file is not None:  # first, as in QCG-PilotJob (its partitions get one)
        kind, nodes = read_resources_file(cfg.slurm_resources_file)
        if kind == "SLURM" and in_slurm_allocation():
            slurm = SlurmAllocation.from_env(begin=begin, end=end)
            return RunNodes(nodes, slurm, job_end_time(slurm.job_id))
        return RunNodes(nodes, None, None)
    if cfg.nodes is not None:
        if begin is not None or end is not None:
            raise ConfigError("--slurm-limit-nodes-range-begin/end: only for Slurm resources, not with --nodes")
        return RunNodes(parse_nodes_spec(cfg.nodes), None, None)
    if cfg.resources == "slurm" or (cfg.resources == "auto" and in_slurm_allocation()):
        if not in_slurm_allocation():
            raise ConfigError("--resources slurm: not inside a Slurm allocation "
                              "(SLURM_JOB_ID and SLURM_JOB_NODELIST are not set)")
        slurm = SlurmAllocation.from_env(begin=begin, end=end)
        return RunNodes(slurm.nodes(), slurm, job_end_time(slurm.job_id))
    if begin is not None or end is not None:
        raise ConfigError("--slurm-limit-nodes-range-begin/end: only inside a Slurm allocation")
    return RunNodes(local_nodes(), None, None)
