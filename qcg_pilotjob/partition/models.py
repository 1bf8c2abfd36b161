"""Execution models inside a Slurm allocation: how a multi-core or multi-node task starts.

``default`` and ``threads`` run the command as it is on the first node of the allocation
(the agent binds it to the allocated cores; ``threads`` also sets ``OMP_NUM_THREADS``).
``srunmpi`` starts one rank per allocated core with ``srun`` on exactly the allocated
nodes (``--distribution=arbitrary`` with the task's hostfile); ``openmpi`` and ``intelmpi``
run ``mpirun`` with that hostfile. ``model_opts`` adds ``srun_args``, ``mpirun`` (the
launcher's path) and ``mpirun_args``.

>>> from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
>>> alloc = ResourcePool(parse_nodes_spec("n1:2,n2:2")).allocate_cores(4, 4)
>>> wrap_model("srunmpi", ["hostname"], alloc, "/h", {})[:5]
['srun', '--overlap', '-n', '4', '--distribution=arbitrary']
"""

from __future__ import annotations

from typing import Any, Dict, List

from ..resources import Allocation

__all__ = ["MPI_MODELS", "wrap_model"]

MPI_MODELS = ("srunmpi", "openmpi", "intelmpi")


def _strs(value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def wrap_model(model: str, argv: List[str], alloc: Allocation, hostfile: str, opts: Dict[str, Any]) -> List[str]:
    """The command line that starts ``argv`` with ``model`` on ``alloc``."""
    ncores = str(alloc.cores)
    if model == "srunmpi":
        # the nodes come from SLURM_HOSTFILE (one line per rank), which -w would override
        return ["srun", "--overlap", "-n", ncores, "--distribution=arbitrary", "--cpu-bind=none",
                "--mem-per-cpu=0", "--kill-on-bad-exit=1", *_strs(opts.get("srun_args")), *argv]
    if model == "openmpi":
        return [str(opts.get("mpirun") or "mpirun"), "-n", ncores, "--hostfile", hostfile, "--oversubscribe",
                *_strs(opts.get("mpirun_args")), *argv]
    if model == "intelmpi":
        return [str(opts.get("mpirun") or "mpirun"), "-n", ncores, "-machinefile", hostfile,
                *_strs(opts.get("mpirun_args")), *argv]
    return argv
