"""The benchmark suite (``python -m benchmarks``) in its quick form, so that it cannot rot:
every side-by-side row runs for ours and for QCG-PilotJob 0.14.2, and every row of ours
alone (dry runs through a governor, real partitions) runs, and all land in the JSON. No figure is
judged here (timing belongs to the benchmark, not to tests).

The reference is installed from PyPI into ``.cache/qcgpj-0.14.2`` once; if that cannot be
done the test fails under CI (``CI=true``) and is skipped elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import refenv

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_quick_benchmark_runs_every_row_for_both(tmp_path: Path) -> None:
    try:
        refenv.ensure()
    except RuntimeError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)], cwd=refenv.REPO,
                          capture_output=True, text=True, timeout=800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["floor"]["rate"] > 0 and res["machine"]["cpus"] == os.cpu_count()
    assert set(res["limits"]) == {"python_s", "imports_s", "round_trip_ms", "spawn_wait_ms", "decode_list_ms"}
    assert all(value > 0 for value in res["limits"].values())
    assert "limits of this machine" in proc.stdout
    assert len(res["rows"]) == 8
    for label, sides in res["rows"].items():
        assert set(sides) == {"ours", "ref"}, label
        for name, summary in sides.items():
            assert summary["rate"] > 0, (label, name)
            if label.startswith("file mode"):
                assert summary["maxrss_mib"] > 0, (label, name)
            else:
                assert summary["ready"] > 0, (label, name)
    assert "ours/ref" in proc.stdout
    chain = next(sides for label, sides in res["rows"].items() if "chain of" in label)
    latency = next(sides for label, sides in res["rows"].items() if "requests at" in label)
    for name in ("ours", "ref"):
        assert chain[name]["wall"] > 0
        assert all(latency[name][key] > 0 for key in ("list_ms", "job_status_ms", "status_ms", "submit_ms"))
    assert set(res["memory_per_job_kib"]) == {"ours", "ref"}
    # rows of ours alone: dry runs through 1 and 10 partitions and single-manager mode, and
    # real tasks through 0, 1, 2 and 4 partitions
    ours_rows = res["ours_rows"]
    assert len(ours_rows) == 10 and all(row["rate"] > 0 and row["maxrss_mib"] > 0 for row in ours_rows.values())
    assert {label.split(", ")[-1] for label in ours_rows} >= {"10 partitions", "1 partition(s)", "single manager",
                                                              "4 partition(s)"}
