"""``python -m benchmarks``: ours against QCG-PilotJob 0.14.2 and the spawn floor.

Each row runs both implementations in alternation (ours first on odd repetitions, the
reference first on even ones), ``--reps`` times, and prints the medians and their ratio;
``--json`` writes every run. The reference is installed once into ``.cache/qcgpj-0.14.2``
(PyPI). ``--quick`` is the small version CI runs so that this cannot rot. Before the rows it
prints what this machine allows any Python service (:mod:`.limits`: interpreter start,
request round trip, one process's life, a list's decode).

Then rows of ours alone (:mod:`.scale`): ``--dry-run`` through a governor on 1,000
virtual nodes of 128 cores (10^4 to 10^6 tasks; 1, 10 and 100 partitions), real tasks
through a governor of 1, 2 and 4 local partitions, and with ``--long`` a run of 10^6
iterations with its rate per block of 10^5.

    python -m benchmarks                 # the full table (tens of minutes)
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

from . import limits, scale
from .floor import spawn_floor
from .workloads import Run, Side, api, file_mode

Row = Callable[[Side], Run]


def _rows(n: int, api_n: int, nodes: str, chain: int, listed: int) -> Dict[str, Row]:
    return {
        f"file mode, {n} iterations": lambda s: file_mode(s, n, "iterations", nodes),
        f"file mode, {n} jobs": lambda s: file_mode(s, n, "jobs", nodes),
        f"API, {api_n} iterations": lambda s: api(s, api_n, "iterations", nodes),
        f"API, {api_n} jobs": lambda s: api(s, api_n, "jobs", nodes),
        "file mode, 10 jobs (start to exit)": lambda s: file_mode(s, 10, "jobs", nodes),
        "file mode, 1 job (start to exit)": lambda s: file_mode(s, 1, "jobs", nodes),
        f"API, chain of {chain} jobs": lambda s: api(s, chain, "chain", nodes),
        f"API, requests at {listed} jobs": lambda s: api(s, listed, "latency", nodes),
    }


def _ours_rows(quick: bool) -> Dict[str, Row]:
    """Rows of ours alone: dry runs on 1,000 x 128 virtual cores, and real partitions."""
    sizes = (10 ** 4,) if quick else (10 ** 4, 10 ** 5, 10 ** 6)
    spread = (1, 10) if quick else (1, 10, 100)
    rows: Dict[str, Row] = {}
    for shape in ("jobs", "iterations"):
        for size in sizes:
            rows[f"dry run, {size:,} {shape}, 10 partitions"] = \
                lambda s, size=size, shape=shape: scale.dry_run(s, size, shape, 10)  # type: ignore[misc]
        for parts in (p for p in spread if p != 10):
            size = sizes[0] if quick else 10 ** 5
            rows[f"dry run, {size:,} {shape}, {parts} partition(s)"] = \
                lambda s, size=size, shape=shape, parts=parts: scale.dry_run(s, size, shape, parts)  # type: ignore[misc]
        rows[f"dry run, {sizes[0]:,} {shape}, single manager"] = \
            lambda s, shape=shape: scale.dry_run(s, sizes[0], shape, 0)  # type: ignore[misc]
    real = 300 if quick else 10 ** 4
    for parts in (0, 1, 2, 4):
        mode = "single manager" if parts == 0 else f"governor, {parts} partition(s)"
        rows[f"{real:,} /bin/true jobs, 4x16 cores, {mode}"] = \
            lambda s, parts=parts: scale.governor(s, real, "jobs", parts)  # type: ignore[misc]
    return rows


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
    for key in sorted({k for r in runs for k in r.extra}):
        out[key] = statistics.median(r.extra[key] for r in runs if key in r.extra)
    return out


def _details(label: str, s: Dict[str, Any], tasks: int) -> List[str]:
    """What a row shows beside its rate."""
    extra = []
    if "service_cpu_ms" in s:
        extra.append(f"service CPU {s['service_cpu_ms']:.3f} ms/task, peak RSS {s['maxrss_mib']:.0f} MiB")
    if "chain of" in label:
        extra.append(f"{s['wall'] / tasks * 1000:.2f} ms per dependency hop")
    elif "start to exit" in label:
        extra.append(f"{s['wall']:.3f} s")
    if "list_ms" in s:
        extra.append(f"p50 ms: list {s['list_ms']:.2f}, jobStatus {s['job_status_ms']:.3f}, "
                     f"status {s['status_ms']:.3f}, submit one job {s['submit_ms']:.3f}")
    if "ready" in s:
        extra.append(f"LocalManager ready in {s['ready']:.3f} s")
    return extra


def _memory_per_job(rows: Dict[str, Any], n: int) -> Dict[str, float]:
    """KiB of peak RSS per finished job: 10,000 jobs against 10 jobs, in file mode."""
    big, small = rows.get(f"file mode, {n} jobs", {}), rows.get("file mode, 10 jobs (start to exit)", {})
    return {name: (big[name]["maxrss_mib"] - small[name]["maxrss_mib"]) * 1024 / (n - 10)
            for name in big if name in small and n > 10}


def _run_row(row: Row, sides: List[Side], reps: int, task_cpu: float) -> Dict[str, Any]:
    runs: Dict[str, List[Run]] = {s.name: [] for s in sides}
    for rep in range(reps):
        for side in (sides if rep % 2 == 0 else list(reversed(sides))):
            runs[side.name].append(row(side))
    out = {name: _summary(rs, task_cpu) for name, rs in runs.items()}
    for name, rs in runs.items():
        out[name]["tasks"] = rs[0].tasks
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10000, help="tasks of the file-mode rows")
    ap.add_argument("--api-n", type=int, default=5000, help="tasks of the API rows")
    ap.add_argument("--chain", type=int, default=500, help="jobs of the dependency chain")
    ap.add_argument("--listed", type=int, default=10000, help="jobs in the service when requests are timed")
    ap.add_argument("--nodes", default="64", help="--nodes of every run (64: one node of 64 cores)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition (CI)")
    ap.add_argument("--ours-only", action="store_true", help="no reference (no PyPI)")
    ap.add_argument("--skip-scale", action="store_true", help="no rows of ours alone")
    ap.add_argument("--skip-side", action="store_true", help="no side-by-side rows (ours alone and --long only)")
    ap.add_argument("--only", default="", help="rows of ours alone whose label holds this text")
    ap.add_argument("--long", type=int, default=0, metavar="N",
                    help="also N /bin/true iterations in file mode, rate per block of N/10 (e.g. 1000000)")
    ap.add_argument("--json", help="write every run here")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.api_n, args.reps, args.chain, args.listed = 300, 200, 1, 20, 100
    sides = [Side.ours()] + ([] if args.ours_only else [Side.reference()])
    floor = _floor(args.n, args.reps)
    results: Dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "n": args.n, "api_n": args.api_n, "nodes": args.nodes,
        "reps": args.reps, "floor": floor, "rows": {}, "ours_rows": {},
    }
    print(f"{os.cpu_count()} CPUs; spawn floor ({args.n} x /bin/true, 64 in flight): {floor['rate']:,.0f} tasks/s")
    results["limits"] = limits.measure(args.quick)
    print(limits.describe(results["limits"]), flush=True)
    print(f"{'workload':<40} {'ours':>10} {'ref':>10} {'ours/ref':>9} {'ours/floor':>11}")
    side_rows = {} if args.skip_side else _rows(args.n, args.api_n, args.nodes, args.chain, args.listed)
    for label, row in side_rows.items():
        summary = _run_row(row, sides, args.reps, floor["task_cpu"])
        results["rows"][label] = summary
        ours = summary["ours"]["rate"]
        ref = summary.get("ref", {}).get("rate")
        ratio = f"{ours / ref:8.2f}x" if ref else f"{'':>9}"
        print(f"{label:<40} {ours:>10,.0f} {ref or 0:>10,.0f} {ratio} {ours / floor['rate']:>10.2f}x", flush=True)
        for name, s in summary.items():
            extra = _details(label, s, s["tasks"])
            if extra:
                print(f"{'':<4}{name}: {'; '.join(extra)}")
    memory = _memory_per_job(results["rows"], args.n)
    results["memory_per_job_kib"] = memory
    print("peak RSS per finished job (file mode, jobs against 10 jobs): "
          + ", ".join(f"{name} {kib:.2f} KiB" for name, kib in memory.items()))
    if not args.skip_scale:
        print(f"\n{'ours alone':<56} {'tasks/s':>9} {'us/task':>8} {'x floor':>8}")
        for label, row in _ours_rows(args.quick).items():
            if args.only not in label:
                continue
            s = _run_row(row, sides[:1], 1, floor["task_cpu"])["ours"]  # (ours alone: one run each)
            results["ours_rows"][label] = s
            print(f"{label:<56} {s['rate']:>9,.0f} {s['wall'] / s['tasks'] * 1e6:>8.1f} "
                  f"{s['rate'] / floor['rate']:>7.1f}x (peak RSS {s['maxrss_mib']:.0f} MiB)", flush=True)
    if args.long:
        long = scale.long_run(sides[0], args.long, max(1, args.long // 10), args.nodes)
        results["long_run"] = long
        print(f"\nlong run, {args.long:,} iterations: {long['rate']:,.0f} tasks/s, peak RSS "
              f"{long['maxrss_mib']:.0f} MiB; per block of {long['block']:,}: "
              + ", ".join(f"{r:,.0f}" for r in long["block_rates"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
