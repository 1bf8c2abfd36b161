#!/usr/bin/env python3
"""Benchmark: N ``/bin/true`` tasks through a governor with 1, 2 and 4 local partitions on
the same total cores (``--nodes 4,4,4,4``), and single-manager mode for comparison.
With ``--dry-run`` the partitions start no processes, which measures routing alone.
Not a test.

    python scripts/bench_governor.py -n 20000
    python scripts/bench_governor.py -n 100000 --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def run(n: int, shape: str, partitions: int, dry_run: bool, insecure: bool = False) -> float:
    if shape == "iterations":
        jobs = [{"name": "bench", "iteration": {"stop": n}, "execution": {"exec": "/bin/true"}}]
    else:
        jobs = [{"name": f"j{i}", "execution": {"exec": "/bin/true"}} for i in range(n)]
    reqs = [{"request": "submit", "jobs": jobs}, {"request": "control", "command": "finishAfterAllTasksDone"}]
    with tempfile.TemporaryDirectory() as wd:
        path = os.path.join(wd, "reqs.json")
        with open(path, "w") as fh:
            json.dump(reqs, fh)
        cmd = [sys.executable, "-m", "qcg_pilotjob.service", "--file-path", path, "--wd", wd,
               "--nodes", "4,4,4,4", "--report-format", "none"]
        if partitions:
            cmd += ["--slurm-partition-nodes", str(4 // partitions)]
        if dry_run:
            cmd.append("--dry-run")
        if insecure:
            cmd.append("--insecure-net")  # (governor <-> partitions without CURVE)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False)
        wall = time.perf_counter() - t0
        aux = next(d for d in os.listdir(wd) if d.startswith(".qcgpjm-service-"))
        with open(os.path.join(wd, aux, "final_status")) as fh:
            done = json.load(fh)["IterationStats"]["FinishedIterations"]
    if proc.returncode != 0 or done != n:
        raise SystemExit(f"run failed: rc={proc.returncode}, {done} of {n} succeeded")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20000, help="number of tasks")
    ap.add_argument("--shape", choices=("jobs", "iterations"), default="jobs")
    ap.add_argument("--dry-run", action="store_true", help="partitions start no processes")
    ap.add_argument("--insecure-net", action="store_true", help="no CURVE between governor and partitions")
    args = ap.parse_args()
    print(f"{args.n} tasks ({args.shape}{', dry run' if args.dry_run else ''}"
          f"{', --insecure-net' if args.insecure_net else ''}) on --nodes 4,4,4,4")
    print(f"{'mode':>24} {'wall s':>8} {'tasks/s':>8}")
    for partitions in (0, 1, 2, 4):
        wall = run(args.n, args.shape, partitions, args.dry_run, args.insecure_net)
        mode = "single manager" if partitions == 0 else f"governor, {partitions} partition(s)"
        print(f"{mode:>24} {wall:8.2f} {args.n / wall:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
