"""The workloads, each run against a given python: ours (this interpreter) or the
reference's (its own venv). Every run is a fresh process; figures come from its wall time
and from ``os.wait4`` (peak RSS, CPU of the service and the tasks it reaped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import refenv

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Run:
    """One run of one workload."""

    wall: float          # seconds, start to exit (file mode) or submit to all done (API)
    tasks: int
    cpu: float = 0.0     # seconds of CPU of the service and everything it reaped
    maxrss_kib: int = 0  # peak RSS of the service (or of the largest process it reaped)
    ready: float = 0.0   # API: seconds until LocalManager() returned
    extra: Dict[str, float] = field(default_factory=dict)  # API: latencies (ms) of the latency workload

    @property
    def rate(self) -> float:
        return self.tasks / self.wall if self.wall > 0 else 0.0


class Side:
    """How to run one implementation: ``ours`` or ``ref``."""

    def __init__(self, name: str, python: str, module: str, env: Dict[str, str]) -> None:
        self.name = name
        self.python = python
        self.module = module
        self.env = env

    @classmethod
    def ours(cls) -> Side:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [refenv.REPO, env.get("PYTHONPATH")]))
        return cls("ours", sys.executable, "qcg_pilotjob.service", env)

    @classmethod
    def reference(cls) -> Side:
        return cls("ref", refenv.ensure(), "qcg.pilotjob.service", refenv.clean_env())


#: jobs one submit may hold (the service's limit, MAX_JOBS_PER_SUBMIT)
PER_SUBMIT = 100_000


def _requests(n: int, shape: str) -> List[Dict[str, Any]]:
    if shape == "iterations":
        submits = [[{"name": "bench", "iteration": {"stop": n}, "execution": {"exec": "/bin/true"}}]]
    else:
        submits = [[{"name": f"j{i}", "execution": {"exec": "/bin/true"}}
                    for i in range(start, min(n, start + PER_SUBMIT))] for start in range(0, n, PER_SUBMIT)]
    return [*({"request": "submit", "jobs": jobs} for jobs in submits),
            {"request": "control", "command": "finishAfterAllTasksDone"}]


def write_requests(wd: str, n: int, shape: str) -> str:
    """A request file of ``n`` ``/bin/true`` tasks in ``wd``; returns its path. Written job
    by job: a list of 10^6 jobs would grow this process by 450 MB, and every service
    started after it would report that as its peak RSS (the fork's image counts)."""
    path = os.path.join(wd, "reqs.json")
    with open(path, "w") as fh:
        if shape == "iterations":
            json.dump(_requests(n, shape), fh)
            return path
        fh.write("[")
        for start in range(0, n, PER_SUBMIT):
            fh.write('{"request": "submit", "jobs": [')
            fh.write(",".join(f'{{"name": "j{i}", "execution": {{"exec": "/bin/true"}}}}'
                              for i in range(start, min(n, start + PER_SUBMIT))))
            fh.write("]},")
        fh.write('{"request": "control", "command": "finishAfterAllTasksDone"}]')
    return path


def file_mode(side: Side, n: int, shape: str, nodes: str, extra: Optional[List[str]] = None) -> Run:
    """``n`` ``/bin/true`` tasks from a request file, start to exit."""
    with tempfile.TemporaryDirectory(prefix="qcgpj-bench-") as wd:
        path = write_requests(wd, n, shape)
        cmd = [side.python, "-m", side.module, "--file-path", path, "--wd", wd, "--nodes", nodes,
               "--report-format", "json", *(extra or [])]  # (the reference breaks on "none")
        with open(os.path.join(wd, "stderr"), "w+") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=wd, env=side.env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)  # (its peak RSS and CPU, with the tasks it reaped)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{side.name} file mode failed ({proc.returncode}): {err.read()[-2000:]}")
    return Run(wall, n, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def api(side: Side, n: int, shape: str, nodes: str) -> Run:
    """``LocalManager`` runs one workload of ``api_driver.py`` (``iterations``, ``jobs``,
    ``chain``, ``latency``) on ``side``'s python."""
    with tempfile.TemporaryDirectory(prefix="qcgpj-bench-") as wd:
        proc = subprocess.run([side.python, os.path.join(HERE, "api_driver.py"), shape, str(n), nodes],
                              cwd=wd, env=side.env, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side.name} API run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return Run(out.pop("work"), n, ready=out.pop("ready"), extra=out)
