#!/usr/bin/env python3
"""Throughput of qcg_pilotjob inside a Slurm allocation of the test cluster.

Runs N single-core ``/bin/true`` tasks (default 2,000) in ``sbatch -N 4 --ntasks-per-node 4``
twice: through the node agents (one ``srun --overlap`` step per node) and with
``--disable-nl`` (one ``srun`` step per task). For each it prints tasks/s over

* ``service``: the service command's own wall time, timed inside the batch script (start-up
  with the agents, all tasks, shutdown), not sbatch's or the queue's;
* ``tasks``: the first task's start to the last task's end, from the job report.

Needs the test cluster (``eval "$(scripts/slurm-cluster-start)"``). Usage::

    python scripts/bench_slurm.py [--tasks 2000] [--modes agents,disable-nl] [--partition-nodes 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUED", "SIGNALING",
           "STAGE_OUT", "STOPPED"}


def job_state(job_id: str) -> Tuple[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30,
                         check=False).stdout
    state = re.search(r"\bJobState=(\S+)", out)
    code = re.search(r"\bExitCode=(\S+)", out)
    return (state.group(1) if state else "UNKNOWN", code.group(1) if code else "")


def run_mode(mode: str, tasks: int, nodes: int, cores: int, partition_nodes: Optional[int], base: str,
             timeout: float) -> Dict[str, float]:
    wd = os.path.join(base, mode)
    os.makedirs(wd)
    requests = [{"request": "submit", "jobs": [{"name": "true", "iteration": {"stop": tasks},
                                                "execution": {"exec": "/bin/true"},
                                                "resources": {"numCores": {"exact": 1}}}]},
                {"request": "control", "command": "finishAfterAllTasksDone"}]
    with open(os.path.join(wd, "jobs.json"), "w") as fh:
        json.dump(requests, fh)
    args = [sys.executable, "-m", "qcg_pilotjob.service", "--file-path", "jobs.json", "--wd", wd, "--id", "bench",
            "--report-format", "json", "--log", "warning"]
    if mode == "disable-nl":
        args.append("--disable-nl")
    if partition_nodes:
        args += ["--slurm-partition-nodes", str(partition_nodes)]
    script = os.path.join(wd, "run.sh")
    with open(script, "w") as fh:
        fh.write("#!/bin/bash\n"
                 "T0=$(date +%s.%N)\n"
                 f"{shlex.join(args)}\n"
                 "RC=$?\n"
                 "T1=$(date +%s.%N)\n"
                 'echo "service exit code $RC seconds $(awk "BEGIN {print $T1 - $T0}")"\n')
    os.chmod(script, 0o755)
    out_path = os.path.join(wd, "out.txt")
    res = subprocess.run(["sbatch", "--parsable", "-J", f"qcgpj-bench-{mode}", "-N", str(nodes),
                          "--ntasks-per-node", str(cores), "-D", wd, "-o", out_path, script],
                         capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0:
        raise SystemExit(f"sbatch failed: {res.stderr.strip()}")
    job_id = res.stdout.strip().split(";")[0]
    state = "PENDING"
    try:
        deadline = time.monotonic() + timeout
        while True:
            state, code = job_state(job_id)
            if state not in _ACTIVE:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{mode}: job {job_id} still {state} after {timeout:g}s (see {wd})")
            time.sleep(0.2)
    finally:
        if state in _ACTIVE:
            subprocess.run(["scancel", job_id], capture_output=True, timeout=30, check=False)
    with open(out_path) as fh:
        out = fh.read()
    m = re.search(r"service exit code (\d+) seconds ([\d.]+)", out)
    if state != "COMPLETED" or m is None or m.group(1) != "0":
        raise SystemExit(f"{mode}: job {job_id} ended {state} ({code}); output:\n{out}")
    wall = float(m.group(2))
    starts: List[datetime.datetime] = []
    ends: List[datetime.datetime] = []
    states: Dict[str, int] = {}
    with open(os.path.join(wd, ".qcgpjm-service-bench", "jobs.report")) as fh:
        for line in fh:
            entry = json.loads(line)
            if ":" not in entry["name"]:
                continue
            states[entry["state"]] = states.get(entry["state"], 0) + 1
            hist = {h["state"]: datetime.datetime.fromisoformat(h["date"]) for h in entry["history"]}
            starts.append(hist["EXECUTING"])
            ends.append(hist[entry["state"]])
    if states != {"SUCCEED": tasks}:
        raise SystemExit(f"{mode}: task states {states}, expected {tasks} SUCCEED (see {wd})")
    phase = (max(ends) - min(starts)).total_seconds()
    return {"wall": wall, "phase": phase, "service_rate": tasks / wall, "task_rate": tasks / phase}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--cores", type=int, default=4, help="--ntasks-per-node of the allocation")
    parser.add_argument("--modes", default="agents,disable-nl", help="comma list of agents, disable-nl")
    parser.add_argument("--partition-nodes", type=int, default=None,
                        help="run a governor with partitions of this many nodes")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--keep", action="store_true", help="keep the working directories")
    args = parser.parse_args()
    if not os.environ.get("SLURM_CONF"):
        raise SystemExit('SLURM_CONF is not set: start the test cluster with eval "$(scripts/slurm-cluster-start)"')
    base = tempfile.mkdtemp(prefix="qcgpj-bench-")
    try:
        print(f"{args.tasks} x /bin/true, sbatch -N {args.nodes} --ntasks-per-node {args.cores}"
              + (f", --slurm-partition-nodes {args.partition_nodes}" if args.partition_nodes else ""))
        print(f"{'mode':<12} {'service s':>10} {'tasks/s':>9} {'task phase s':>13} {'tasks/s':>9}")
        for mode in args.modes.split(","):
            if mode not in ("agents", "disable-nl"):
                raise SystemExit(f"unknown mode {mode!r}")
            r = run_mode(mode, args.tasks, args.nodes, args.cores, args.partition_nodes, base, args.timeout)
            print(f"{mode:<12} {r['wall']:>10.2f} {r['service_rate']:>9.0f} {r['phase']:>13.2f} "
                  f"{r['task_rate']:>9.0f}", flush=True)
    finally:
        if args.keep:
            print(f"working directories kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
