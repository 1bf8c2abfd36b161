"""Run by either python (ours, or the reference's venv): ``LocalManager`` on ``--nodes``,
then one workload, then finish. Prints one JSON line.

- ``iterations N`` / ``jobs N``: submit N ``/bin/true`` tasks (one iterative job, or N jobs
  in one submit) and wait for all: ``work`` is the seconds from submit to all done;
- ``chain N``: N jobs, each after the one before: ``work`` / N is the cost of a hop;
- ``latency N``: N jobs run first; then the median round trip of ``list`` (5 calls),
  ``jobStatus`` of one job and ``status`` (200 calls each), and a one-job submit (100).

``ready`` is always the seconds until ``LocalManager()`` returned.

    python api_driver.py iterations 5000 64
"""

import json
import statistics
import sys
import time
from typing import Any, Callable, Dict, List


def median_ms(call: Callable[[], Any], times: int) -> float:
    """The median milliseconds of ``times`` calls (benchmarks.limits uses it too)."""
    spent: List[float] = []
    for _ in range(times):
        t0 = time.perf_counter()
        call()
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent) * 1000


def main() -> None:
    shape, n, cores = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    from qcg.pilotjob.api.job import Jobs
    from qcg.pilotjob.api.manager import LocalManager

    t0 = time.perf_counter()
    m = LocalManager(["--nodes", cores, "--report-format", "json"], {"poll_delay": 0.5})
    ready = time.perf_counter() - t0
    jobs = Jobs()
    if shape == "iterations":
        jobs.add(name="bench", exec="/bin/true", iteration=n)
    elif shape == "chain":
        for i in range(n):
            if i:
                jobs.add(name=f"c{i}", exec="/bin/true", after=[f"c{i - 1}"])
            else:
                jobs.add(name=f"c{i}", exec="/bin/true")
    else:
        for i in range(n):
            jobs.add(name=f"j{i}", exec="/bin/true")
    t1 = time.perf_counter()
    m.submit(jobs)
    m.wait4all()
    out: Dict[str, float] = {"ready": ready, "work": time.perf_counter() - t1}
    if shape == "latency":
        out["list_ms"] = median_ms(m.list, 5)
        out["job_status_ms"] = median_ms(lambda: m.status(["j0"]), 200)
        out["status_ms"] = median_ms(m.system_status, 200)
        one = [0]

        def submit_one() -> None:
            one[0] += 1
            extra = Jobs()
            extra.add(name=f"one{one[0]}", exec="/bin/true")
            m.submit(extra)

        out["submit_ms"] = median_ms(submit_one, 100)
        m.wait4all()
    m.finish()
    m.cleanup()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
