#!/usr/bin/env python3
"""Governor resume after SIGKILL, repeated: how many resumes end by themselves with every
job final, and how many jobs whose end was recorded ran again. Not a test.

Each round starts ``qcg-pm-service --nodes a:2,b:2 --slurm-partition-nodes 1`` on N short
jobs (each appends its name to runs.txt), SIGKILLs it once a third of the final records
are in the journal, then resumes it (``--resume AUX`` alone, or with the original command
line on odd rounds) and checks the result.

    python scripts/bench_governor_resume.py --rounds 10 -n 2000
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List


def finals(journal: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    try:
        with open(journal) as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("t") == "final":
                    out[rec["j"]] = rec["s"]
    except FileNotFoundError:
        pass
    return out


def one_round(n: int, full_command: bool) -> Dict[str, object]:
    with tempfile.TemporaryDirectory() as wd:
        jobs = [{"name": f"j{i}", "execution": {"exec": "bash", "args": ["-c", f"echo j{i} >> {wd}/runs.txt"]}}
                for i in range(n)]
        reqs = os.path.join(wd, "jobs.json")
        with open(reqs, "w") as fh:
            finish = {"request": "control", "command": "finishAfterAllTasksDone"}
            json.dump([{"request": "submit", "jobs": jobs}, finish], fh)
        base = [sys.executable, "-m", "qcg_pilotjob.service", "--nodes", "a:2,b:2", "--slurm-partition-nodes", "1",
                "--file-path", reqs, "--wd", wd, "--id", "r"]
        aux = os.path.join(wd, ".qcgpjm-service-r")
        journal = os.path.join(aux, "journal.jsonl")
        proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(finals(journal)) < n // 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recorded = set(finals(journal))
        with open(os.path.join(wd, "runs.txt")) as fh:
            before = collections.Counter(fh.read().split())
        cmd = [*base, "--resume", aux] if full_command else [sys.executable, "-m", "qcg_pilotjob.service",
                                                             "--resume", aux]
        t0 = time.monotonic()
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600).returncode
        wall = time.monotonic() - t0
        after = finals(journal)
        with open(os.path.join(wd, "runs.txt")) as fh:
            runs = collections.Counter(fh.read().split())
        rerun_recorded = sum(1 for j in recorded if runs[j] > before[j])
        return {"rc": rc, "recorded_at_kill": len(recorded), "final": len(after),
                "succeed": sum(1 for s in after.values() if s == "SUCCEED"), "rerun_recorded": rerun_recorded,
                "ran_twice": sum(1 for c in runs.values() if c > 1), "resume_s": round(wall, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("-n", type=int, default=2000)
    args = ap.parse_args()
    results: List[Dict[str, object]] = []
    for i in range(args.rounds):
        res = one_round(args.n, full_command=bool(i % 2))
        results.append(res)
        print(json.dumps(res), flush=True)
    ok = sum(1 for r in results if r["rc"] == 0 and r["succeed"] == args.n and r["rerun_recorded"] == 0)
    print(f"{ok} of {args.rounds} resumes of {args.n}-job runs ended by themselves with every job final and no "
          f"recorded job run again")
    return 0 if ok == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
