"""A manager script shaped as FabSim3 generates one for QCG-PilotJob (its ``qcg-PJ-py`` and
``qcg-PJ-task-template``): ``LocalManager()`` with no arguments in the job's directory,
tasks added as ``exec='bash', args=['-l', <script>]`` with ``${jname}_${uniq}`` output
names and ``numCores={'exact': n}``, then ``submit``, ``wait4``, ``info`` and ``finish``.
The script below is written for this test; it calls the API the way FabSim3's does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.compat, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys
    from qcg.pilotjob.api.job import Jobs
    from qcg.pilotjob.api.manager import LocalManager

    manager = LocalManager()
    total = manager.resources()["total_cores"]
    print("resources", total > 0)
    jobs = Jobs()
    for i, cores in ((1, 1), (2, min(2, total))):
        jobs.add(name=f"TaskID{i}", exec="bash", args=["-l", f"task{i}.sh"],
                 stdout="out/${jname}_${uniq}.stdout", stderr="out/${jname}_${uniq}.stderr",
                 numCores={"exact": cores}, model="default")
    ids = manager.submit(jobs)
    print("submitted", ids)
    print("states", sorted(manager.wait4(ids).items()))
    info = manager.info(ids)
    codes = sorted((name, entry["data"]["runtime"]["exit_code"]) for name, entry in info["jobs"].items())
    print("codes", codes)
    manager.finish()
""")


def test_fabsim3_style_manager_script(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    for i in (1, 2):
        (tmp_path / f"task{i}.sh").write_text(f"echo task {i} on $QCG_PM_NPROCS cores\n")
    (tmp_path / "manager.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "QCG_PM_"))}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "manager.py"], capture_output=True, text=True, cwd=str(tmp_path),
                          env=env, timeout=150, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["resources"] == "True"
    assert lines["submitted"] == "['TaskID1', 'TaskID2']"
    assert lines["states"] == "[('TaskID1', 'SUCCEED'), ('TaskID2', 'SUCCEED')]"
    assert lines["codes"] == "[('TaskID1', '0'), ('TaskID2', '0')]"
    outs = sorted(p.name for p in (tmp_path / "out").glob("*.stdout"))
    assert len(outs) == 2 and outs[0].startswith("TaskID1_") and outs[1].startswith("TaskID2_")
    assert len(outs[0]) > len("TaskID1_.stdout") + 8  # a real ${uniq}
    texts = [(tmp_path / "out" / name).read_text() for name in outs]
    two = min(2, len(os.sched_getaffinity(0)))  # (LocalManager() takes the cores this process may use)
    # (endswith: a login shell may print something of its own first)
    assert texts[0].endswith("task 1 on 1 cores\n") and texts[1].endswith(f"task 2 on {two} cores\n"), texts
