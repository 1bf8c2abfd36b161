"""The aux dir is private: 0700, every file the service writes there 0600, whatever the umask;
another user can neither list it nor read the journal (where a job's ``env`` lands)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from typing import Iterator

import pytest

from tests.conftest import FINISH, service_cmd, submit

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-token-0451"


@pytest.fixture
def open_wd() -> Iterator[str]:
    """A wd every user may enter (0755 all the way down from /tmp), unlike pytest's tmp dirs:
    only the aux dir's own mode keeps another user out."""
    wd = tempfile.mkdtemp(prefix="qcgpj-private-", dir="/tmp")
    os.chmod(wd, 0o755)
    try:
        yield wd
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def _run_with_umask_0(wd: str) -> subprocess.CompletedProcess:
    aux = os.path.join(wd, ".qcgpjm-service-priv")
    modes = os.path.join(wd, "address.mode")  # the job sees the address file while the service runs
    reqs = [submit({"name": "secret", "execution": {"exec": "/bin/sh", "env": {"TOKEN": SECRET},
                                                    "args": ["-c", f"stat -c %a {aux}/address > {modes}"]}}),
            FINISH]
    path = os.path.join(wd, "reqs.json")
    with open(path, "w") as fh:
        json.dump(reqs, fh)
    cmd = service_cmd("--file-path", path, "--wd", wd, "--id", "priv", "--nodes", "2", "--net",
                      "--report-format", "json")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=lambda: os.umask(0))


def test_aux_dir_and_its_files_are_private_under_umask_0(open_wd: str) -> None:
    proc = _run_with_umask_0(open_wd)
    assert proc.returncode == 0, proc.stderr
    aux = os.path.join(open_wd, ".qcgpjm-service-priv")
    assert stat.S_IMODE(os.stat(aux).st_mode) == 0o700
    with open(os.path.join(aux, "journal.jsonl")) as fh:
        assert SECRET in fh.read()  # what is at stake
    names = sorted(n for n in os.listdir(aux) if os.path.isfile(os.path.join(aux, n)))
    for name in ("service.log", "jobs.report", "journal.jsonl", "final_status", "final_status.json"):
        assert name in names
    for name in names:
        assert stat.S_IMODE(os.stat(os.path.join(aux, name)).st_mode) == 0o600, name
    with open(os.path.join(open_wd, "address.mode")) as fh:
        assert fh.read().strip() == "600"  # the address file, removed at the end


def test_another_user_cannot_list_or_read_the_aux_dir(open_wd: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run as root to switch to a second uid")
        pytest.skip("switching to a second uid (nobody) needs root")
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run a command as another uid")
    proc = _run_with_umask_0(open_wd)
    assert proc.returncode == 0, proc.stderr
    aux = os.path.join(open_wd, ".qcgpjm-service-priv")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    seen = subprocess.run([*as_nobody, "ls", "-a", open_wd], capture_output=True, text=True, check=False)
    assert seen.returncode == 0 and ".qcgpjm-service-priv" in seen.stdout, seen.stderr  # the wd is open
    for cmd in (["ls", aux], ["cat", os.path.join(aux, "journal.jsonl")], ["cat", os.path.join(aux, "jobs.report")]):
        res = subprocess.run([*as_nobody, *cmd], capture_output=True, text=True, check=False)
        assert res.returncode != 0 and "Permission denied" in res.stderr, (cmd, res.stdout, res.stderr)
        assert SECRET not in res.stdout
