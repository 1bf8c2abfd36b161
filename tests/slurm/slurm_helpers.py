"""Helpers of the tests of qcg_pilotjob inside real Slurm allocations of the test cluster
(4 nodes n1..n4, 4 CPUs each): the ``cluster`` fixture, batch jobs, and the Python drivers.

Start the cluster first: ``eval "$(scripts/slurm-cluster-start)"`` (see docs/slurm-testing.md).
Each test submits one batch script with ``sbatch`` from its own tmp dir and waits for the job
by polling ``scontrol`` (``sbatch --wait`` sleeps 2 s, then 8 s, then 32 s between its own
checks, which would make a 3 s job take 10 s and a 12 s one 42 s). Scripts that use the
Python API run a small driver inside the allocation, which writes ``summary.json`` for the
test to check. Only the job ids submitted here are ever cancelled.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

NODES = ["n1", "n2", "n3", "n4"]
PY = sys.executable
_console = os.path.join(os.path.dirname(PY), "qcg-pm-service")
#: the service as the user starts it (the console script of this environment)
SERVICE = shlex.quote(_console) if os.access(_console, os.X_OK) else f"{shlex.quote(PY)} -m qcg_pilotjob.service"
#: job states after which a job does nothing more
_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUED", "REQUEUE_HOLD",
           "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED"}
_SUBMITTED: List[str] = []


# ---- the cluster -------------------------------------------------------------------------------------
def _sinfo_nodes() -> Dict[str, str]:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=20, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"sinfo failed (exit code {out.returncode}): {out.stderr.strip()}")
    return dict(line.split() for line in out.stdout.splitlines() if line.strip())


def _cluster_problem() -> Optional[str]:
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        return "SLURM_CONF is not set"
    if not os.path.isfile(conf):
        return f"SLURM_CONF={conf} does not exist"
    deadline = time.monotonic() + 60
    while True:
        try:
            nodes = _sinfo_nodes()
        except (OSError, subprocess.TimeoutExpired, RuntimeError) as exc:
            return str(exc)
        if sorted(nodes) != NODES:
            return f"sinfo shows nodes {sorted(nodes)}, not {NODES}"
        bad = {n: s for n, s in nodes.items() if s != "idle"}
        if not bad:
            return None
        busy = all(s in ("alloc", "mix", "comp") for s in bad.values())
        if not busy or time.monotonic() > deadline:  # down/drained, or others' jobs do not end
            return f"not every node is idle: {bad}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    problem = _cluster_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"Slurm test cluster not usable in CI: {problem}. Start it with "
                        f"eval \"$(scripts/slurm-cluster-start)\"", pytrace=False)
        pytest.skip(f"Slurm test cluster not running: start it with eval \"$(scripts/slurm-cluster-start)\" "
                    f"({problem})")
    yield
    left = [j for j in _SUBMITTED if _job_state(j)[0] in _ACTIVE]
    if left:
        subprocess.run(["scancel", *left], capture_output=True, timeout=30, check=False)


# ---- batch jobs --------------------------------------------------------------------------------------
def _job_state(job_id: str) -> tuple:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30,
                         check=False).stdout
    state = re.search(r"\bJobState=(\S+)", out)
    code = re.search(r"\bExitCode=(\S+)", out)
    return (state.group(1) if state else "UNKNOWN", code.group(1) if code else "")


@dataclass
class Batch:
    job_id: str
    wd: Path
    state: str
    exit_code: str
    out: str

    def aux(self, ident: str) -> Path:
        return self.wd / f".qcgpjm-service-{ident}"

    def report(self, ident: str) -> Dict[str, Dict[str, Any]]:
        """jobs.report entries by name (the service ran with --report-format json)."""
        lines = (self.aux(ident) / "jobs.report").read_text().splitlines()
        return {e["name"]: e for e in map(json.loads, lines)}

    def summary(self) -> Dict[str, Any]:
        path = self.wd / "summary.json"
        assert path.is_file(), f"the driver wrote no summary; job output:\n{self.out}"
        data = json.loads(path.read_text())
        assert "error" not in data, f"the driver failed:\n{data['error']}\njob output:\n{self.out}"
        return data


def run_batch(wd: Path, script: str, *sbatch_args: str, timeout: float = 120) -> Batch:
    """Submit ``script`` (bash) from ``wd`` and wait until the job has ended."""
    path = wd / "run.sh"
    path.write_text("#!/bin/bash\n" + textwrap.dedent(script))
    path.chmod(0o755)
    out_path = wd / "out.txt"
    res = subprocess.run(["sbatch", "--parsable", "-J", "qcgpj-test", "-D", str(wd), "-o", str(out_path),
                          *sbatch_args, str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, f"sbatch failed: {res.stderr}"
    job_id = res.stdout.strip().split(";")[0]
    _SUBMITTED.append(job_id)
    state, code = "UNKNOWN", ""
    try:
        deadline = time.monotonic() + timeout
        while True:
            state, code = _job_state(job_id)
            if state not in _ACTIVE:
                break
            if time.monotonic() > deadline:
                text = out_path.read_text() if out_path.exists() else "(none)"
                raise AssertionError(f"job {job_id} still {state} after {timeout}s; output so far:\n{text}")
            time.sleep(0.1)
    finally:
        if state in _ACTIVE:
            subprocess.run(["scancel", job_id], capture_output=True, timeout=30, check=False)
    out = out_path.read_text() if out_path.exists() else ""
    assert state == "COMPLETED" and code == "0:0", f"job {job_id} ended {state} (exit code {code}):\n{out}"
    return Batch(job_id, wd, state, code, out)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1))


def nodes_of(allocation: str) -> List[str]:
    """Node names of an allocation text such as ``n1[0:1],n2[0]``."""
    return re.findall(r"([^,\[\]]+)\[", allocation)


def cores_of(allocation: str) -> Dict[str, List[int]]:
    return {m.group(1): [int(c) for c in m.group(2).split(":")]
            for m in re.finditer(r"([^,\[\]]+)\[([\d:]+)\]", allocation)}


def iterations(report: Dict[str, Dict[str, Any]], job: str) -> Dict[int, Dict[str, Any]]:
    return {int(name.split(":", 1)[1]): e for name, e in report.items() if name.startswith(f"{job}:")}


FINISH = {"request": "control", "command": "finishAfterAllTasksDone"}

#: 32 single-core iterations that say where they ran: node, hostname, Slurm step, and (with
#: agents) the partition whose agent started them (its log path is in the parent's command line)
WHERE = {"name": "where", "iteration": {"stop": 32},
         "execution": {"script": "echo $SLURMD_NODENAME $(hostname) ${SLURM_STEP_ID:-none} "
                                 "$(grep -ao 'partition-[0-9]*' /proc/$PPID/cmdline | head -1) > out.$it",
                       "wd": "where"},
         "resources": {"numCores": {"exact": 1}}}


def read_where(wd: Path) -> Dict[int, List[str]]:
    out = {}
    for f in (wd / "where").glob("out.*"):
        out[int(f.name.split(".")[1])] = f.read_text().split()
    return out


# ---- the Python drivers run inside the allocation -------------------------------------------------------
DRIVER_HEAD = '''
import json, os, sys, time, traceback
from qcg_pilotjob.api import Jobs, LocalManager, Manager

WD = sys.argv[1]
summary = {}

def until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)

def info(m, names, **kw):
    data = m.info(list(names), **kw)["jobs"]
    return {n: e["data"] for n, e in data.items()}
'''

DRIVER_TAIL = '''
try:
    main()
except BaseException:
    summary["error"] = traceback.format_exc()
    raise
finally:
    with open(os.path.join(WD, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1, default=str)
'''


def write_driver(wd: Path, body: str) -> str:
    path = wd / "driver.py"
    path.write_text(DRIVER_HEAD + textwrap.dedent(body) + DRIVER_TAIL)
    return f"{shlex.quote(PY)} {shlex.quote(str(path))} {shlex.quote(str(wd))}"


# ---- the environment of a task ----------------------------------------------------------------------
ENV_SCRIPT = ("env | grep -E '^(SLURM|SLURMD|QCG_PM)_' | sort > env.$QCG_PM_JOB_NAME; "
              "python3 -c 'import os; print(\",\".join(map(str, sorted(os.sched_getaffinity(0)))))' "
              "> cpus.$QCG_PM_JOB_NAME")


def _read_env(path: Path) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _check_task_env(env: Dict[str, str], alloc: Dict[str, List[int]], name: str) -> None:
    nodes = list(alloc)
    ncores = sum(len(c) for c in alloc.values())
    tpn = ",".join(str(len(c)) for c in alloc.values())
    expected = {
        "SLURM_NNODES": str(len(nodes)), "SLURM_NODELIST": ",".join(nodes), "SLURM_NPROCS": str(ncores),
        "SLURM_NTASKS": str(ncores), "SLURM_JOB_NODELIST": ",".join(nodes), "SLURM_JOB_NUM_NODES": str(len(nodes)),
        "SLURM_STEP_NODELIST": ",".join(nodes), "SLURM_STEP_NUM_NODES": str(len(nodes)),
        "SLURM_STEP_NUM_TASKS": str(ncores), "SLURM_NTASKS_PER_NODE": tpn, "SLURM_STEP_TASKS_PER_NODE": tpn,
        "SLURM_TASKS_PER_NODE": tpn, "SLURM_JOB_CPUS_PER_NODE": tpn, "SLURM_OVERLAP": "1",
        "QCG_PM_NNODES": str(len(nodes)), "QCG_PM_NODELIST": ",".join(nodes), "QCG_PM_NPROCS": str(ncores),
        "QCG_PM_NTASKS": str(ncores), "QCG_PM_TASKS_PER_NODE": tpn, "QCG_PM_JOB_NAME": name,
    }
    assert {k: env.get(k) for k in expected} == expected
    assert env["SLURMD_NODENAME"] == nodes[0]  # it runs on the first node of its allocation
    assert env["QCG_PM_STEP_ID"].isdigit()
    assert env.get("QCG_PM_ZMQ_ADDRESS", "tcp://").startswith("tcp://")
    if ncores > 1:
        hostfile = Path(env["QCG_PM_HOSTFILE"])
        assert env["SLURM_HOSTFILE"] == str(hostfile)
