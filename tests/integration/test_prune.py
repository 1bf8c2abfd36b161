"""``--prune-finished`` through a real service (issue 10): finished iterations keep their
state alone, and nothing else changes: states, counts, the report and the journal (a
resume without the option on its command line keeps it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from qcg_pilotjob.api.job import Jobs
from qcg_pilotjob.front.retired import PRUNED

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FAILS = 3  # the iteration that exits 1


def _run(local: Callable[..., Any], wd: Path, *extra: str) -> Dict[str, Any]:
    manager = local("--wd", str(wd), "--nodes", "4", "--report-format", "json", *extra)
    manager.submit(Jobs().add_std({"name": "its", "iteration": {"stop": 12}, "execution": {
        "exec": "bash", "args": ["-c", f"exit $(( ${{it}} == {FAILS} ))"]}}))
    assert manager.wait4("its", timeout=60) == {"its": "FAILED"}
    info = manager.info("its", withChilds=True)["jobs"]["its"]["data"]
    status = manager.system_status()
    manager.finish()
    return {"info": info, "status": status}


def _report(wd: Path) -> List[Dict[str, Any]]:
    [aux] = [d for d in wd.iterdir() if d.name.startswith(".qcgpjm-service-")]
    return [json.loads(line) for line in (aux / "jobs.report").read_text().splitlines()]


def test_pruned_iterations_keep_their_state_and_nothing_else_changes(local: Callable[..., Any],
                                                                     tmp_path: Path) -> None:
    plain, pruned = tmp_path / "plain", tmp_path / "pruned"
    plain.mkdir()
    pruned.mkdir()
    a = _run(local, plain)
    b = _run(local, pruned, "--prune-finished")
    states = [(c["iteration"], c["state"]) for c in b["info"]["childs"]]
    assert states == [(c["iteration"], c["state"]) for c in a["info"]["childs"]]
    assert states == [(i, "FAILED" if i == FAILS else "SUCCEED") for i in range(12)]
    assert all(c["messages"] == PRUNED and "runtime" not in c for c in b["info"]["childs"])
    assert all("runtime" in c for c in a["info"]["childs"])
    assert b["info"]["iterations"] == a["info"]["iterations"] == {"start": 0, "stop": 12, "total": 12,
                                                                  "finished": 12, "failed": 1}
    assert b["status"]["JobStats"] == a["status"]["JobStats"]
    # the report was written before pruning: every iteration's line is whole
    lines = {line["name"]: line for line in _report(pruned)}
    assert len(lines) == 13 and all("runtime" in lines[f"its:{i}"] for i in range(12))
    assert lines[f"its:{FAILS}"]["state"] == "FAILED" and lines["its"]["state"] == "FAILED"
