"""How tasks are started inside a real allocation: the srunmpi model, each task's environment and
CPU binding, and ending Slurm steps by name (helpers: :mod:`tests.slurm.slurm_helpers`)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from .slurm_helpers import (
    ENV_SCRIPT,
    FINISH,
    SERVICE,
    _check_task_env,
    _read_env,
    cores_of,
    run_batch,
    write_driver,
    write_json,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def test_srunmpi_ranks_on_two_nodes(cluster: None, tmp_path: Path) -> None:
    jobs = [{"name": "mpi", "execution": {"exec": "hostname", "model": "srunmpi", "stdout": "mpi.out",
                                          "stderr": "mpi.err"},
             "resources": {"numNodes": {"exact": 2}, "numCores": {"exact": 2}}},
            {"name": "mpi1", "execution": {"exec": "hostname", "model": "srunmpi", "stdout": "mpi1.out"},
             "resources": {"numCores": {"exact": 3}}}]
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": jobs}, FINISH])
    b = run_batch(tmp_path, f"{SERVICE} --file-path jobs.json --wd {tmp_path} --id mpi --report-format json\n",
                  "-N", "2", "--ntasks-per-node", "4")
    report = b.report("mpi")
    assert report["mpi"]["state"] == "SUCCEED", report["mpi"]
    alloc = cores_of(report["mpi"]["runtime"]["allocation"])
    assert sorted(alloc) == ["n1", "n2"] and all(len(c) == 2 for c in alloc.values()), alloc
    ranks = (tmp_path / "mpi.out").read_text().split()
    assert sorted(ranks) == ["n1", "n1", "n2", "n2"], (ranks, (tmp_path / "mpi.err").read_text())
    assert report["mpi1"]["state"] == "SUCCEED", report["mpi1"]
    one = cores_of(report["mpi1"]["runtime"]["allocation"])
    expected = sorted(n for n, cores in one.items() for _ in cores)
    assert sorted((tmp_path / "mpi1.out").read_text().split()) == expected


def test_task_environment(cluster: None, tmp_path: Path) -> None:
    """Per-task SLURM_* and QCG_PM_* variables describe the task's own allocation; the task
    is bound to real CPUs of its node (positions mapped onto what the agent may use)."""
    jobs = [{"name": "one", "execution": {"script": ENV_SCRIPT}, "resources": {"numCores": {"exact": 1}}},
            {"name": "three", "execution": {"script": ENV_SCRIPT}, "resources": {"numCores": {"exact": 3}}},
            {"name": "wide", "execution": {"script": ENV_SCRIPT},
             "resources": {"numNodes": {"exact": 2}, "numCores": {"exact": 2}}},
            {"name": "whole", "execution": {"script": ENV_SCRIPT}, "resources": {"numNodes": {"exact": 1}}}]
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": jobs}, FINISH])
    b = run_batch(tmp_path, f"{SERVICE} --file-path jobs.json --wd {tmp_path} --id env --report-format json\n",
                  "-N", "4", "--ntasks-per-node", "4")
    report = b.report("env")
    real = sorted(os.sched_getaffinity(0))  # the nodes share this machine's CPUs
    shapes = {"one": [1], "three": [3], "wide": [2, 2], "whole": [4]}
    for name, shape in shapes.items():
        assert report[name]["state"] == "SUCCEED", report[name]
        alloc = cores_of(report[name]["runtime"]["allocation"])
        assert [len(c) for c in alloc.values()] == shape, (name, alloc)
        env = _read_env(tmp_path / f"env.{name}")
        _check_task_env(env, alloc, name)
        cpu_set = [int(c) for c in env["QCG_PM_CPU_SET"].split(",")]
        assert set(cpu_set) <= set(real), (name, cpu_set, real)
        # k cores on the first node get min(k, real CPUs) distinct CPUs, and the task is bound to them
        assert len(cpu_set) == len(set(cpu_set)) == min(shape[0], len(real)), (name, cpu_set)
        bound = [int(c) for c in (tmp_path / f"cpus.{name}").read_text().strip().split(",")]
        assert bound == sorted(cpu_set), (name, bound, cpu_set)


CANCEL_STEPS_DRIVER = '''
import subprocess
from qcg_pilotjob.slurm.srun import cancel_steps, parse_steps, squeue_steps_command

JOB = os.environ["SLURM_JOB_ID"]

def steps():
    out = subprocess.run(squeue_steps_command(JOB), capture_output=True, text=True, timeout=30).stdout
    return {name: step for step, name in parse_steps(out, JOB)}

def main():
    both = {"qcgpj-sleeper", "qcgpj-keeper"}
    summary["before"] = until(lambda: (lambda s: s if both <= set(s) else None)(steps()), 60, "both steps")
    start = time.monotonic()
    summary["ended"] = cancel_steps(JOB, ["qcgpj-sleeper", "no-such-step"])
    until(lambda: "qcgpj-sleeper" not in steps(), 20, "the sleeper step gone")
    summary["gone_seconds"] = time.monotonic() - start
    summary["after"] = steps()
    summary["other_job"] = cancel_steps("999999999", ["qcgpj-keeper"])
    summary["keeper_ended"] = cancel_steps(JOB, ["qcgpj-keeper"], signal=None)
'''


def test_cancel_steps_by_name(cluster: None, tmp_path: Path) -> None:
    """slurm.srun.cancel_steps ends the named step of this allocation, and only that one
    (what the governor does to a lost partition's step and its agents' steps)."""
    from qcg_pilotjob.slurm.srun import step_command

    sleeper = shlex.join(step_command("n2", ["sleep", "300"], name="qcgpj-sleeper", unbuffered=True))
    keeper = shlex.join(step_command("n1", ["sleep", "300"], name="qcgpj-keeper", unbuffered=True,
                                     oversubscribe=True))
    b = run_batch(tmp_path, f"""
        {sleeper} &
        SLEEPER=$!
        {keeper} &
        KEEPER=$!
        {write_driver(tmp_path, CANCEL_STEPS_DRIVER)}
        wait $SLEEPER; echo "sleeper exit code $?"
        wait $KEEPER; echo "keeper exit code $?"
        """, "-N", "2", timeout=90)
    s = b.summary()
    before = s["before"]
    assert all(re.fullmatch(rf"{b.job_id}\.\d+", before[n]) for n in ("qcgpj-sleeper", "qcgpj-keeper")), before
    assert s["ended"] == [before["qcgpj-sleeper"]]
    assert s["gone_seconds"] < 10, s["gone_seconds"]
    assert s["after"].get("qcgpj-keeper") == before["qcgpj-keeper"]  # the other step was left alone
    assert s["other_job"] == []
    assert s["keeper_ended"] == [before["qcgpj-keeper"]]
    codes = dict(re.findall(r"(sleeper|keeper) exit code (\d+)", b.out))
    assert codes.keys() == {"sleeper", "keeper"} and "0" not in codes.values(), b.out
