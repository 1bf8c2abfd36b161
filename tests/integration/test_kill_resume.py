"""SIGKILL of a single manager at random (seeded) moments of a 2,000-job run, resumed each
time: every job runs, and no job whose final record was in the journal at a kill runs again.

Each job appends its name to ``ran``, so the runs of every job can be counted. At a kill the
service is stopped first (SIGSTOP) and its children listed: those were running (or had
exited unseen) and may run again, as documented. A job that ran, was not one of them and
has no final record was an end the service had handled but not written: with the journal
flushed at the end of every loop turn there are (almost) none.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import random
import signal
import subprocess
from typing import Any, Counter, Dict, List, Set, Tuple

import psutil
import pytest

from tests.conftest import FINISH, service_cmd, submit, wait_for

pytestmark = pytest.mark.integration

N_JOBS = 2000
KILLS = 5
CORES = 4
SEED = 20261202


def _runs(path: str) -> Counter[str]:
    if not os.path.exists(path):
        return collections.Counter()
    with open(path) as fh:
        return collections.Counter(fh.read().split())


def _journal(aux: str) -> List[Dict[str, Any]]:
    """The journal's records (a line cut by the kill is skipped, as a resume skips it)."""
    recs = []
    with open(os.path.join(aux, "journal.jsonl")) as fh:
        for line in fh:
            try:
                recs.append(json.loads(line))
            except ValueError:
                continue
    return recs


def _finals(aux: str) -> Set[str]:
    return {r["j"] for r in _journal(aux) if r.get("t") == "final"}


def _job_of(child: psutil.Process, pids: Dict[int, str]) -> Any:
    """The job a task process runs: from its command line, or (an exited task, a zombie) from
    the journal's ``run`` record of its pid."""
    try:
        argv = child.cmdline()
    except psutil.Error:
        argv = []
    return next((a.split()[1] for a in argv if a.startswith("echo j")), pids.get(child.pid))


def _stop_and_kill(proc: subprocess.Popen, aux: str) -> Tuple[Set[str], int]:
    """SIGSTOP the service, list its tasks, SIGKILL it, wait until those tasks have ended.
    Returns the names of the jobs still running at the kill and how many children had no
    job name yet (forked, not yet exec'd)."""
    service = psutil.Process(proc.pid)
    service.suspend()
    wait_for(lambda: service.status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE), what="SIGSTOP")
    children = service.children(recursive=True)
    pids = {r["p"]: r["j"] for r in _journal(aux) if r.get("t") == "run"}
    running, unnamed = set(), 0
    for child in children:
        name = _job_of(child, pids)
        if name is None:
            unnamed += 1
        else:
            running.add(name)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    def ended(p: psutil.Process) -> bool:
        try:
            return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(ended(p) for p in children), timeout=30, what="the killed run's tasks to end")
    return running, unnamed


def _reached(ran: str, target: int, proc: subprocess.Popen) -> bool:
    return sum(_runs(ran).values()) >= target or proc.poll() is not None


def test_kill_and_resume_runs_every_job_and_no_finished_one_again(tmp_path: Any) -> None:
    wd, ran = str(tmp_path), str(tmp_path / "ran")
    aux = os.path.join(wd, ".qcgpjm-service-kr")
    jobs = [{"name": f"j{i}", "execution": {"exec": "/bin/sh", "args": ["-c", f"echo j{i} >> {ran}"]}}
            for i in range(N_JOBS)]
    path = os.path.join(wd, "reqs.json")
    with open(path, "w") as fh:
        json.dump([submit(*jobs), FINISH], fh)
    rng = random.Random(SEED)
    cmd = service_cmd("--file-path", path, "--wd", wd, "--id", "kr", "--nodes", str(CORES), "--report-format", "json")
    kills: List[Dict[str, Any]] = []
    for _ in range(KILLS):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = sum(_runs(ran).values()) + rng.randint(20, 300)
        try:
            wait_for(functools.partial(_reached, ran, target, proc), timeout=120, interval=0.005,
                     what=f"{target} runs")
            assert proc.poll() is None, "the run ended before it was killed"
        finally:
            running, unnamed = _stop_and_kill(proc, aux)
        runs, finals = _runs(ran), _finals(aux)
        handled = {n for n in runs if n not in finals and n not in running}
        kills.append({"runs": runs, "finals": finals, "running": running, "unnamed": unnamed, "lost": handled})
        cmd = service_cmd("--resume", aux, "--wd", wd)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr

    total = _runs(ran)
    twice = sorted(n for n, c in total.items() if c > 1)
    lost = sum(len(k["lost"]) for k in kills)
    for k in kills:
        print(f"\nkill: {sum(k['runs'].values())} runs, {len(k['finals'])} finals, {len(k['running'])} running, "
              f"{k['unnamed']} unnamed, lost {sorted(k['lost'])}", end="")
    print(f"\nkill/resume: {N_JOBS} jobs, {KILLS} kills, {len(twice)} ran twice "
          f"({len(twice) / N_JOBS:.2%}); running at a kill: {sum(len(k['running']) for k in kills)}; "
          f"handled ends not in the journal: {lost}")
    assert set(total) == {f"j{i}" for i in range(N_JOBS)}  # every job ran
    assert _finals(aux) == set(total)
    for k in kills:  # a job whose end was in the journal at a kill never ran again
        again = [n for n in k["finals"] if total[n] != k["runs"][n]]
        assert not again, f"ran again after their final record: {again[:10]}"
    # What may run twice: what was running at a kill, and the ends on their way from the
    # partition to the journal (reaped, waiting behind the start of the next tasks: a few
    # loop turns, a few per core) - not the last half second's worth (hundreds here).
    assert lost <= 3 * CORES * KILLS + sum(k["unnamed"] for k in kills), [sorted(k["lost"]) for k in kills]
    assert set(twice) <= set().union(*(k["running"] | k["lost"] for k in kills))
