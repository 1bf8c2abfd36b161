"""``--disable-nl`` inside a real allocation: no node agents, one srun step per task
(helpers: :mod:`tests.slurm.slurm_helpers`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .slurm_helpers import (
    ENV_SCRIPT,
    FINISH,
    NODES,
    SERVICE,
    WHERE,
    _check_task_env,
    _read_env,
    cores_of,
    iterations,
    nodes_of,
    read_where,
    run_batch,
    write_json,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def test_disable_nl_one_step_per_task(cluster: None, tmp_path: Path) -> None:
    """--disable-nl: no agents; every task is its own srun step on its node."""
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": [WHERE]}, FINISH])
    b = run_batch(tmp_path, f"""
        {SERVICE} --disable-nl --file-path jobs.json --wd {tmp_path} --id nl --report-format json
        echo "service exit code $?"
        """, "-N", "4", "--ntasks-per-node", "4")
    assert "service exit code 0" in b.out, b.out
    where = read_where(tmp_path)
    assert sorted(where) == list(range(32))
    assert all(slurmd == host for slurmd, host, _ in where.values())  # no agent: no partition in the parent
    assert {w[0] for w in where.values()} == set(NODES)
    steps = [w[2] for w in where.values()]
    assert all(s.isdigit() for s in steps) and len(set(steps)) == 32, steps  # one srun step each
    its = iterations(b.report("nl"), "where")
    assert all(e["state"] == "SUCCEED" for e in its.values()) and len(its) == 32
    assert {it: nodes_of(e["runtime"]["allocation"]) for it, e in its.items()} == \
        {it: [w[0]] for it, w in where.items()}
    assert not (b.aux("nl") / "agents").exists()


def test_regression_disable_nl_task_env(cluster: None, tmp_path: Path) -> None:
    """--disable-nl: a task on several nodes (or on cores of two nodes) failed at once with
    ``srun: error: Invalid numeric value "1,1" for --ntasks-per-node`` (srun read the task's
    SLURM_NTASKS_PER_NODE); and srun replaced the task's SLURM_* variables by its step's."""
    jobs = [{"name": "wide", "execution": {"script": ENV_SCRIPT, "stderr": "wide.err"},
             "resources": {"numNodes": {"exact": 2}, "numCores": {"exact": 1}}},
            {"name": "three", "execution": {"script": ENV_SCRIPT, "stderr": "three.err"},
             "resources": {"numCores": {"exact": 3}}},
            {"name": "filler", "execution": {"exec": "/bin/true"}, "resources": {"numCores": {"exact": 1}}}]
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": jobs}, FINISH])
    b = run_batch(tmp_path, f"{SERVICE} --disable-nl --file-path jobs.json --wd {tmp_path} --id nl2 "
                            f"--report-format json\n", "-N", "2", "--ntasks-per-node", "2")
    report = b.report("nl2")
    for name in ("wide", "three"):
        assert report[name]["state"] == "SUCCEED", (report[name], (tmp_path / f"{name}.err").read_text())
        alloc = cores_of(report[name]["runtime"]["allocation"])
        _check_task_env(_read_env(tmp_path / f"env.{name}"), alloc, name)
    assert [len(c) for c in cores_of(report["wide"]["runtime"]["allocation"]).values()] == [1, 1]
