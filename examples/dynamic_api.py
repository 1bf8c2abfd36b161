"""Submit work as results come in: a coarse scan of 8 points, then a fine scan of 8 points
around the best one, from a Python program (the QCG-PilotJob API, unchanged).

    python examples/dynamic_api.py /tmp/qcg-dynamic
"""

import os
import sys

from qcg.pilotjob.api.job import Jobs
from qcg.pilotjob.api.manager import LocalManager

SCORE = "awk -v x={x} 'BEGIN {{ printf \"%.6f\\n\", -(x - 2.7) * (x - 2.7) }}'"


def scan(manager, name, points, wd):
    jobs = Jobs()
    for i, x in enumerate(points):
        jobs.add(name=f"{name}{i}", script=SCORE.format(x=x), stdout=os.path.join(wd, f"{name}{i}.out"))
    names = manager.submit(jobs)
    manager.wait4(names)  # returns when all of them are final
    scores = {}
    for i, x in enumerate(points):
        with open(os.path.join(wd, f"{name}{i}.out")) as fh:
            scores[x] = float(fh.read())
    return scores


def main() -> None:
    wd = sys.argv[1] if len(sys.argv) > 1 else "/tmp/qcg-dynamic"
    os.makedirs(wd, exist_ok=True)
    manager = LocalManager(["--wd", wd])
    try:
        coarse = scan(manager, "coarse", [float(x) for x in range(8)], wd)
        best = max(coarse, key=coarse.get)
        fine = scan(manager, "fine", [best - 1 + k * 0.25 for k in range(8)], wd)
        best = max(fine, key=fine.get)
        print(f"best x = {best:.2f} (score {fine[best]:.4f}) after {len(coarse) + len(fine)} tasks")
    finally:
        manager.finish()
        manager.cleanup()


if __name__ == "__main__":
    main()
