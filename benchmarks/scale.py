"""Workloads of ours alone (the reference has neither a dry run nor local partitions):

- :func:`dry_run`: ``--dry-run`` (no processes) through a governor of P local partitions
  on 1,000 virtual nodes of 128 cores, or single-manager mode (P = 0): what the control
  plane costs per task;
- :func:`governor`: real ``/bin/true`` tasks through a governor of P local partitions
  sharing ``--nodes`` (P = 0: single manager);
- :func:`long_run`: many ``/bin/true`` iterations in file mode, with the rate of every
  block of iterations (from the journal's end times) and the peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

from .workloads import Run, Side, write_requests

#: the virtual allocation of the dry runs
VIRTUAL_NODES, VIRTUAL_CORES = 1000, 128


def _service(side: Side, n: int, shape: str, nodes: str, extra: List[str],
             keep: Optional[str] = None) -> Tuple[Run, Dict[str, Any]]:
    """Run the service on a request file of ``n`` tasks; returns the run and the final
    status (with ``keep``, the working directory is ``keep`` and stays)."""
    with tempfile.TemporaryDirectory(prefix="qcgpj-bench-") as tmp:
        wd = keep or tmp
        path = write_requests(wd, n, shape)
        cmd = [side.python, "-m", side.module, "--file-path", path, "--wd", wd, "--nodes", nodes,
               "--report-format", "json", *extra]
        with open(os.path.join(wd, "stderr"), "w+") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=wd, env=side.env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                err.seek(0)
                raise RuntimeError(f"{' '.join(cmd[:3])} ... failed: {err.read()[-2000:]}")
        aux = next(d for d in os.listdir(wd) if d.startswith(".qcgpjm-service-"))
        with open(os.path.join(wd, aux, "final_status")) as fh:
            final = json.load(fh)
        final["aux"] = os.path.join(wd, aux)
    done = final["IterationStats"]["FinishedIterations"] if shape == "iterations" else \
        final["JobStats"]["FinishedJobs"]
    if done != n:
        raise RuntimeError(f"{done} of {n} tasks finished")
    return Run(wall, n, usage.ru_utime + usage.ru_stime, usage.ru_maxrss), final


def _partition_args(partitions: int, nodes: int) -> List[str]:
    if partitions == 0:
        return []
    if nodes % partitions:
        raise ValueError(f"{nodes} nodes do not split into {partitions} partitions")
    return ["--slurm-partition-nodes", str(nodes // partitions)]


def dry_run(side: Side, n: int, shape: str, partitions: int) -> Run:
    """``n`` tasks with ``--dry-run`` on 1,000 x 128 virtual cores, ``partitions`` of them."""
    nodes = ",".join([str(VIRTUAL_CORES)] * VIRTUAL_NODES)
    run, _ = _service(side, n, shape, nodes, ["--dry-run", *_partition_args(partitions, VIRTUAL_NODES)])
    return run


def governor(side: Side, n: int, shape: str, partitions: int, nodes: int = 4, cores: int = 16) -> Run:
    """``n`` real ``/bin/true`` tasks on ``nodes`` local nodes of ``cores`` (64 cores in all)."""
    run, _ = _service(side, n, shape, ",".join([str(cores)] * nodes), _partition_args(partitions, nodes))
    return run


def long_run(side: Side, n: int, block: int, nodes: str) -> Dict[str, Any]:
    """``n`` ``/bin/true`` iterations in file mode; the rate of each ``block`` of
    iterations (by their end times in the journal), the overall rate and the peak RSS."""
    with tempfile.TemporaryDirectory(prefix="qcgpj-long-") as wd:
        run, final = _service(side, n, "iterations", nodes, [], keep=wd)
        ends: List[float] = []
        with open(os.path.join(final["aux"], "journal.jsonl")) as fh:
            for line in fh:
                if '"t":"final"' in line:
                    rec = json.loads(line)
                    if rec.get("i") is not None:
                        ends.append(float(rec["w"]))
    ends.sort()
    rates = []
    for start in range(0, len(ends) - 1, block):
        chunk = ends[start:start + block + 1]
        if len(chunk) > block // 2 and chunk[-1] > chunk[0]:
            rates.append((len(chunk) - 1) / (chunk[-1] - chunk[0]))
    return {"tasks": n, "wall": run.wall, "rate": run.rate, "block": block, "block_rates": rates,
            "maxrss_mib": run.maxrss_kib / 1024, "service_cpu_s": run.cpu, "ended": len(ends)}
