"""Partition managers and node agents inside a real allocation: where tasks run, cancelling
a task on another node's agent, and a lost node agent (helpers: :mod:`tests.slurm.slurm_helpers`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Set

import pytest

from .slurm_helpers import (
    FINISH,
    NODES,
    SERVICE,
    WHERE,
    iterations,
    nodes_of,
    read_where,
    run_batch,
    write_driver,
    write_json,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


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
