#!/usr/bin/env python3
"""Benchmark: N ``/bin/true`` tasks through ``qcg-pm-service`` in file mode.

Prints wall time, tasks per second and the service's peak RSS. Not a test.

    python scripts/bench_file_mode.py -n 10000 --nodes 16
    python scripts/bench_file_mode.py -n 10000 --nodes 16 --shape iterations
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def requests(n: int, shape: str) -> list:
    if shape == "iterations":
        jobs = [{"name": "bench", "iteration": {"stop": n}, "execution": {"exec": "/bin/true"}}]
        reqs = [{"request": "submit", "jobs": jobs}]
    elif shape == "requests":
        reqs = [{"request": "submit", "jobs": [{"name": f"j{i}", "execution": {"exec": "/bin/true"}}]}
                for i in range(n)]
    else:
        reqs = [{"request": "submit",
                 "jobs": [{"name": f"j{i}", "execution": {"exec": "/bin/true"}} for i in range(n)]}]
    reqs.append({"request": "control", "command": "finishAfterAllTasksDone"})
    return reqs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10000, help="number of tasks")
    ap.add_argument("--nodes", default="16", help="--nodes given to the service")
    ap.add_argument("--shape", choices=("jobs", "iterations", "requests"), default="jobs",
                    help="N jobs in one submit, one job of N iterations, or N submit requests")
    ap.add_argument("--report-format", default="text")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as wd:
        path = os.path.join(wd, "reqs.json")
        with open(path, "w") as fh:
            json.dump(requests(args.n, args.shape), fh)
        cmd = [sys.executable, "-m", "qcg_pilotjob.service", "--file-path", path, "--wd", wd,
               "--nodes", args.nodes, "--report-format", args.report_format]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False)
        wall = time.perf_counter() - t0
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        aux = next(d for d in os.listdir(wd) if d.startswith(".qcgpjm-service-"))
        with open(os.path.join(wd, aux, "final_status")) as fh:
            status = json.load(fh)
    done = status["IterationStats"]["FinishedIterations"]
    print(f"tasks={args.n} shape={args.shape} nodes={args.nodes} rc={proc.returncode} succeeded={done}")
    print(f"wall={wall:.2f}s tasks/s={args.n / wall:.0f} peak_rss={rss_kib / 1024:.1f}MiB")
    return 0 if proc.returncode == 0 and done == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
