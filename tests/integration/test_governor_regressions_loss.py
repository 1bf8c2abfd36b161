"""Governor regressions, each named after the failure it pins, on lost processes: a governor
killed with SIGKILL is resumed, the tasks of a lost partition are ended. Real governor and
partition processes on loopback, waiting on conditions with deadlines (no sleeps, no timing
asserts; helpers: governor_regression_helpers)."""

from __future__ import annotations

import collections
import json
import os
import random
import re
import signal
import subprocess
from typing import Dict, List, Optional, Set, Tuple

import pytest

from tests.conftest import FINISH, service_cmd, submit, wait_for
from tests.integration.governor_regression_helpers import (
    FINAL,
    _address,
    _ask,
    _aux,
    _gone,
    _job_info,
    _job_states,
    _kill_pids,
    _marker_pids,
    _nodes,
    _partition_pids,
    _read,
    _report,
    _status,
    _stop,
)

pytestmark = pytest.mark.integration


# ---- 2. a governor killed with SIGKILL is resumed ---------------------------------------------------
RESUME_JOBS = 420


def _journal_finals(aux: str) -> Set[str]:
    """Jobs whose ``final`` record is in the journal (a line cut by a kill is skipped)."""
    out = set()
    for line in _read(os.path.join(aux, "journal.jsonl")).splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("t") == "final":
            out.add(rec["j"])
    return out


def _runs(path: str) -> collections.Counter:
    return collections.Counter(line for line in _read(path).splitlines() if line)


def _kill_when(cmd: List[str], cwd: str, aux: str, at_least: int) -> Set[str]:
    """Run a governor; SIGKILL it once ``at_least`` jobs have a final record in the journal.
    Returns the jobs recorded final at the kill, once its partitions (and their tasks) are gone."""
    gov = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kids: List[int] = []
    try:
        kids = _partition_pids(gov.pid, 2)
        wait_for(lambda: len(_journal_finals(aux)) >= at_least or gov.poll() is not None, timeout=90,
                 interval=0.005, what=f"{at_least} final records in the journal")
        assert gov.poll() is None, f"the governor ended before the kill: {gov.communicate()[1]}"
        gov.send_signal(signal.SIGKILL)
        assert gov.wait(timeout=10) == -signal.SIGKILL
        recorded = _journal_finals(aux)  # nothing writes the journal any more
        # the partitions notice the governor's end (lifeline) and stop their tasks
        wait_for(lambda: all(_gone(pid) for pid in kids), timeout=30, what="the killed governor's partitions to exit")
    finally:
        _stop(gov)
        _kill_pids(kids)
    assert 0 < len(recorded) < RESUME_JOBS, len(recorded)
    return recorded


@pytest.mark.timeout(360)
@pytest.mark.parametrize("forms", [("again",), ("alone",), ("again", "alone", "again")],
                         ids=["command-line-and-resume", "resume-alone", "three-kills"])
