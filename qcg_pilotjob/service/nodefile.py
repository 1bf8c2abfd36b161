"""``nodes.json`` in the aux dir: the nodes of a run, their cores and GPUs and (governor
mode) the partition that has each. Written once at start, so that ``qcg-pm-report`` can
tell the cores a run had and the partition of each task while the run still goes.

    {"nodes": [{"name": "n0", "cores": ["0", "1"], "gpus": [], "partition": "partition-0"}]}
"""

from __future__ import annotations

import json
import logging
import os
from typing import List, Optional, Sequence, Tuple

from ..auxdir import write_private_file
from ..resources import Node

__all__ = ["NODES_FILE", "partition_groups", "write_nodes"]

NODES_FILE = "nodes.json"

_log = logging.getLogger("qcg_pilotjob.service")


def partition_groups(nodes: Sequence[Node], size: int) -> List[Tuple[str, Sequence[Node]]]:
    """The name and the nodes of each partition a governor starts: ``size`` consecutive
    nodes a partition, named ``partition-<i>``."""
    size = max(1, size)
    return [(f"partition-{i // size}", nodes[i:i + size]) for i in range(0, len(nodes), size)]


def write_nodes(aux_dir: str, nodes: Sequence[Node], partition_size: Optional[int]) -> None:
    """``partition_size`` None: one partition in the service (no partition names)."""
    owner = {}
    if partition_size is not None:
        for name, group in partition_groups(nodes, partition_size):
            owner.update({node.name: name for node in group})
    data = {"nodes": [{"name": n.name, "cores": list(n.core_ids), "gpus": list(n.gpu_ids),
                       "partition": owner.get(n.name)} for n in nodes]}
    path = os.path.join(aux_dir, NODES_FILE)
    try:
        write_private_file(path, (json.dumps(data) + "\n").encode())
    except OSError as exc:  # only the reports lose by it
        _log.warning("cannot write %s: %s", path, exc)
