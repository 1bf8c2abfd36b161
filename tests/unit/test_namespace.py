"""``qcg.pilotjob`` takes modules that other distributions install under ``qcg/pilotjob`` in
another directory (regression: it was a regular package, and such a module was not found)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_qcg_pilotjob_module_of_another_distribution_imports(tmp_path: Path) -> None:
    other = tmp_path / "site" / "qcg" / "pilotjob" / "executor_api_like"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("WHO = 'another distribution'\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"),
                                                                  str(tmp_path / "site")])))
    code = ("import qcg.pilotjob.executor_api_like as m, qcg.pilotjob.api.manager as a; "
            "print(m.WHO, a.LocalManager.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["another", "distribution", "qcg_pilotjob.api.manager"]
