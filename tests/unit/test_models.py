"""Execution models and the launch-dependent parts of a task's plan."""

from __future__ import annotations

from typing import Optional

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.partition.environment import build_plan
from qcg_pilotjob.partition.models import wrap_model
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec


def _alloc(spec: str = "n1:2,n2:2", cores: int = 4):
    alloc = ResourcePool(parse_nodes_spec(spec)).allocate_cores(cores, cores)
    assert alloc is not None
    return alloc


def _plan(execution: dict, launch: str, cores: int = 4, base_env: Optional[dict] = None):
    desc = JobDescription.from_dict({"name": "j", "execution": execution, "resources": {"numCores": cores}})
    return build_plan(desc, None, _alloc(cores=cores), root_wd="/w", base_env=base_env or {}, step_id="1",
                      env_schema="slurm", zmq_address=None, hostfile_dir="/h", launch=launch)


def test_srunmpi_uses_the_hostfile_not_a_node_list() -> None:
    argv = wrap_model("srunmpi", ["app", "-x"], _alloc(), "/h/j.hostfile", {"srun_args": ["--mpi=pmix"]})
    assert argv[:5] == ["srun", "--overlap", "-n", "4", "--distribution=arbitrary"]
    assert "-w" not in argv and argv[-3:] == ["--mpi=pmix", "app", "-x"]


def test_openmpi_and_intelmpi_command_lines() -> None:
    opts = {"mpirun": "/opt/ompi/bin/mpirun", "mpirun_args": "--bind-to core"}
    assert wrap_model("openmpi", ["app"], _alloc(), "/h/f", opts) == [
        "/opt/ompi/bin/mpirun", "-n", "4", "--hostfile", "/h/f", "--oversubscribe", "--bind-to", "core", "app"]
    assert wrap_model("intelmpi", ["app"], _alloc(), "/h/f", {}) == ["mpirun", "-n", "4", "-machinefile", "/h/f", "app"]
    assert wrap_model("default", ["app"], _alloc(), "/h/f", {}) == ["app"]


def test_mpi_model_wrapped_only_inside_slurm() -> None:
    local = _plan({"exec": "app", "model": "srunmpi"}, "local")
    assert local.argv == ["app"]
    slurm = _plan({"exec": "app", "model": "srunmpi"}, "agents")
    assert slurm.argv[0] == "srun" and slurm.argv[-1] == "app"
    assert slurm.env["SLURM_HOSTFILE"] == slurm.hostfile
    # srun reads this as its own option; the QCG per-node list "2,2" is not its format
    assert "SLURM_NTASKS_PER_NODE" not in slurm.env
    assert "SLURM_JOB_CPUS_PER_NODE" not in slurm.env and slurm.env["SLURM_OVERLAP"] == "1"


def test_slurm_schema_job_cpus_per_node_and_overlap() -> None:
    """QCG-PilotJob's slurm schema also sets SLURM_JOB_CPUS_PER_NODE (the task's cores per
    node) and SLURM_OVERLAP=1; an MPI model's srun sees the allocation's real value."""
    plain = _plan({"exec": "app"}, "agents", base_env={"SLURM_JOB_CPUS_PER_NODE": "8(x4)"})
    assert (plain.env["SLURM_JOB_CPUS_PER_NODE"], plain.env["SLURM_OVERLAP"]) == ("2,2", "1")
    mpi = _plan({"exec": "app", "model": "srunmpi"}, "agents", base_env={"SLURM_JOB_CPUS_PER_NODE": "8(x4)"})
    assert mpi.env["SLURM_JOB_CPUS_PER_NODE"] == "8(x4)"


def test_threads_model_binds_openmp_threads_under_agents() -> None:
    local = _plan({"exec": "omp", "model": "threads"}, "local", cores=2)
    assert local.env["OMP_NUM_THREADS"] == "2" and "OMP_PROC_BIND" not in local.env
    agents = _plan({"exec": "omp", "model": "threads"}, "agents", cores=2)
    assert (agents.env["OMP_NUM_THREADS"], agents.env["OMP_PROC_BIND"], agents.env["OMP_PLACES"]) == \
        ("2", "true", "cores")


def test_gpus_and_missing_nodes_from_agents(tmp_path) -> None:
    """prepare(): nodes whose agent did not come up are left out; GPUs come from each agent."""
    import asyncio

    from qcg_pilotjob.partition.manager import PartitionManager

    async def scenario() -> tuple:
        loop = asyncio.get_running_loop()
        pool = ResourcePool(parse_nodes_spec("n1:4,n2:4,n3:4"))
        pm = PartitionManager(loop, pool, lambda msg: None, launcher="agents", executor_options={
            "root_wd": str(tmp_path), "aux_dir": str(tmp_path), "env_schema": "slurm", "zmq_address": None,
            "kill_grace": 1.0})

        async def start_agents(timeout: float) -> list:
            return ["n3"]

        pm.executor.start_agents = start_agents  # type: ignore[attr-defined]
        pm.executor.agent_gpus = lambda node: ["0", "1"] if node == "n1" else []  # type: ignore[attr-defined]
        missing = await pm.prepare()
        return missing, [(n.name, n.gpu_ids) for n in pm.pool.nodes], pm.pool.total_cores, pm.scheduler.pool is pm.pool

    missing, nodes, cores, same = asyncio.run(scenario())
    assert missing == ["n3"]
    assert nodes == [("n1", ["0", "1"]), ("n2", [])]
    assert cores == 8 and same