def test_regression_governor_resume_after_sigkill(tmp_path, forms):
    """A governor killed with SIGKILL (no chance to stop anything) is resumed from its aux
    dir: the run ends by itself with every job final, and no job whose final record reached
    the journal before a kill runs again. ``forms``: how each resume is started, one per kill
    (``again``: the original command line plus ``--resume``; ``alone``: ``--resume`` only),
    and the last resume is started the other way round and runs to the end."""
    wd = str(tmp_path)
    runs = str(tmp_path / "runs.txt")
    names = [f"j{i:03d}" for i in range(RESUME_JOBS)]
    jobs = [{"name": n, "execution": {"script": f"echo {n} >> {runs}; sleep 0.05"}} for n in names]
    with open(tmp_path / "jobs.json", "w") as fh:
        json.dump([submit(*jobs), FINISH], fh)
    original = service_cmd("--nodes", "a:2,b:2", "--slurm-partition-nodes", "1", "--file-path", "jobs.json",
                           "--id", "X", "--report-format", "json")
    aux = _aux(wd, "X")

    def resume(form: str) -> List[str]:
        return [*original, "--resume", aux] if form == "again" else service_cmd("--resume", aux)

    # recorded[k]: jobs final in the journal at kill k; counts[k]: runs.txt at that moment
    recorded: List[Set[str]] = []
    counts: List[collections.Counter] = []
    cmd = original
    for form in forms:
        recorded.append(_kill_when(cmd, wd, aux, (len(recorded[-1]) if recorded else 0) + 40))
        counts.append(_runs(runs))
        cmd = resume(form)
    last = resume("alone" if forms[-1] == "again" else "again")
    end = subprocess.Popen(last, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kids: List[int] = []
    try:
        kids = _partition_pids(end.pid, 2)
        _, err = end.communicate(timeout=120)
        assert end.returncode == 0, err
        wait_for(lambda: all(_gone(pid) for pid in kids), timeout=30, what="the partitions to exit")
    finally:
        _stop(end)
        _kill_pids(kids)

    report = _report(aux)
    unsuccessful = {n: report.get(n) for n in names if report.get(n, {}).get("state") != "SUCCEED"}
    assert not unsuccessful, unsuccessful
    status = json.loads(_read(os.path.join(aux, "final_status")))
    assert status["JobStats"]["TotalJobs"] == RESUME_JOBS
    assert status["JobStats"]["FinishedJobs"] == RESUME_JOBS
    assert status["IterationStats"]["InScheduleIterations"] == status["IterationStats"]["ExecutingIterations"] == 0
    assert _journal_finals(aux) == set(names)
    final = _runs(runs)
    assert set(final) == set(names)  # every job ran, nothing else wrote there
    # no job recorded final before a kill ran again after it
    again = {n: (k, counts[k][n], final[n]) for k, done in enumerate(recorded) for n in done
             if final[n] != counts[k][n]}
    assert not again, f"jobs recorded final at kill k ran again: {{name: (k, runs then, runs at the end)}} {again}"
    assert all(final[n] == 1 for n in recorded[0])
    assert all(recorded[k] <= recorded[k + 1] for k in range(len(recorded) - 1))
    reruns = {n: c - 1 for n, c in final.items() if c > 1}
    print(f"resume figures ({'+'.join(forms)}): {RESUME_JOBS} jobs, {len(forms)} kill(s), final records at "
          f"the kills {[len(r) for r in recorded]}, jobs run more than once {len(reruns)} "
          f"({sum(reruns.values())} extra runs, all of jobs not recorded final at the kill)")


# ---- 4. the tasks of a lost partition are ended ------------------------------------------------------
@pytest.mark.parametrize("how", ["killed", "hung"])
def test_regression_lost_partition_tasks_are_ended(tmp_path, how):
    """A lost partition's running tasks are reported FAILED, saying that the partition was
    lost and what was ended, and their processes are really ended (not left running,
    orphaned, once reported FAILED). ``killed``: the partition manager got SIGKILL;
    ``hung``: it got SIGSTOP and missed 30 heartbeats of 0.2 s, and the governor killed it.
    The other partition's tasks run on."""
    wd = str(tmp_path)
    marker = f"600.{random.randrange(10**6):06d}"
    args = ["--nodes", "a:2,b:2", "--slurm-partition-nodes", "1", "--net", "--wd", wd, "--id", "lost",
            "--report-format", "json"]
    if how == "hung":
        args += ["--heartbeat", "0.2"]
    gov = subprocess.Popen(service_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(wd, "lost")
    kids: List[int] = []
    tasks: List[int] = []
    names = [f"long{i}" for i in range(4)]
    try:
        kids = _partition_pids(gov.pid, 2)
        address = _address(aux)  # written once both partitions registered
        registered = dict(re.findall(r"partition (partition-\d) registered from \S+ \(pid (\d+)\)",
                                     _read(os.path.join(aux, "service.log"))))
        assert set(registered) == {"partition-0", "partition-1"}
        assert {int(p) for p in registered.values()} == set(kids)
        victim = int(registered["partition-1"])  # holds node b
        _ask(address, submit(*({"name": n, "execution": {"exec": "sleep", "args": [marker]}} for n in names)))

        def running() -> Optional[Dict[str, Tuple[str, int]]]:
            info = _job_info(address, names)
            if any(i["status"] != "EXECUTING" or "pid" not in i.get("runtime", {}) for i in info.values()):
                return None
            return {n: (_nodes(i["runtime"]["allocation"])[0], int(i["runtime"]["pid"])) for n, i in info.items()}

        where = wait_for(running, timeout=30, what="4 tasks running with their pids")
        tasks = [pid for _, pid in where.values()]
        assert sorted(_marker_pids(marker)) == sorted(tasks)
        on_b = sorted(n for n, (node, _) in where.items() if node == "b")
        on_a = sorted(n for n, (node, _) in where.items() if node == "a")
        assert len(on_b) == len(on_a) == 2, where
        os.kill(victim, signal.SIGKILL if how == "killed" else signal.SIGSTOP)

        wait_for(lambda: set(_job_states(address, on_b).values()) <= FINAL, timeout=30,
                 what="the lost partition's tasks to end")
        wait_for(lambda: all(_gone(where[n][1]) for n in on_b), timeout=10,
                 what="the lost partition's task processes to be gone")
        info = _job_info(address, on_b + on_a)
        for name in on_b:
            assert info[name]["status"] == "FAILED", info[name]
            message = info[name]["messages"]
            assert "partition partition-1 lost" in message, message
            assert "ended: " in message and "2 running task(s)" in message, message
            if how == "hung":
                assert f"its manager process {victim}" in message, message
        if how == "hung":  # the governor killed the stopped partition manager
            wait_for(lambda: _gone(victim), timeout=10, what="the hung partition manager to be gone")
        # the other partition's tasks run on
        for name in on_a:
            assert info[name]["status"] == "EXECUTING", info[name]
            assert not _gone(where[name][1]), name
        assert _job_states(address, on_a) == {n: "EXECUTING" for n in on_a}
        status = _status(address)
        assert status["System"]["Partitions"] == 1
        assert status["Resources"]["TotalCores"] == 2
        log = _read(os.path.join(aux, "service.log"))
        assert "partition partition-1 lost" in log
        _ask(address, {"request": "finish"})
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
        wait_for(lambda: all(_gone(pid) for pid in kids), timeout=20, what="the partitions to exit")
        wait_for(lambda: not _marker_pids(marker), timeout=10, what="every task process to be gone")
    finally:
        _stop(gov)
        _kill_pids(kids + tasks)
    report = _report(aux)
    assert {n: report[n]["state"] for n in on_b} == {n: "FAILED" for n in on_b}
    assert {n: report[n]["state"] for n in on_a} == {n: "CANCELED" for n in on_a}  # by the finish
