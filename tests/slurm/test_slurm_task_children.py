"""What ends with a task, through node agents in a real allocation (issue 9): a task's
background child and a child that left its group (setsid) are ended once the task has
ended; the service goes on (helpers: :mod:`tests.slurm.slurm_helpers`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .slurm_helpers import run_batch, write_driver

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


CHILDREN_DRIVER = '''
import psutil

GROUP = "sleep 300 & echo $! > child.pid"
SETSID = "setsid bash -c 'touch ready; exec sleep 301' & echo $! > child.pid; until [ -e ready ]; do :; done"

def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

def main():
    m = LocalManager(["--wd", WD, "--id", "kids", "--kill-grace", "1", "--report-format", "json"],
                     {"poll_delay": 0.2})
    jobs = Jobs()
    jobs.add_std({"name": "group", "execution": {"script": GROUP, "wd": "group"}})
    jobs.add_std({"name": "setsid", "execution": {"script": SETSID, "wd": "setsid"}})
    m.submit(jobs)
    summary["states"] = m.wait4(["group", "setsid"], timeout=60)
    pids = {n: int(open(os.path.join(WD, n, "child.pid")).read()) for n in ("group", "setsid")}
    try:
        summary["gone"] = until(lambda: not any(alive(p) for p in pids.values()), 15, "the children gone")
    finally:
        for pid in pids.values():  # a failed test leaves nothing behind either
            if alive(pid):
                os.kill(pid, 9)
    m.finish()
    summary["finished"] = True
'''


def test_agent_ends_task_children(cluster: None, tmp_path: Path) -> None:
    b = run_batch(tmp_path, write_driver(tmp_path, CHILDREN_DRIVER) + "\n", "-N", "1", "--ntasks-per-node", "4",
                  "-t", "2")
    s = b.summary()
    assert s["states"] == {"group": "SUCCEED", "setsid": "SUCCEED"}
    assert s["gone"] and s["finished"]
    launched = (tmp_path / ".qcgpjm-service-kids" / "agents").glob("*.srun.log")
    assert list(launched), "the tasks did not run through node agents"
