"""The reference, QCG-PilotJob 0.14.2 from PyPI, in a virtual environment of its own
(``.cache/qcgpj-0.14.2``, made once and reused while it still imports)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Dict, List

REFERENCE = "qcg-pilotjob==0.14.2"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("QCG_BENCH_REF_VENV") or os.path.join(REPO, ".cache", "qcgpj-0.14.2")
_CHECK = ("import importlib.metadata as md, qcg.pilotjob.service, qcg.pilotjob.api.manager; "
          "print(md.version('qcg-pilotjob'))")


def clean_env() -> Dict[str, str]:
    """The environment for the reference: nothing of ours on its path."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "QCG_PM_ZMQ_ADDRESS", "QCG_PM_ZMQ_KEYS"):
        env.pop(var, None)
    return env


def python() -> str:
    return os.path.join(VENV, "bin", "python")


def usable() -> bool:
    if not os.path.exists(python()):
        return False
    proc = subprocess.run([python(), "-I", "-c", _CHECK], capture_output=True, text=True, timeout=120,
                          env=clean_env(), check=False)
    return proc.returncode == 0 and proc.stdout.strip() == REFERENCE.split("==")[1]


def ensure() -> str:
    """The reference's python, installing it when missing (needs PyPI); raises with pip's output."""
    if usable():
        return python()
    shutil.rmtree(VENV, ignore_errors=True)
    log: List[str] = []
    for cmd in ([sys.executable, "-m", "venv", VENV],
                [python(), "-m", "pip", "install", "-q", "--disable-pip-version-check", REFERENCE]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=clean_env(), check=False)
        log.append(f"$ {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        if proc.returncode != 0:
            raise RuntimeError(f"cannot install {REFERENCE} into {VENV}:\n" + "\n".join(log))
    if not usable():
        raise RuntimeError(f"{REFERENCE} installed into {VENV} does not import:\n" + "\n".join(log))
    return python()
