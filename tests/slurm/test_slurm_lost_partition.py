"""A governor inside a real allocation loses a partition: what that partition left running
(its node agent's step, and so the tasks) is ended before its tasks are reported FAILED.

Uses the helpers of :mod:`tests.slurm.slurm_helpers` (the cluster fixture, batch jobs, drivers).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .slurm_helpers import cluster, run_batch, write_driver  # noqa: F401  (cluster is a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

LOST_PARTITION_DRIVER = '''
import signal
import psutil

def tasks_of(node):
    """Pids of this run's "long" tasks on ``node`` (the test cluster's nodes share one host):
    the process that leads each task's session, not its short-lived children."""
    pids = []
    for p in psutil.process_iter():
        try:
            env = p.environ()
            if env.get("QCG_PM_JOB_NAME") == "long" and env.get("SLURMD_NODENAME") == node and p.cwd() == WD \
                    and os.getsid(p.pid) == p.pid:
                pids.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return pids

def main():
    release = os.path.join(WD, "release")
    # heartbeats of 5 s: an agent left alone would notice its partition gone after 150 s,
    # so tasks ended within this test were ended by the governor
    m = LocalManager(["--wd", WD, "--id", "lostp", "--report-format", "json", "--slurm-partition-nodes", "1",
                      "--heartbeat", "5"], {"poll_delay": 0.5})
    jobs = Jobs()
    jobs.add(name="long", script=f"while [ ! -e {release} ]; do sleep 0.05; done", numCores=1, iteration=8)
    m.submit(jobs)

    def childs(pred):
        data = info(m, ["long"], withChilds=True)["long"]["childs"]
        return data if all(pred(c) for c in data) else None
    longs = until(lambda: childs(lambda c: c["state"] == "EXECUTING"), 90, "8 long tasks executing")
    on_n2 = [c["iteration"] for c in longs if c["runtime"]["allocation"].startswith("n2[")]
    summary["on_n2"] = on_n2
    summary["n2_tasks_before"] = len(until(lambda: tasks_of("n2") if len(tasks_of("n2")) == 4 else None, 30,
                                           "4 task processes on n2"))
    parts = [p for p in psutil.process_iter(["pid", "cmdline"])
             if (p.info["cmdline"] or [])[1:3] == ["-m", "qcg_pilotjob.service"]
             and "--parent" in p.info["cmdline"] and m.aux_dir in " ".join(p.info["cmdline"])
             and "n2:4" in " ".join(p.info["cmdline"] or [])]
    summary["partitions_found"] = len(parts)
    parts[0].send_signal(signal.SIGKILL)
    failed = until(lambda: childs(lambda c: c["iteration"] not in on_n2 or c["state"] == "FAILED"), 60,
                   "n2's tasks failed")
    summary["messages"] = sorted({c.get("messages") for c in failed if c["iteration"] in on_n2})
    until(lambda: not tasks_of("n2"), 30, "n2's task processes gone")
    summary["n2_tasks_after"] = len(tasks_of("n2"))
    summary["n1_tasks_after"] = len(tasks_of("n1"))
    summary["resources_after_loss"] = m.resources()
    open(release, "w").close()
    summary["state"] = m.wait4(["long"], timeout=60)
    m.finish()
    summary["finished"] = True
'''


def test_regression_lost_partition_tasks_are_ended_in_slurm(cluster: None, tmp_path: Path) -> None:  # noqa: F811
    """A partition manager is SIGKILLed: the governor cancels its step and its agent's step,
    so its tasks stop, and reports them FAILED saying so; the other partition goes on."""
    b = run_batch(tmp_path, write_driver(tmp_path, LOST_PARTITION_DRIVER) + "\n", "-N", "2",
                  "--ntasks-per-node", "4", timeout=240)
    s = b.summary()
    assert s["partitions_found"] == 1
    assert len(s["on_n2"]) == 4 and s["n2_tasks_before"] == 4
    [message] = s["messages"]
    assert "partition partition-1 lost" in message and "srun step" in message, message
    assert s["n2_tasks_after"] == 0
    assert s["n1_tasks_after"] == 4  # the other partition's tasks keep running
    assert s["resources_after_loss"]["total_cores"] == 4
    assert s["state"] == {"long": "FAILED"}
    assert s["finished"]
