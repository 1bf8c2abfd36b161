"""``python -m benchmarks``: ours against QCG-PilotJob 0.14.2 and the spawn floor.

Each row runs both implementations in alternation (ours first on odd repetitions, the
reference first on even ones), ``--reps`` times, and prints the medians and their ratio;
``--json`` writes every run. The reference is installed once into ``.cache/qcgpj-0.14.2``
(PyPI). ``--quick`` is the small version CI runs so that this cannot rot.

    python -m benchmarks                 # the full table (minutes)
    python -m benchmarks --quick --json /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from .floor import spawn_floor
from .workloads import Run, Side, api, file_mode

Row = Callable[[Side], Run]


def _rows(n: int, api_n: int, nodes: str) -> Dict[str, Row]:
    return {
        f"file mode, {n} iterations": lambda s: file_mode(s, n, "iterations", nodes),
        f"file mode, {n} jobs": lambda s: file_mode(s, n, "jobs", nodes),
        f"API, {api_n} iterations": lambda s: api(s, api_n, "iterations", nodes),
        f"API, {api_n} jobs": lambda s: api(s, api_n, "jobs", nodes),
        "file mode, 10 jobs (start to exit)": lambda s: file_mode(s, 10, "jobs", nodes),
    }


def _floor(n: int, reps: int) -> Dict[str, Any]:
    """The spawn floor's rate and the CPU one ``/bin/true`` costs (to take out of the service's)."""
    rates, cpu = [], []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = spawn_floor(n)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rates.append(n / wall)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / n)
    return {"rate": statistics.median(rates), "task_cpu": statistics.median(cpu), "rates": rates}


def _summary(runs: List[Run], task_cpu: float) -> Dict[str, Any]:
    out: Dict[str, Any] = {"rate": statistics.median(r.rate for r in runs), "rates": [r.rate for r in runs],
                           "wall": statistics.median(r.wall for r in runs)}
    if any(r.cpu for r in runs):  # file mode: CPU of the service per task, the tasks' own taken out
        out["service_cpu_ms"] = statistics.median((r.cpu / r.tasks - task_cpu) * 1000 for r in runs)
        out["maxrss_mib"] = statistics.median(r.maxrss_kib for r in runs) / 1024
    if any(r.ready for r in runs):
        out["ready"] = statistics.median(r.ready for r in runs)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10000, help="tasks of the file-mode rows")
    ap.add_argument("--api-n", type=int, default=5000, help="tasks of the API rows")
    ap.add_argument("--nodes", default="64", help="--nodes of every run (64: one node of 64 cores)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition (CI)")
    ap.add_argument("--ours-only", action="store_true", help="no reference (no PyPI)")
    ap.add_argument("--json", help="write every run here")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.api_n, args.reps = 300, 200, 1
    sides = [Side.ours()] + ([] if args.ours_only else [Side.reference()])
    floor = _floor(args.n, args.reps)
    results: Dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "n": args.n, "api_n": args.api_n, "nodes": args.nodes,
        "reps": args.reps, "floor": floor, "rows": {},
    }
    print(f"{os.cpu_count()} CPUs; spawn floor ({args.n} x /bin/true, 64 in flight): {floor['rate']:,.0f} tasks/s")
    print(f"{'workload':<36} {'ours':>10} {'ref':>10} {'ours/ref':>9} {'ours/floor':>11}")
    for label, row in _rows(args.n, args.api_n, args.nodes).items():
        runs: Dict[str, List[Run]] = {s.name: [] for s in sides}
        for rep in range(args.reps):
            for side in (sides if rep % 2 == 0 else list(reversed(sides))):
                runs[side.name].append(row(side))
        summary = {name: _summary(rs, floor["task_cpu"]) for name, rs in runs.items()}
        results["rows"][label] = summary
        ours = summary["ours"]["rate"]
        ref = summary.get("ref", {}).get("rate")
        ratio = f"{ours / ref:8.2f}x" if ref else f"{'':>9}"
        print(f"{label:<36} {ours:>10,.0f} {ref or 0:>10,.0f} {ratio} {ours / floor['rate']:>10.2f}x")
        for name, s in summary.items():
            extra = []
            if "service_cpu_ms" in s:
                extra.append(f"service CPU {s['service_cpu_ms']:.3f} ms/task, peak RSS {s['maxrss_mib']:.0f} MiB")
            if "ready" in s:
                extra.append(f"LocalManager ready in {s['ready']:.3f} s")
            if extra:
                print(f"{'':<4}{name}: {'; '.join(extra)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
