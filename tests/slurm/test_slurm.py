"""qcg_pilotjob inside real Slurm allocations of the test cluster (4 nodes n1..n4, 4 CPUs each).

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
from typing import Any, Dict, Iterator, List, Optional, Set

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

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


# ---- tests -------------------------------------------------------------------------------------------
def test_partitions_run_on_all_nodes(cluster: None, tmp_path: Path) -> None:
    """Governor with two partition managers of two nodes each, started by srun on n1 and n3."""
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": [WHERE]}, FINISH])
    b = run_batch(tmp_path, f"""
        {SERVICE} --slurm-partition-nodes 2 --file-path jobs.json --wd {tmp_path} --id gov --report-format json
        echo "service exit code $?"
        """, "-N", "4", "--ntasks-per-node", "4")
    assert "service exit code 0" in b.out, b.out
    where = read_where(tmp_path)
    assert sorted(where) == list(range(32))
    for it, (slurmd, host, *_) in where.items():
        assert slurmd == host, f"iteration {it} ran on {host} but SLURMD_NODENAME is {slurmd}"
    assert {w[0] for w in where.values()} == set(NODES)
    # every task of one node ran in that node's agent step: one step per node, not per task
    steps: Dict[str, Set[str]] = {}
    for slurmd, _, step, _ in where.values():
        steps.setdefault(slurmd, set()).add(step)
    assert all(len(s) == 1 for s in steps.values()), steps
    assert len({s for ss in steps.values() for s in ss}) == 4
    report = b.report("gov")
    its = iterations(report, "where")
    assert len(its) == 32 and all(e["state"] == "SUCCEED" for e in its.values())
    used = {it: nodes_of(e["runtime"]["allocation"]) for it, e in its.items()}
    assert all(len(n) == 1 for n in used.values())
    assert {it: [where[it][0]] for it in its} == used, "the report's allocation is not where the task ran"
    by_partition: Dict[str, Set[str]] = {}
    for node, _, _, partition in where.values():
        by_partition.setdefault(partition, set()).add(node)
    assert by_partition == {"partition-0": {"n1", "n2"}, "partition-1": {"n3", "n4"}}
    aux = b.aux("gov")
    log = (aux / "service.log").read_text()
    assert re.search(r"partition partition-0 registered from n1 .*: 2 nodes, 8 cores", log), log
    assert re.search(r"partition partition-1 registered from n3 .*: 2 nodes, 8 cores", log), log
    for i, owned in ((0, ["n1", "n2"]), (1, ["n3", "n4"])):
        part = aux / f"partition-{i}"
        assert "registered" in (part / "service.log").read_text()
        assert sorted(p.stem for p in (part / "agents").glob("*.log") if not p.name.endswith(".srun.log")) == owned
    assert json.loads((aux / "final_status").read_text())["Resources"]["TotalCores"] == 16


def test_srunmpi_ranks_on_two_nodes(cluster: None, tmp_path: Path) -> None:
    jobs = [{"name": "mpi", "execution": {"exec": "hostname", "model": "srunmpi", "stdout": "mpi.out",
                                          "stderr": "mpi.err"},
             "resources": {"numNodes": {"exact": 2}, "numCores": {"exact": 2}}},
            {"name": "mpi1", "execution": {"exec": "hostname", "model": "srunmpi", "stdout": "mpi1.out"},
             "resources": {"numCores": {"exact": 3}}}]
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": jobs}, FINISH])
    b = run_batch(tmp_path, f"{SERVICE} --file-path jobs.json --wd {tmp_path} --id mpi --report-format json\n",
                  "-N", "2", "--ntasks-per-node", "4")
    report = b.report("mpi")
    assert report["mpi"]["state"] == "SUCCEED", report["mpi"]
    alloc = cores_of(report["mpi"]["runtime"]["allocation"])
    assert sorted(alloc) == ["n1", "n2"] and all(len(c) == 2 for c in alloc.values()), alloc
    ranks = (tmp_path / "mpi.out").read_text().split()
    assert sorted(ranks) == ["n1", "n1", "n2", "n2"], (ranks, (tmp_path / "mpi.err").read_text())
    assert report["mpi1"]["state"] == "SUCCEED", report["mpi1"]
    one = cores_of(report["mpi1"]["runtime"]["allocation"])
    expected = sorted(n for n, cores in one.items() for _ in cores)
    assert sorted((tmp_path / "mpi1.out").read_text().split()) == expected


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
        "SLURM_TASKS_PER_NODE": tpn,
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


def test_task_environment(cluster: None, tmp_path: Path) -> None:
    """Per-task SLURM_* and QCG_PM_* variables describe the task's own allocation; the task
    is bound to real CPUs of its node (positions mapped onto what the agent may use)."""
    jobs = [{"name": "one", "execution": {"script": ENV_SCRIPT}, "resources": {"numCores": {"exact": 1}}},
            {"name": "three", "execution": {"script": ENV_SCRIPT}, "resources": {"numCores": {"exact": 3}}},
            {"name": "wide", "execution": {"script": ENV_SCRIPT},
             "resources": {"numNodes": {"exact": 2}, "numCores": {"exact": 2}}},
            {"name": "whole", "execution": {"script": ENV_SCRIPT}, "resources": {"numNodes": {"exact": 1}}}]
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": jobs}, FINISH])
    b = run_batch(tmp_path, f"{SERVICE} --file-path jobs.json --wd {tmp_path} --id env --report-format json\n",
                  "-N", "4", "--ntasks-per-node", "4")
    report = b.report("env")
    real = sorted(os.sched_getaffinity(0))  # the nodes share this machine's CPUs
    shapes = {"one": [1], "three": [3], "wide": [2, 2], "whole": [4]}
    for name, shape in shapes.items():
        assert report[name]["state"] == "SUCCEED", report[name]
        alloc = cores_of(report[name]["runtime"]["allocation"])
        assert [len(c) for c in alloc.values()] == shape, (name, alloc)
        env = _read_env(tmp_path / f"env.{name}")
        _check_task_env(env, alloc, name)
        cpu_set = [int(c) for c in env["QCG_PM_CPU_SET"].split(",")]
        assert set(cpu_set) <= set(real), (name, cpu_set, real)
        # k cores on the first node get min(k, real CPUs) distinct CPUs, and the task is bound to them
        assert len(cpu_set) == len(set(cpu_set)) == min(shape[0], len(real)), (name, cpu_set)
        bound = [int(c) for c in (tmp_path / f"cpus.{name}").read_text().strip().split(",")]
        assert bound == sorted(cpu_set), (name, bound, cpu_set)


CANCEL_DRIVER = '''
import psutil
from qcg_pilotjob.slurm.hostlist import expand_hostlist

def main():
    first = expand_hostlist(os.environ["SLURM_JOB_NODELIST"])[0]
    m = LocalManager(["--wd", WD, "--id", "cancel", "--report-format", "json"], {"poll_delay": 0.5})
    names = [f"s{i}" for i in range(8)]
    jobs = Jobs()
    for name in names:
        jobs.add(name=name, exec="sleep", args=["60"], numCores=1)
    m.submit(jobs)

    def running():
        data = info(m, names)
        if all(d["status"] == "EXECUTING" for d in data.values()):
            return data
    data = until(running, 60, "8 tasks executing")
    summary["first"] = first
    summary["allocations"] = {n: d["runtime"]["allocation"] for n, d in data.items()}
    victim = next(n for n in names if not summary["allocations"][n].startswith(first + "["))
    summary["victim"] = victim

    def sleeps():  # this run's sleep processes by job name (all nodes are this host)
        out = {}
        for p in psutil.process_iter(["cmdline"]):
            try:
                if p.info["cmdline"] == ["sleep", "60"] and p.cwd() == WD and p.status() != psutil.STATUS_ZOMBIE:
                    out[p.environ().get("QCG_PM_JOB_NAME")] = p
            except psutil.Error:
                continue
        return out
    proc = until(lambda: sleeps().get(victim), 10, "the victim's process")
    summary["victim_node"] = proc.environ().get("SLURMD_NODENAME")
    start = time.monotonic()
    m.cancel([victim])
    summary["victim_state"] = m.wait4([victim], timeout=30)[victim]
    summary["cancel_seconds"] = time.monotonic() - start
    summary["victim_gone"] = until(lambda: victim not in sleeps(), 10, "the victim's exit")
    summary["victim_info"] = info(m, [victim])[victim]
    summary["others"] = {n: d["status"] for n, d in info(m, names).items() if n != victim}
    summary["others_running"] = sorted(sleeps())
    m.finish()
    summary["finished"] = True
    summary["left_running"] = sorted(sleeps())
'''


def test_cancel_task_on_remote_node(cluster: None, tmp_path: Path) -> None:
    b = run_batch(tmp_path, write_driver(tmp_path, CANCEL_DRIVER) + "\n", "-N", "4", "--ntasks-per-node", "4")
    s = b.summary()
    assert s["first"] == "n1"
    victim = s["victim"]
    node = nodes_of(s["allocations"][victim])
    assert node != ["n1"] and len(node) == 1
    assert s["victim_node"] == node[0]  # the process runs in the agent step of its node
    assert s["victim_state"] == "CANCELED"
    assert s["cancel_seconds"] < 5, s["cancel_seconds"]
    assert s["victim_gone"]
    assert s["victim_info"]["messages"] == "canceled by user"
    assert s["others"] == {n: "EXECUTING" for n in s["allocations"] if n != victim}
    assert s["others_running"] == sorted(s["others"])
    assert s["left_running"] == []
    assert s["finished"]
    report = b.report("cancel")
    assert report[victim]["state"] == "CANCELED"
    # finish stopped the others: nothing is left running
    assert {n: report[n]["state"] for n in s["others"]} == {n: "CANCELED" for n in s["others"]}
    assert all(report[n]["runtime"]["allocation"] == a for n, a in s["allocations"].items())


GOVERNOR_DRIVER = '''
def main():
    with open(os.path.join(WD, ".qcgpjm-service-gov", "address")) as fh:
        address = fh.read().strip()
    summary["address"] = address
    m = Manager(address, {"poll_delay": 0.5})
    summary["resources"] = m.resources()  # at once: the address is there once the partitions registered
    jobs = Jobs()
    jobs.add(name="a", script="echo $(hostname) > a.$it", numCores=1, iteration=16, wd="a")
    jobs.add(name="mpi", exec="hostname", model="srunmpi", numNodes={"exact": 2}, numCores={"exact": 2},
             stdout="mpi.out")
    jobs.add(name="c", exec="/bin/true", after=["a"])
    summary["submitted"] = m.submit(jobs)
    summary["states"] = m.wait4(["a", "mpi", "c"], timeout=60)
    summary["status"] = m.system_status()
    summary["a"] = info(m, ["a"], withChilds=True)["a"]
    m.finish()
    summary["finished"] = True
'''


def test_api_governor_in_allocation(cluster: None, tmp_path: Path) -> None:
    """The Python API drives a governor (two partitions) through the address in its aux dir."""
    addr = tmp_path / ".qcgpjm-service-gov" / "address"
    b = run_batch(tmp_path, f"""
        {SERVICE} --slurm-partition-nodes 2 --net --wd {tmp_path} --id gov --report-format json &
        SERVICE_PID=$!
        for i in $(seq 600); do [ -s {addr} ] && break; sleep 0.1; done
        {write_driver(tmp_path, GOVERNOR_DRIVER)} || kill $SERVICE_PID
        wait $SERVICE_PID
        echo "service exit code $?"
        """, "-N", "4", "--ntasks-per-node", "4")
    s = b.summary()
    assert "service exit code 0" in b.out, b.out
    assert s["address"].startswith("tcp://")
    assert s["resources"] == {"total_nodes": 4, "total_cores": 16, "used_cores": 0, "free_cores": 16}
    assert s["submitted"] == ["a", "mpi", "c"]
    assert s["states"] == {"a": "SUCCEED", "mpi": "SUCCEED", "c": "SUCCEED"}
    assert s["status"]["System"]["Partitions"] == 2
    assert s["status"]["Resources"]["TotalCores"] == 16
    hosts = {f.read_text().strip() for f in (tmp_path / "a").glob("a.*")}
    childs = s["a"]["childs"]
    assert len(childs) == 16 and all(c["state"] == "SUCCEED" for c in childs)
    assert hosts == {n for c in childs for n in nodes_of(c["runtime"]["allocation"])}
    assert len((tmp_path / "mpi.out").read_text().split()) == 4
    assert len(set((tmp_path / "mpi.out").read_text().split())) == 2
    assert s["finished"]
    assert not addr.exists()  # removed when the service ended


LOST_AGENT_DRIVER = '''
import signal
import psutil

def main():
    release = os.path.join(WD, "release")
    m = LocalManager(["--wd", WD, "--id", "lost", "--report-format", "json"], {"poll_delay": 0.5})
    jobs = Jobs()
    # long: one task per core of both nodes, until released; short: queued behind them
    jobs.add(name="long", script=f"while [ ! -e {release} ]; do sleep 0.05; done; hostname", numCores=1,
             iteration=8)
    jobs.add(name="short", script="echo $SLURMD_NODENAME $(hostname) > out.$it", numCores=1, iteration=24,
             wd="short")
    m.submit(jobs)

    def childs(name, pred):
        data = info(m, [name], withChilds=True)[name]["childs"]
        return data if all(pred(c) for c in data) else None
    longs = until(lambda: childs("long", lambda c: c["state"] == "EXECUTING"), 60, "8 long tasks executing")
    summary["long_allocations"] = {c["iteration"]: c["runtime"]["allocation"] for c in longs}
    summary["long_pids"] = until(lambda: all(c["runtime"].get("pid") for c in childs("long", lambda c: True))
                                 or None, 30, "pids of the long tasks")
    on_n2 = [c["iteration"] for c in longs if c["runtime"]["allocation"].startswith("n2[")]
    summary["on_n2"] = on_n2
    # the agent of n2 of this run (its log is in this run's aux dir)
    agents = [p for p in psutil.process_iter(["pid", "cmdline"])
              if (p.info["cmdline"] or [])[1:3] == ["-m", "qcg_pilotjob.launcher.agent"]
              and "n2" in p.info["cmdline"] and any(m.aux_dir in a for a in p.info["cmdline"])]
    summary["agents_found"] = len(agents)
    agents[0].send_signal(signal.SIGKILL)
    start = time.monotonic()
    failed = until(lambda: childs("long", lambda c: c["iteration"] not in on_n2 or c["state"] == "FAILED"), 30,
                   "n2's tasks failed")
    summary["lost_seconds"] = time.monotonic() - start
    summary["n2_messages"] = {c["iteration"]: c.get("messages") for c in failed if c["iteration"] in on_n2}
    summary["resources_after_loss"] = m.resources()
    def orphans():  # the lost agent's tasks: the partition ends them in a step of their own on n2
        found = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                env = p.environ()
                if env.get("QCG_PM_JOB_NAME") == "long" and env.get("SLURMD_NODENAME") == "n2" and p.cwd() == WD \
                        and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p.pid)
            except psutil.Error:
                continue
        return found
    until(lambda: not orphans(), 20, "the lost agent's tasks ended")
    summary["n2_tasks_alive"] = len(orphans())
    shorts = info(m, ["short"], withChilds=True)["short"]["childs"]
    summary["short_before_release"] = sorted({c["state"] for c in shorts})
    open(release, "w").close()
    summary["states"] = m.wait4(["long", "short"], timeout=60)
    summary["long"] = info(m, ["long"], withChilds=True)["long"]["childs"]
    summary["short"] = info(m, ["short"], withChilds=True)["short"]["childs"]
    m.finish()
    summary["finished"] = True
'''


def test_lost_agent_node_left_out(cluster: None, tmp_path: Path) -> None:
    """The agent of n2 is killed: its tasks fail naming it, later tasks run on n1 only."""
    b = run_batch(tmp_path, write_driver(tmp_path, LOST_AGENT_DRIVER) + "\n", "-N", "2", "--ntasks-per-node", "4")
    s = b.summary()
    assert s["agents_found"] == 1
    assert s["long_pids"] is True  # agents report their tasks' pids to the front
    assert sorted(nodes_of(a)[0] for a in s["long_allocations"].values()) == ["n1"] * 4 + ["n2"] * 4
    assert len(s["on_n2"]) == 4
    assert s["lost_seconds"] < 10, s["lost_seconds"]
    for it, msg in s["n2_messages"].items():
        assert msg and "node agent on n2 lost" in msg and "left on n2 were ended" in msg, (it, msg)
    assert s["n2_tasks_alive"] == 0  # regression: a lost agent's tasks ran on, unsupervised
    assert s["resources_after_loss"]["used_cores"] == 4
    # the lost node leaves the totals (regression: they kept its cores)
    assert s["resources_after_loss"]["total_cores"] == 4 and s["resources_after_loss"]["free_cores"] == 0
    assert s["resources_after_loss"]["total_nodes"] == 1
    assert s["short_before_release"] == ["QUEUED"]
    assert s["states"] == {"long": "FAILED", "short": "SUCCEED"}
    long_states = {c["iteration"]: c["state"] for c in s["long"]}
    assert long_states == {it: ("FAILED" if it in s["on_n2"] else "SUCCEED") for it in range(8)}
    assert len(s["short"]) == 24
    assert all(c["state"] == "SUCCEED" and nodes_of(c["runtime"]["allocation"]) == ["n1"] for c in s["short"])
    outs = {f.read_text().strip() for f in (tmp_path / "short").glob("out.*")}
    assert outs == {"n1 n1"}
    assert s["finished"]
    log = (b.aux("lost") / "service.log").read_text()
    assert "node agent on n2 lost" in log


def test_disable_nl_one_step_per_task(cluster: None, tmp_path: Path) -> None:
    """--disable-nl: no agents; every task is its own srun step on its node."""
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": [WHERE]}, FINISH])
    b = run_batch(tmp_path, f"""
        {SERVICE} --disable-nl --file-path jobs.json --wd {tmp_path} --id nl --report-format json
        echo "service exit code $?"
        """, "-N", "4", "--ntasks-per-node", "4")
    assert "service exit code 0" in b.out, b.out
    where = read_where(tmp_path)
    assert sorted(where) == list(range(32))
    assert all(slurmd == host for slurmd, host, _ in where.values())  # no agent: no partition in the parent
    assert {w[0] for w in where.values()} == set(NODES)
    steps = [w[2] for w in where.values()]
    assert all(s.isdigit() for s in steps) and len(set(steps)) == 32, steps  # one srun step each
    its = iterations(b.report("nl"), "where")
    assert all(e["state"] == "SUCCEED" for e in its.values()) and len(its) == 32
    assert {it: nodes_of(e["runtime"]["allocation"]) for it, e in its.items()} == \
        {it: [w[0]] for it, w in where.items()}
    assert not (b.aux("nl") / "agents").exists()


def test_regression_disable_nl_task_env(cluster: None, tmp_path: Path) -> None:
    """--disable-nl: a task on several nodes (or on cores of two nodes) failed at once with
    ``srun: error: Invalid numeric value "1,1" for --ntasks-per-node`` (srun read the task's
    SLURM_NTASKS_PER_NODE); and srun replaced the task's SLURM_* variables by its step's."""
    jobs = [{"name": "wide", "execution": {"script": ENV_SCRIPT, "stderr": "wide.err"},
             "resources": {"numNodes": {"exact": 2}, "numCores": {"exact": 1}}},
            {"name": "three", "execution": {"script": ENV_SCRIPT, "stderr": "three.err"},
             "resources": {"numCores": {"exact": 3}}},
            {"name": "filler", "execution": {"exec": "/bin/true"}, "resources": {"numCores": {"exact": 1}}}]
    write_json(tmp_path / "jobs.json", [{"request": "submit", "jobs": jobs}, FINISH])
    b = run_batch(tmp_path, f"{SERVICE} --disable-nl --file-path jobs.json --wd {tmp_path} --id nl2 "
                            f"--report-format json\n", "-N", "2", "--ntasks-per-node", "2")
    report = b.report("nl2")
    for name in ("wide", "three"):
        assert report[name]["state"] == "SUCCEED", (report[name], (tmp_path / f"{name}.err").read_text())
        alloc = cores_of(report[name]["runtime"]["allocation"])
        _check_task_env(_read_env(tmp_path / f"env.{name}"), alloc, name)
    assert [len(c) for c in cores_of(report["wide"]["runtime"]["allocation"]).values()] == [1, 1]


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


READY_DRIVER = '''
def main():
    for ident in ("single", "gov"):
        path = os.path.join(WD, f".qcgpjm-service-{ident}", "address")
        address = until(lambda: os.path.isfile(path) and open(path).read().strip(), 60, f"{path}")
        m = Manager(address, {"poll_delay": 0.5})
        summary[ident] = {"resources": m.resources()}
        # a submit right away fits
        summary[ident]["submitted"] = m.submit(Jobs().add(name="x", exec="/bin/true", numCores=2))
        summary[ident]["states"] = m.wait4(["x"], timeout=30)
        m.finish()
'''


def test_regression_address_written_when_ready(cluster: None, tmp_path: Path) -> None:
    """The address file appeared before the node agents (single manager) or the partition
    managers (governor) were up, so a client that found it and submitted at once got
    "no resources available (no partition has registered yet)"."""
    b = run_batch(tmp_path, f"""
        {SERVICE} --net --wd {tmp_path} --id single --report-format json &
        P1=$!
        {SERVICE} --slurm-partition-nodes 1 --net --wd {tmp_path} --id gov --report-format json &
        P2=$!
        {write_driver(tmp_path, READY_DRIVER)} || kill $P1 $P2
        wait $P1; echo "single exit code $?"
        wait $P2; echo "gov exit code $?"
        """, "-N", "2", "--ntasks-per-node", "2")
    s = b.summary()
    for ident in ("single", "gov"):
        assert s[ident]["resources"] == {"total_nodes": 2, "total_cores": 4, "used_cores": 0, "free_cores": 4}
        assert s[ident]["states"] == {"x": "SUCCEED"}
        assert f"{ident} exit code 0" in b.out


CANCEL_STEPS_DRIVER = '''
import subprocess
from qcg_pilotjob.slurm.srun import cancel_steps, parse_steps, squeue_steps_command

JOB = os.environ["SLURM_JOB_ID"]

def steps():
    out = subprocess.run(squeue_steps_command(JOB), capture_output=True, text=True, timeout=30).stdout
    return {name: step for step, name in parse_steps(out, JOB)}

def main():
    both = {"qcgpj-sleeper", "qcgpj-keeper"}
    summary["before"] = until(lambda: (lambda s: s if both <= set(s) else None)(steps()), 60, "both steps")
    start = time.monotonic()
    summary["ended"] = cancel_steps(JOB, ["qcgpj-sleeper", "no-such-step"])
    until(lambda: "qcgpj-sleeper" not in steps(), 20, "the sleeper step gone")
    summary["gone_seconds"] = time.monotonic() - start
    summary["after"] = steps()
    summary["other_job"] = cancel_steps("999999999", ["qcgpj-keeper"])
    summary["keeper_ended"] = cancel_steps(JOB, ["qcgpj-keeper"], signal=None)
'''


def test_cancel_steps_by_name(cluster: None, tmp_path: Path) -> None:
    """slurm.srun.cancel_steps ends the named step of this allocation, and only that one
    (what the governor does to a lost partition's step and its agents' steps)."""
    from qcg_pilotjob.slurm.srun import step_command

    sleeper = shlex.join(step_command("n2", ["sleep", "300"], name="qcgpj-sleeper", unbuffered=True))
    keeper = shlex.join(step_command("n1", ["sleep", "300"], name="qcgpj-keeper", unbuffered=True,
                                     oversubscribe=True))
    b = run_batch(tmp_path, f"""
        {sleeper} &
        SLEEPER=$!
        {keeper} &
        KEEPER=$!
        {write_driver(tmp_path, CANCEL_STEPS_DRIVER)}
        wait $SLEEPER; echo "sleeper exit code $?"
        wait $KEEPER; echo "keeper exit code $?"
        """, "-N", "2", timeout=90)
    s = b.summary()
    before = s["before"]
    assert all(re.fullmatch(rf"{b.job_id}\.\d+", before[n]) for n in ("qcgpj-sleeper", "qcgpj-keeper")), before
    assert s["ended"] == [before["qcgpj-sleeper"]]
    assert s["gone_seconds"] < 10, s["gone_seconds"]
    assert s["after"].get("qcgpj-keeper") == before["qcgpj-keeper"]  # the other step was left alone
    assert s["other_job"] == []
    assert s["keeper_ended"] == [before["qcgpj-keeper"]]
    codes = dict(re.findall(r"(sleeper|keeper) exit code (\d+)", b.out))
    assert codes.keys() == {"sleeper", "keeper"} and "0" not in codes.values(), b.out
