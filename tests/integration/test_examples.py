"""The files of ``examples/`` run as their README says and do what it says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service_cmd

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(wd: Path, example: str, *args: str) -> dict:
    proc = subprocess.run(service_cmd("--wd", str(wd), "--file-path", str(EXAMPLES / example),
                                      "--report-format", "json", *args),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    aux = next(d for d in os.listdir(wd) if d.startswith(".qcgpjm-service-"))
    lines = (wd / aux / "jobs.report").read_text().splitlines()
    return {e["name"]: e for e in map(json.loads, lines)}


def test_quickstart(tmp_path: Path) -> None:
    report = run(tmp_path, "quickstart.json", "--nodes", "2")
    assert (tmp_path / "hello.txt").read_text() == "hello from hello on 1 node(s)\n"
    for it in range(4):
        assert re.fullmatch(rf"iteration {it} on n\d core \d\n", (tmp_path / f"four.{it}.txt").read_text())
    assert report["four"]["state"] == "SUCCEED" and report["hello"]["state"] == "SUCCEED"


def test_sweep_with_post_processing(tmp_path: Path) -> None:
    report = run(tmp_path, "sweep.json", "--nodes", "4")
    points = (tmp_path / "results.txt").read_text().splitlines()
    assert len(points) == 12 and [float(p.split()[0]) for p in points] == [0.5 * k for k in range(1, 13)]
    assert report["collect"]["state"] == "SUCCEED"


def test_gpu_jobs_get_a_gpu_each(tmp_path: Path) -> None:
    run(tmp_path, "gpu.json", "--nodes", "n0:4:2,n1:4:2")
    seen = set()
    for it in range(4):
        text = (tmp_path / f"train.{it}.txt").read_text()
        match = re.fullmatch(rf"model {it} on (n\d) with GPU\(s\) (\d)\n", text)
        assert match, text
        seen.add(match.groups())
    assert len(seen) == 4  # four different GPUs (two per node)


def test_mpi_example_is_a_valid_request_file(tmp_path: Path) -> None:
    """It needs an MPI program and Slurm; here its descriptions are accepted and routed (no process)."""
    report = run(tmp_path, "mpi.json", "--nodes", "n0:8,n1:8", "--dry-run")
    assert report["solver"]["state"] == "SUCCEED" and report["report"]["state"] == "SUCCEED"
    alloc = report["solver"]["runtime"]["allocation"]
    assert {part.split("[")[0] for part in alloc.split("],")} == {"n0", "n1"}  # two nodes, as it asked


def test_sbatch_script_is_valid_bash_and_uses_real_options() -> None:
    script = (EXAMPLES / "sbatch-partitions.sh").read_text()
    subprocess.run(["bash", "-n", str(EXAMPLES / "sbatch-partitions.sh")], check=True)
    from qcg_pilotjob.report.cli import reports
    from qcg_pilotjob.service.cli import cli as service
    options = {o for p in service.params for o in getattr(p, "opts", [])}
    command = script.split("qcg-pm-service", 1)[1].split("\n\n", 1)[0]
    for option in re.findall(r"(--[a-z-]+)", command):
        assert option in options, option
    for verb in re.findall(r"^qcg-pm-report ([a-z-]+)", script, flags=re.M):
        assert verb in reports.commands, verb


def test_dynamic_api_program(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "dynamic_api.py"), str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "best x = 2.75 (score -0.0025) after 16 tasks"
    assert len(list(tmp_path.glob("*.out"))) == 16
    shutil.rmtree(tmp_path, ignore_errors=True)
