"""Wall times inside a real allocation: a task that would outlast the allocation is held back
(helpers: :mod:`tests.slurm.slurm_helpers`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .slurm_helpers import run_batch, write_driver

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


WALLTIME_DRIVER = '''
import subprocess

def main():
    m = LocalManager(["--wd", WD, "--id", "wt", "--report-format", "json"], {"poll_delay": 0.5})
    jobs = Jobs()
    jobs.add(name="short", script="hostname", numCores=1, wt="1m")
    jobs.add(name="long", script="hostname", numCores=1, wt="10m")
    jobs.add(name="after", exec="/bin/true", numCores=1, after=["short"])
    m.submit(jobs)
    summary["states"] = m.wait4(["short", "after"], timeout=60)
    summary["long"] = until(lambda: (lambda d: d if d.get("messages") else None)(info(m, ["long"])["long"]), 30,
                            "the long job's reason")
    out = subprocess.run(["scontrol", "show", "job", "-o", os.environ["SLURM_JOB_ID"]], capture_output=True,
                         text=True).stdout
    summary["end_time"] = out.split("EndTime=")[1].split()[0]
    m.finish()
    summary["finished"] = True
'''


def test_walltime_outlasting_the_allocation(cluster: None, tmp_path: Path) -> None:
    """In a 2-minute allocation a task of 10 minutes is held back (and reported CANCELED with
    the reason when the service finishes); short ones run."""
    b = run_batch(tmp_path, write_driver(tmp_path, WALLTIME_DRIVER) + "\n", "-N", "1", "--ntasks-per-node", "4",
                  "-t", "2")
    s = b.summary()
    assert s["states"] == {"short": "SUCCEED", "after": "SUCCEED"}
    assert s["long"]["status"] == "QUEUED"
    assert "outlast the allocation" in s["long"]["messages"]
    end = s["end_time"].replace("T", " ")
    assert f"ends {end}" in s["long"]["messages"], (s["long"]["messages"], end)
    report = b.report("wt")
    assert report["short"]["state"] == "SUCCEED" and report["after"]["state"] == "SUCCEED"
    assert report["long"]["state"] == "CANCELED"
    msg = report["long"].get("messages") or report["long"].get("message") or ""
    assert "not started: its wall time of 600s would outlast the allocation" in msg, report["long"]
    assert "EXECUTING" not in {h["state"] for h in report["long"]["history"]}
