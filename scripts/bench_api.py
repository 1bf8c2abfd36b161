#!/usr/bin/env python3
"""Benchmark: request latency and submit rate over the ZMQ interface. Not a test.

Starts a service (``--net --nodes 16``) and measures, over msgpack and over JSON, the
median and p99 round trip of ``jobStatus`` and of a one-job ``submit``, and submits per
second.

    python scripts/bench_api.py -n 2000
    python scripts/bench_api.py -n 2000 --insecure-net     # without CURVE, for comparison
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from typing import List

from qcg_pilotjob.api import Jobs, LocalManager, Manager


def pct(values: List[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="requests per measurement")
    ap.add_argument("--nodes", default="16")
    ap.add_argument("--insecure-net", action="store_true", help="no CURVE (compare the cost of authentication)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as wd:
        extra = ["--insecure-net"] if args.insecure_net else []
        local = LocalManager(["--wd", wd, "--nodes", args.nodes, "--report-format", "none", *extra])
        try:
            local.submit(Jobs().add(name="probe", exec="/bin/true"))
            local.wait4("probe")
            print(f"{'encoding':8} {'request':10} {'median ms':>10} {'p99 ms':>8} {'req/s':>8}")
            for encoding in ("msgpack", "json"):
                client = Manager(local._address, {"encoding": encoding})
                for what in ("jobStatus", "submit"):
                    lat = []
                    t0 = time.perf_counter()
                    for i in range(args.n):
                        if what == "jobStatus":
                            req = {"request": "jobStatus", "jobNames": ["probe"]}
                        else:
                            req = {"request": "submit", "jobs": [
                                {"name": f"{encoding}-{i}", "execution": {"exec": "/bin/true"}}]}
                        s = time.perf_counter()
                        reply = client._send(req)
                        lat.append((time.perf_counter() - s) * 1000)
                        assert reply["code"] == 0, reply
                    total = time.perf_counter() - t0
                    print(f"{encoding:8} {what:10} {statistics.median(lat):10.3f} {pct(lat, 99):8.3f} "
                          f"{args.n / total:8.0f}")
                client._disconnect()
            local.wait4all()
        finally:
            local.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
