"""Nodes, cores and GPUs of a partition, and allocations of them.

The pool allocates first-fit over the nodes in order, as QCG-PilotJob does, so a job of
8 cores on nodes of 6 and 4 free cores takes 6 + 2. Per allocation the cost is
proportional to the nodes it touches, not to the size of the pool.

>>> pool = ResourcePool(parse_nodes_spec("n1:6,n2:4"))
>>> str(pool.allocate_cores(8, 8))
'n1[0:1:2:3:4:5],n2[0:1]'
>>> pool.free_cores
2
"""

from __future__ import annotations

import bisect
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from .errors import ResourceError

__all__ = [
    "Allocation",
    "Node",
    "NodeAllocation",
    "ResourcePool",
    "local_nodes",
    "parse_nodes_spec",
]


@dataclass
class Node:
    """One node: its name, core ids and GPU ids, and which of them are free."""

    name: str
    core_ids: List[str]
    gpu_ids: List[str] = field(default_factory=list)
    free: List[int] = field(default_factory=list)       # positions into core_ids, sorted
    free_gpus: List[int] = field(default_factory=list)  # positions into gpu_ids, sorted
    offline: bool = False                                  # taken out of use (its agent is lost)

    def __post_init__(self) -> None:
        if not self.free:
            self.free = list(range(len(self.core_ids)))
        if not self.free_gpus:
            self.free_gpus = list(range(len(self.gpu_ids)))

    @property
    def total(self) -> int:
        return len(self.core_ids)

    @property
    def used(self) -> int:
        return len(self.core_ids) - len(self.free)

    def fresh(self) -> Node:
        """An unused copy: the same name, cores and GPUs, all free (for another pool; a
        deep copy of 1,000 nodes of 128 cores took 0.5 s)."""
        return Node(self.name, list(self.core_ids), list(self.gpu_ids))

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "cores": list(self.core_ids), "gpus": list(self.gpu_ids)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Node:
        return cls(str(data["name"]), [str(c) for c in data["cores"]], [str(g) for g in data.get("gpus", [])])


@dataclass
class NodeAllocation:
    node: int            # index in the pool
    name: str
    cores: List[int]     # positions
    core_ids: List[str]
    gpus: List[int] = field(default_factory=list)
    gpu_ids: List[str] = field(default_factory=list)


@dataclass
class Allocation:
    """What one task holds; ``str()`` gives the QCG-PilotJob ``allocation`` text."""

    parts: List[NodeAllocation]

    @property
    def cores(self) -> int:
        return sum(len(p.cores) for p in self.parts)

    @property
    def nodes(self) -> int:
        return len(self.parts)

    @property
    def node_names(self) -> List[str]:
        return [p.name for p in self.parts]

    def __str__(self) -> str:
        return ",".join(f"{p.name}[{':'.join(p.core_ids)}]" for p in self.parts)


def parse_nodes_spec(spec: str) -> List[Node]:
    """Parse ``--nodes``: ``4``, ``n1:2``, ``4,2,2``, ``n1:4, n2:4`` (an optional third
    field gives GPUs: ``n1:4:2``).

    >>> [(n.name, n.total) for n in parse_nodes_spec("4,2")]
    [('n0', 4), ('n1', 2)]
    """
    nodes: List[Node] = []
    names: Set[str] = set()
    if not isinstance(spec, str) or not spec.strip():
        raise ResourceError("--nodes: empty node specification")
    for i, item in enumerate(spec.split(",")):
        item = item.strip()
        if not item:
            raise ResourceError(f"--nodes: empty element at position {i + 1} in {spec!r}")
        fields = item.split(":")
        if len(fields) == 1:
            name, cores_s, gpus_s = f"n{i}", fields[0], "0"
        elif len(fields) == 2:
            name, cores_s, gpus_s = fields[0].strip() or f"n{i}", fields[1], "0"
        elif len(fields) == 3:
            name, cores_s, gpus_s = fields[0].strip() or f"n{i}", fields[1], fields[2]
        else:
            raise ResourceError(f"--nodes: cannot parse {item!r}; use [NAME:]CORES[:GPUS]")
        try:
            cores = int(cores_s)
            gpus = int(gpus_s)
        except ValueError:
            raise ResourceError(f"--nodes: cannot parse {item!r}; cores and GPUs must be integers") from None
        if cores < 1:
            raise ResourceError(f"--nodes: {item!r}: a node needs at least one core")
        if gpus < 0:
            raise ResourceError(f"--nodes: {item!r}: the number of GPUs must not be negative")
        if name in names:
            raise ResourceError(f"--nodes: node name {name!r} given twice")
        names.add(name)
        nodes.append(Node(name, [str(c) for c in range(cores)], [str(g) for g in range(gpus)]))
    return nodes


