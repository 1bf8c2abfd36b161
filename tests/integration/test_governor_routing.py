"""Governor mode: how work is spread over the partitions: many iterations, dependencies across
partitions, a dry run, small jobs split over idle partitions (helpers: governor_helpers)."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from tests.conftest import FINISH, ServiceRun, submit
from tests.integration.governor_helpers import _iterations, _nodes, _partition_of, _when

pytestmark = pytest.mark.integration


# ---- many iterations over 2 and 4 partitions -----------------------------------------------------
@pytest.mark.parametrize("per_partition,partitions", [(2, 2), (1, 4)])
def test_thousand_iterations_run_on_every_partition(run_service, per_partition, partitions):
    job = {"name": "many", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 1000}}
    res = run_service([submit(job), FINISH], "--nodes", "2,2,2,2", "--slurm-partition-nodes", str(per_partition),
                      timeout=60)
    assert res.rc == 0, res.stderr
    report = res.report()
    assert set(report) == {"many"} | {f"many:{i}" for i in range(1000)}
    assert report["many"]["state"] == "SUCCEED"
    assert report["many"]["iterations"] == {"start": 0, "stop": 1000, "total": 1000, "finished": 1000, "failed": 0}
    stats = res.final_status["IterationStats"]
    assert stats["TotalIterations"] == 1000
    assert stats["FinishedIterations"] == 1000
    assert stats["FailedIterations"] == 0
    assert res.final_status["JobStats"]["FinishedJobs"] == 1
    assert res.final_status["Resources"]["TotalCores"] == 8  # live totals: every partition still counted
    per_part = [0] * partitions
    for it, entry in _iterations(report, "many").items():
        assert entry["state"] == "SUCCEED", (it, entry)
        nodes = _nodes(entry["runtime"]["allocation"])
        assert len(nodes) == 1
        per_part[_partition_of(nodes[0], per_partition)] += 1
    assert sum(per_part) == 1000
    assert all(n > 0 for n in per_part), per_part
    # every partition was started and stopped by the governor
    for i in range(partitions):
        log = res.read(f"partition-{i}/service.log")
        assert "registered with the governor" in log
        assert "stopping: the governor asked (finish)" in log
    assert "exited with code" not in res.log


# ---- dependencies across partitions --------------------------------------------------------------
def test_dependencies_across_partitions(run_service):
    jobs = [
        {"name": "a", "execution": {"exec": "sleep", "args": ["0.2"]}, "iteration": {"stop": 4}},
        {"name": "b", "execution": {"exec": "sleep", "args": ["0.1"]}, "iteration": {"stop": 4},
         "dependencies": {"after": ["a"]}},
        {"name": "c", "execution": {"exec": "/bin/true"}, "dependencies": {"after": ["b"]}},
        {"name": "x", "execution": {"exec": "sleep", "args": ["0.${it}"]}, "iteration": {"stop": 8}},
        {"name": "y", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 8},
         "dependencies": {"after": ["x:${it}"]}},
    ]
    res = run_service([submit(*jobs), FINISH], "--nodes", "2,2,2,2", "--slurm-partition-nodes", "2", timeout=60)
    assert res.rc == 0, res.stderr
    report = res.report()
    for name in ("a", "b", "c", "x", "y"):
        assert report[name]["state"] == "SUCCEED", report[name]
    its = {name: _iterations(report, name) for name in ("a", "b", "x", "y")}
    assert {k: len(v) for k, v in its.items()} == {"a": 4, "b": 4, "x": 8, "y": 8}
    # whole-job dependencies: b starts after every iteration of a ended, c after every one of b
    a_end = max(_when(e, "SUCCEED") for e in its["a"].values())
    b_start = min(_when(e, "EXECUTING") for e in its["b"].values())
    b_end = max(_when(e, "SUCCEED") for e in its["b"].values())
    assert a_end <= b_start
    assert b_end <= _when(report["c"], "EXECUTING")
    # per-iteration dependencies: y:i after x:i
    for i in range(8):
        assert _when(its["x"][i], "SUCCEED") <= _when(its["y"][i], "EXECUTING"), i
    # and the jobs released at submit were spread over both partitions (both empty then).
    # Where b and y:i go depends on which partition has room at the moment they are released,
    # a matter of timing: the router's unit tests pin that choice without a clock.
    def part(entry: Dict[str, Any]) -> int:
        return _partition_of(_nodes(entry["runtime"]["allocation"])[0], 2)

    for name in ("a", "x"):
        assert {part(e) for e in its[name].values()} == {0, 1}, name


def test_failed_dependency_across_partitions_omits(run_service):
    jobs = [
        {"name": "bad", "execution": {"script": "test ${it} -ne 2"}, "iteration": {"stop": 4}},
        {"name": "after_bad", "execution": {"exec": "/bin/true"}, "dependencies": {"after": ["bad"]}},
        {"name": "per_it", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 4},
         "dependencies": {"after": ["bad:${it}"]}},
        {"name": "chain", "execution": {"exec": "/bin/true"}, "dependencies": {"after": ["after_bad"]}},
    ]
    res = run_service([submit(*jobs), FINISH], "--nodes", "2,2,2,2", "--slurm-partition-nodes", "2", timeout=60)
    assert res.rc == 0, res.stderr
    report = res.report()
    bad = _iterations(report, "bad")
    assert {i: e["state"] for i, e in bad.items()} == {0: "SUCCEED", 1: "SUCCEED", 2: "FAILED", 3: "SUCCEED"}
    assert {_partition_of(n, 2) for e in bad.values() for n in _nodes(e["runtime"]["allocation"])} == {0, 1}
    assert report["bad"]["state"] == "FAILED"
    assert report["after_bad"]["state"] == "OMITTED"
    assert "dependency 'bad' finished FAILED" in report["after_bad"]["messages"]
    assert report["chain"]["state"] == "OMITTED"
    assert "dependency 'after_bad' finished OMITTED" in report["chain"]["messages"]
    per_it = _iterations(report, "per_it")
    assert {i: e["state"] for i, e in per_it.items()} == {0: "SUCCEED", 1: "SUCCEED", 2: "OMITTED", 3: "SUCCEED"}
    assert "dependency 'bad:2' finished FAILED" in per_it[2]["messages"]
    assert per_it[2]["runtime"] == {}  # never started anywhere (the key, empty, as QCG-PilotJob writes it)
    assert report["per_it"]["state"] == "FAILED"  # some iterations did not succeed
    stats = res.final_status["IterationStats"]
    assert (stats["FinishedIterations"], stats["FailedIterations"], stats["OmittedIterations"]) == (6, 1, 3)


# ---- dry run -----------------------------------------------------------------------------------------
def test_dry_run_governor_five_thousand_tasks(run_service):
    job = {"name": "dry", "execution": {"exec": "/bin/false"}, "iteration": {"stop": 5000}}
    res: ServiceRun = run_service([submit(job), FINISH], "--nodes", "2,2", "--slurm-partition-nodes", "1",
                                  "--dry-run", timeout=60)
    assert res.rc == 0, res.stderr
    stats = res.final_status["IterationStats"]
    assert stats["TotalIterations"] == 5000
    assert stats["FinishedIterations"] == 5000
    assert stats["FailedIterations"] == 0
    report = res.report()
    assert report["dry"]["state"] == "SUCCEED"
    assert report["dry"]["iterations"]["finished"] == 5000
    per_part = [0, 0]
    for entry in _iterations(report, "dry").values():
        per_part[_partition_of(_nodes(entry["runtime"]["allocation"])[0], 1)] += 1
    assert sum(per_part) == 5000
    assert min(per_part) > 0, per_part
    for i in range(2):
        assert res.read(f"partition-{i}/stderr.log") == ""


def test_regression_small_job_split_over_idle_partitions(run_service):
    """Routing sent a whole job that fit in one partition's window (4x its cores) to that
    partition, leaving the others idle while its tasks queued there."""
    job = {"name": "few", "execution": {"exec": "sleep", "args": ["0.3"]}, "iteration": {"stop": 8}}
    res = run_service([submit(job), FINISH], "--nodes", "2,2,2,2", "--slurm-partition-nodes", "2", timeout=60)
    assert res.rc == 0, res.stderr
    its = _iterations(res.report(), "few")
    per_part = [0, 0]
    for entry in its.values():
        assert entry["state"] == "SUCCEED"
        per_part[_partition_of(_nodes(entry["runtime"]["allocation"])[0], 2)] += 1
    assert per_part == [4, 4]
