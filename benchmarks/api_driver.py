"""Run by either python (ours, or the reference's venv): ``LocalManager`` on ``--nodes``,
submit N ``/bin/true`` tasks (one iterative job, or N jobs in one submit), wait for all,
finish. Prints one JSON line: seconds from the manager ready to all done, and to ready.

    python api_driver.py iterations 5000 64
"""

import json
import sys
import time


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
    else:
        for i in range(n):
            jobs.add(name=f"j{i}", exec="/bin/true")
    t1 = time.perf_counter()
    m.submit(jobs)
    m.wait4all()
    work = time.perf_counter() - t1
    m.finish()
    m.cleanup()
    print(json.dumps({"ready": ready, "work": work}))


if __name__ == "__main__":
    main()
