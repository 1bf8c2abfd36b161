"""QCG-PilotJob's own ``qcg-pm-report`` (``qcg-pilotjob-cmds`` 0.14.2) over our JSON report
gives the totals ours gives (regression: it stopped on entries without ``runtime``); its
``qcg-pm status`` reads our running service.

Its tool asserts that every entry's history holds SUCCEED or FAILED, so it stops on OMITTED
and CANCELED entries, the reference's own included (a bug of the reference, not repeated
by ours): the run here has neither. The tool is installed with ``--no-deps`` into the
reference's cached venv (``benchmarks.refenv``); without PyPI the test fails under CI and
is skipped elsewhere."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import refenv
from tests.conftest import FINISH, need, service_cmd, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.compat, pytest.mark.timeout(600)]

CMDS = "qcg-pilotjob-cmds==0.14.2"


def _reference_tool() -> str:
    """The reference's python with qcg-pilotjob-cmds installed (RuntimeError if it cannot be)."""
    python = refenv.ensure()
    check = [python, "-c", "import qcg.pilotjob.cmds.report"]
    if subprocess.run(check, capture_output=True, env=refenv.clean_env(), check=False).returncode != 0:
        proc = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", CMDS], capture_output=True,
                              text=True, env=refenv.clean_env(), timeout=600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"cannot install {CMDS}: {proc.stderr[-2000:]}")
    return python


def test_reference_qcg_pm_report_reads_our_json_report(tmp_path: Path) -> None:
    python = need(_reference_tool)
    reqs = tmp_path / "reqs.json"
    reqs.write_text(json.dumps([submit(
        {"name": "sweep", "execution": {"exec": "/bin/sleep", "args": ["0.1"]}, "iteration": {"stop": 6}},
        {"name": "bad", "execution": {"script": "exit 3"}},
        {"name": "single", "execution": {"exec": "/bin/sleep", "args": ["0.2"]}}), FINISH]))
    run = subprocess.run(service_cmd("--wd", str(tmp_path), "--file-path", str(reqs), "--nodes", "4",
                                     "--report-format", "json"), capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr

    def reference(verb: str) -> str:
        proc = subprocess.run([python, "-c", "from qcg.pilotjob.cmds.report import reports; reports()", verb,
                               str(tmp_path)], capture_output=True, text=True, env=refenv.clean_env(),
                              cwd=str(tmp_path), timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    ours = json.loads(subprocess.run([sys.executable, "-m", "qcg_pilotjob.report.cli", "stats", str(tmp_path),
                                      "--json"], capture_output=True, text=True, timeout=60, check=True).stdout)
    stats = reference("stats")
    total = int(re.search(r"total jobs: (\d+)", stats).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"failed jobs: (\d+)", stats).group(1))  # type: ignore[union-attr]
    assert (total, failed) == (ours["total_tasks"], ours["failed_tasks"]) == (8, 1)
    assert int(re.search(r"total cores: (\d+)", stats).group(1)) == ours["total_cores"] == 4  # type: ignore[union-attr]
    listed = sorted(line.split()[0] for line in reference("jobs").splitlines() if line.strip())
    assert listed == sorted(["bad", "single"] + [f"sweep:{i}" for i in range(6)])


def test_reference_qcg_pm_status_reads_our_running_service(tmp_path: Path) -> None:
    """QCG-PilotJob 0.14.2's own ``qcg-pm -p WD status`` finds our service through its
    ``address`` file (a trailing newline broke it) and prints our status. Its client cannot
    do CURVE, so the service runs with --insecure-net, as usage.md §11 says."""
    python = need(refenv.ensure)
    svc = subprocess.Popen(service_cmd("--net", "--insecure-net", "--nodes", "2", "--wd", str(tmp_path), "--id", "rs"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        address = tmp_path / ".qcgpjm-service-rs" / "address"
        wait_for(lambda: address.exists() and address.read_text(), what="the address file")
        proc = subprocess.run([python, "-c", "from qcg.pilotjob.client_cmd import qcgpjm; qcgpjm(obj={})", "-p",
                               str(tmp_path), "status"], capture_output=True, text=True, env=refenv.clean_env(),
                              cwd=str(tmp_path), timeout=120, check=False)
        assert proc.returncode == 0 and "error" not in proc.stderr, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == "[System]" and "InstanceId=rs" in lines and "TotalCores=2" in lines, proc.stdout
    finally:
        svc.terminate()
        svc.wait(timeout=60)
