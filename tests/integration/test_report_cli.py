"""``qcg-pm-report`` on real runs: single manager and governor, text and JSON reports, a
failed and an omitted job, and a run still going. Its figures are checked against what the
tasks themselves wrote: the node and cores they were given, and their own clock at start
and end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.conftest import FINISH, service_cmd, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SVG = "{http://www.w3.org/2000/svg}"
# each iteration writes what it was given and its own clock at start and at end
PROBE = ('echo "$(date +%s.%N) $QCG_PM_NODELIST $QCG_PM_CPU_SET" > {out}/probe-$QCG_PM_ITERATION; sleep 0.2; '
         'date +%s.%N >> {out}/probe-$QCG_PM_ITERATION')


def report(*args: str) -> Any:
    proc = subprocess.run([sys.executable, "-m", "qcg_pilotjob.report.cli", *args, "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def jobs_of(out: Path) -> List[Dict[str, Any]]:
    return [
        {"name": "probe", "execution": {"script": PROBE.format(out=out)}, "iteration": {"stop": 6}},
        {"name": "bad", "execution": {"script": "exit 3"}},
        {"name": "after_bad", "execution": {"exec": "/bin/true"}, "dependencies": {"after": ["bad"]}},
        {"name": "wide", "execution": {"exec": "/bin/sleep", "args": ["0.3"]},
         "resources": {"numCores": {"exact": 2}}},  # (a partition of the governor run has 2 cores)
    ]


def run_to_end(wd: Path, *args: str) -> None:
    reqs = wd / "reqs.json"
    reqs.write_text(json.dumps([submit(*jobs_of(wd)), FINISH]))
    proc = subprocess.run(service_cmd("--wd", str(wd), "--file-path", str(reqs), *args),
                          capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr


def check_against_the_tasks(wd: Path, partitions: bool) -> None:
    stats = report("stats", str(wd))
    assert stats["tasks_by_state"] == {"SUCCEED": 7, "FAILED": 1, "CANCELED": 0, "OMITTED": 1}
    assert stats["jobs_by_state"] == {"SUCCEED": 2, "FAILED": 1, "OMITTED": 1}
    assert (stats["total_cores"], stats["total_nodes"], stats["finished"]) == (4, 2, True)
    assert stats["runtime"]["max"] >= 0.3  # wide slept 0.3 s

    failed = report("jobs", str(wd), "--state", "failed")
    assert [(t["name"], t["exit_code"]) for t in failed] == [("bad", 3)]
    omitted = report("job", str(wd), "after_bad")["after_bad"]
    assert omitted[0]["state"] == "OMITTED" and omitted[0]["started"] is None

    probes = {t["iteration"]: t for t in report("job", str(wd), "probe")["probe"]}
    assert sorted(probes) == list(range(6))
    busy_seconds = 0.0
    for it, task in probes.items():
        first, second = (wd / f"probe-{it}").read_text().splitlines()
        own_start, node, cpus = first.split()
        own_end = float(second)
        assert task["nodes"] == {node: cpus.split(",")}, (it, task["nodes"], first)
        # the service stamps a start before the spawn and an end after it saw the exit: the
        # task's own clock reads fall between them, and the run time covers its whole life
        assert task["started"] <= float(own_start) <= own_end <= task["finished"]
        assert task["rtime"] >= own_end - float(own_start) >= 0.2  # it slept 0.2 s
        if partitions:
            assert task["partition"] == {"n0": "partition-0", "n1": "partition-1"}[node]
        else:
            assert task["partition"] is None
        busy_seconds += own_end - float(own_start)
        on_core = report("allocation", str(wd), node, cpus.split(",")[0])
        assert f"probe:{it}" in [t["name"] for t in on_core]

    eff = report("efficiency", str(wd))
    assert eff["total_cores"] == 4 and eff["used_cores"] >= 3
    assert eff["core_hours_used"] * 3600 >= busy_seconds + 2 * 0.3 - 0.05  # the probes and wide's 2 cores
    assert 0 < eff["avg_all_cores_utilization"] <= 100
    if partitions:
        assert {n: v["partition"] for n, v in eff["nodes"].items()} == {"n0": "partition-0", "n1": "partition-1"}

    chart = wd / "gantt.svg"
    assert report("gantt", str(wd), str(chart)) == {"output": str(chart)}
    bars = [e for e in ET.parse(chart).getroot().iter(f"{SVG}rect") if "task" in (e.get("class") or "")]
    ran = [t for t in report("text", str(wd)) if t["started"] is not None]
    assert len(bars) == sum(sum(len(c) for c in t["nodes"].values()) for t in ran)
    assert sum("failed" in (e.get("class") or "") for e in bars) == 1  # bad, on its one core
    for verb in ("gantt-gaps", "utilisation"):
        out = wd / f"{verb}.svg"
        report(verb, str(wd), str(out))
        assert ET.parse(out).getroot().tag == f"{SVG}svg"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_single_manager_run(tmp_path: Path, fmt: str) -> None:
    run_to_end(tmp_path, "--nodes", "n0:2,n1:2", "--report-format", fmt)
    check_against_the_tasks(tmp_path, partitions=False)


def test_governor_run_names_the_partition_of_each_task(tmp_path: Path) -> None:
    run_to_end(tmp_path, "--nodes", "n0:2,n1:2", "--slurm-partition-nodes", "1", "--report-format", "json")
    check_against_the_tasks(tmp_path, partitions=True)


def test_a_run_still_going_and_the_aux_dir_given_directly(tmp_path: Path) -> None:
    gate = tmp_path / "go"
    reqs = tmp_path / "reqs.json"
    reqs.write_text(json.dumps([submit(
        {"name": "quick", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 3}},
        {"name": "held", "execution": {"script": f"while [ ! -e {gate} ]; do sleep 0.05; done"}}), FINISH]))
    proc = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--file-path", str(reqs), "--nodes", "4",
                                        "--report-format", "text"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        aux = tmp_path / ".qcgpjm-service-x"

        def three_done() -> bool:
            found = [d for d in os.listdir(tmp_path) if d.startswith(".qcgpjm-service-")]
            if not found:
                return False
            nonlocal aux
            aux = tmp_path / found[0]
            return (aux / "jobs.report").exists() and (aux / "jobs.report").read_text().count("(SUCCEED)") >= 4
        wait_for(three_done, timeout=30, what="the quick iterations in the report")
        going = report("stats", str(aux))
        assert going["finished"] is False and going["service_finish"] is None
        assert going["tasks_by_state"]["SUCCEED"] == 3 and going["total_cores"] == 4
        assert report("efficiency", str(aux))["total_cores"] == 4
        gate.touch()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = report("stats", str(tmp_path))
    assert done["finished"] is True and done["tasks_by_state"]["SUCCEED"] == 4


def test_a_directory_without_a_run_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "qcg_pilotjob.report.cli", "stats", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1 and "no run here" in proc.stderr