def local_nodes() -> List[Node]:
    """One node named after this host with every core this process may use."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = list(range(os.cpu_count() or 1))
    return [Node(socket.gethostname(), [str(c) for c in cpus])]


class ResourcePool:
    """Free and used cores/GPUs of a set of nodes, with first-fit allocation."""

    def __init__(self, nodes: Sequence[Node], system_core: bool = False) -> None:
        if not nodes:
            raise ResourceError("no nodes")
        self.nodes: List[Node] = list(nodes)
        if system_core:
            first = self.nodes[0]
            if first.total < 2:
                raise ResourceError(
                    f"--system-core: node {first.name} has only {first.total} core; nothing left for jobs"
                )
            # the first core of the first node is kept for the service itself
            first.core_ids = first.core_ids[1:]
            first.free = list(range(len(first.core_ids)))
        self.total_cores = sum(n.total for n in self.nodes)
        self.free_cores = self.total_cores
        self.total_gpus = sum(len(n.gpu_ids) for n in self.nodes)
        self._avail: List[int] = [i for i, n in enumerate(self.nodes) if n.free]  # nodes with a free core
        self._idle: List[int] = list(range(len(self.nodes)))                        # nodes fully free
        self.max_node_cores = max(n.total for n in self.nodes)
        self.max_node_gpus = max(len(n.gpu_ids) for n in self.nodes)

    # --- bookkeeping -------------------------------------------------------------------
    @property
    def total_nodes(self) -> int:
        return sum(1 for n in self.nodes if not n.offline)

    @property
    def used_cores(self) -> int:
        return self.total_cores - self.free_cores

    def node_usage(self) -> Dict[str, int]:
        """Cores in use per node (for the live view: computed when asked, not per task)."""
        return {n.name: len(n.core_ids) - len(n.free) for n in self.nodes}

    def _take(self, idx: int, ncores: int, ngpus: int) -> NodeAllocation:
        node = self.nodes[idx]
        was_idle = len(node.free) == node.total and len(node.free_gpus) == len(node.gpu_ids)
        cores, node.free = node.free[:ncores], node.free[ncores:]
        gpus, node.free_gpus = node.free_gpus[:ngpus], node.free_gpus[ngpus:]
        self.free_cores -= len(cores)
        if not node.free:
            self._remove(self._avail, idx)
        if was_idle and (cores or gpus):
            self._remove(self._idle, idx)
        return NodeAllocation(idx, node.name, cores, [node.core_ids[c] for c in cores],
                              gpus, [node.gpu_ids[g] for g in gpus])

    @staticmethod
    def _remove(lst: List[int], idx: int) -> None:
        pos = bisect.bisect_left(lst, idx)
        if pos < len(lst) and lst[pos] == idx:
            del lst[pos]

    @staticmethod
    def _insert(lst: List[int], idx: int) -> None:
        pos = bisect.bisect_left(lst, idx)
        if pos >= len(lst) or lst[pos] != idx:
            lst.insert(pos, idx)

    def release(self, alloc: Allocation) -> None:
        for part in alloc.parts:
            node = self.nodes[part.node]
            if node.offline:
                continue
            had_free = bool(node.free)
            if part.cores:
                node.free = sorted(node.free + part.cores)
                self.free_cores += len(part.cores)
            if part.gpus:
                node.free_gpus = sorted(node.free_gpus + part.gpus)
            if not had_free and node.free:
                self._insert(self._avail, part.node)
            if len(node.free) == node.total and len(node.free_gpus) == len(node.gpu_ids):
                self._insert(self._idle, part.node)

    # --- feasibility ------------------------------------------------------------------
    def never_fits(self, cores: Optional[Tuple[int, Optional[int]]],
                   nodes: Optional[Tuple[int, Optional[int]]], gpus: int) -> Optional[str]:
        """Why a request can never be satisfied by this pool, or ``None`` if it can.

        ``cores``/``nodes`` are (min, max) pairs; with ``nodes`` the cores are per node.
        """
        if nodes is None:
            assert cores is not None
            if cores[0] > self.total_cores:
                return f"requested {cores[0]} cores but the resources have {self.total_cores} in total"
            return None
        nmin = nodes[0]
        if nmin > self.total_nodes:
            return f"requested {nmin} nodes but the resources have {self.total_nodes}"
        cmin = cores[0] if cores is not None else 1
        fit = sum(1 for n in self.nodes if n.total >= cmin and len(n.gpu_ids) >= gpus)
        if fit < nmin:
            what = f"{cmin} cores" + (f" and {gpus} gpu" if gpus else "")
            gpu_note = f" (GPUs per node: {', '.join(str(len(n.gpu_ids)) for n in self.nodes[:8])}" \
                       f"{', ...' if len(self.nodes) > 8 else ''})" if gpus else ""
            return f"requested {nmin} node(s) with {what} each but only {fit} node(s) have that{gpu_note}"
        return None

    # --- allocation -------------------------------------------------------------------
    def allocate_cores(self, cmin: int, cmax: Optional[int]) -> Optional[Allocation]:
        """Between ``cmin`` and ``cmax`` cores (``None``: all free) on any nodes, first fit."""
        if self.free_cores < cmin:
            return None
        want = self.free_cores if cmax is None else min(cmax, self.free_cores)
        parts: List[NodeAllocation] = []
        for idx in list(self._avail):
            if want <= 0:
                break
            take = min(want, len(self.nodes[idx].free))
            parts.append(self._take(idx, take, 0))
            want -= take
        return Allocation(parts)

    def allocate_nodes(self, nmin: int, nmax: Optional[int], cmin: Optional[int], cmax: Optional[int],
                       gpus: int) -> Optional[Allocation]:
        """``nmin``..``nmax`` nodes; on each ``cmin``..``cmax`` cores (``cmin`` None: the
        whole node) and ``gpus`` GPUs."""
        chosen: List[int] = []
        limit = nmax if nmax is not None else len(self.nodes)
        if cmin is None:
            for idx in self._idle:
                if len(self.nodes[idx].gpu_ids) >= gpus:
                    chosen.append(idx)
                    if len(chosen) >= limit:
                        break
        else:
            for idx in self._avail:
                node = self.nodes[idx]
                if len(node.free) >= cmin and len(node.free_gpus) >= gpus:
                    chosen.append(idx)
                    if len(chosen) >= limit:
                        break
        if len(chosen) < nmin:
            return None
        parts = []
        for idx in chosen:
            node = self.nodes[idx]
            if cmin is None:
                ncores = node.total
                ngpus = gpus if gpus else len(node.gpu_ids)
            else:
                ncores = len(node.free) if cmax is None else min(cmax, len(node.free))
                ngpus = gpus
            parts.append(self._take(idx, ncores, ngpus))
        return Allocation(parts)

    def disable_node(self, name: str) -> None:
        """Take a node out of use (its agent is gone): its free cores stop counting, and
        cores released there later are not given out again."""
        for idx, node in enumerate(self.nodes):
            if node.name == name and not node.offline:
                node.offline = True
                self.free_cores -= len(node.free)
                self.total_cores -= node.total
                node.free = []
                node.free_gpus = []
                self._remove(self._avail, idx)
                self._remove(self._idle, idx)

    def usage(self) -> Dict[str, int]:
        return {
            "total_nodes": self.total_nodes,
            "total_cores": self.total_cores,
            "used_cores": self.used_cores,
            "free_cores": self.free_cores,
        }


def read_resources_file(path: str) -> Tuple[str, List[Node]]:
    """``--slurm-resources-file``: QCG-PilotJob's resources JSON (``Resources.to_dict``:
    ``{"type": "LOCAL"|"SLURM", "nodes": [{"name", "total_cores", "core_ids", "crs"}]}``,
    GPUs as a ``GPU`` entry of ``crs`` with their ``ids``). Returns the type and the nodes."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ResourceError(f"--slurm-resources-file: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
        raise ResourceError(f"--slurm-resources-file: {path} has no list of nodes")
    nodes: List[Node] = []
    for i, item in enumerate(data["nodes"]):
        where = f"--slurm-resources-file: {path}: nodes[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ResourceError(f"{where}: no name")
        cores = item.get("core_ids")
        if cores is None:
            total = item.get("total_cores")
            if not isinstance(total, int) or total < 1:
                raise ResourceError(f"{where}: neither core_ids nor a total_cores >= 1")
            cores = list(range(total))
        if not isinstance(cores, list) or not cores:
            raise ResourceError(f"{where}: core_ids is not a non-empty list")
        gpu = ((item.get("crs") or {}).get("GPU") or {}).get("data") or {}
        gpus = gpu.get("ids") or ([str(g) for g in range(gpu["total"])] if isinstance(gpu.get("total"), int) else [])
        nodes.append(Node(item["name"], [str(c) for c in cores], [str(g) for g in gpus]))
    if len({n.name for n in nodes}) != len(nodes):
        raise ResourceError(f"--slurm-resources-file: {path}: a node is listed twice")
    return str(data.get("type", "LOCAL")).upper(), nodes
