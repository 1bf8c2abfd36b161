"""A full disk under ``--wd``: no report or journal line is lost silently, no traceback.

The wd is a small tmpfs (mounting needs root: CI runs as root; elsewhere these tests are
skipped). A job fills it, later jobs end while it is full, then a job frees it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from typing import Any, Dict, Iterator, List

import pytest

from tests.conftest import FINISH, service_cmd, submit

pytestmark = pytest.mark.integration

AUX = ".qcgpjm-service-df"


@contextlib.contextmanager
def tmpfs(path: str, size: str) -> Iterator[str]:
    """A tmpfs of ``size`` mounted on ``path`` for the duration of the block."""
    in_ci = os.environ.get("CI") == "true"
    if os.geteuid() != 0:
        if in_ci:
            pytest.fail("CI must run as root to mount a tmpfs for the full-disk tests")
        pytest.skip("mounting a small tmpfs (a disk that fills up) needs root")
    os.makedirs(path, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if in_ci:
            pytest.fail(f"cannot mount a tmpfs on {path}: {proc.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs on {path}: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def _job(name: str, shell: str, ran: str, after: Any = None) -> Dict[str, Any]:
    job: Dict[str, Any] = {"name": name,
                           "execution": {"exec": "/bin/sh", "args": ["-c", f"echo {name} >> {ran}; {shell}"]}}
    if after:
        job["dependencies"] = {"after": after}
    return job


def _requests(wd: str, ran: str, free: bool) -> List[Any]:
    big = os.path.join(wd, "big")
    during = [f"during{i}" for i in range(30)]
    jobs = [_job("fill", f"head -c 64M /dev/zero > {big}; true", ran)]
    jobs += [_job(n, "true", ran, ["fill"]) for n in during]
    if free:
        jobs.append(_job("free", f"rm -f {big}", ran, during))
        jobs += [_job(f"after{i}", "true", ran, ["free"]) for i in range(10)]
    return [submit(*jobs), FINISH]


def _run(tmp_path: Any, wd: str, requests: List[Any], *args: str) -> subprocess.CompletedProcess:
    path = os.path.join(str(tmp_path), "reqs.json")  # the request file is not on the small disk
    with open(path, "w") as fh:
        json.dump(requests, fh)
    cmd = service_cmd("--wd", wd, "--id", "df", "--nodes", "2", "--report-format", "json", *args)
    if not args:
        cmd += ["--file-path", path]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _report_names(aux: str) -> List[str]:
    with open(os.path.join(aux, "jobs.report")) as fh:
        return [json.loads(line)["name"] for line in fh if line.strip()]


def _journal_finals(aux: str) -> List[str]:
    """Jobs with a final record; a line cut by the full disk (its tail never written) is
    skipped, as ``--resume`` skips it."""
    recs = []
    with open(os.path.join(aux, "journal.jsonl")) as fh:
        for line in fh:
            with contextlib.suppress(ValueError):
                recs.append(json.loads(line))
    return [r["j"] for r in recs if r["t"] == "final"]


def _ran(path: str) -> List[str]:
    with open(path) as fh:
        return fh.read().split()


def test_disk_full_mid_run_loses_no_line(tmp_path: Any) -> None:
    ran = str(tmp_path / "ran")
    with tmpfs(str(tmp_path / "disk"), "8m") as wd:
        requests = _requests(wd, ran, free=True)
        names = [j["name"] for j in requests[0]["jobs"]]
        proc = _run(tmp_path, wd, requests)
        aux = os.path.join(wd, AUX)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert sorted(_report_names(aux)) == sorted(names)  # every job's line, each once
        assert sorted(_journal_finals(aux)) == sorted(names)
        with open(os.path.join(aux, "service.log")) as fh:
            log = fh.read()
        for name in ("jobs.report", "journal.jsonl"):  # the disk was full while lines came: said once
            warned = [ln for ln in log.splitlines() if f"cannot write {os.path.join(aux, name)}:" in ln]
            assert len(warned) == 1 and "No space left on device" in warned[0], (name, warned)
        with open(os.path.join(aux, "final_status")) as fh:
            assert json.load(fh)["JobStats"]["TotalJobs"] == len(names)
        assert sorted(_ran(ran)) == sorted(names)
        resumed = _run(tmp_path, wd, requests, "--resume", aux)  # the journal is whole: nothing runs again
        assert resumed.returncode == 0, resumed.stderr
        assert sorted(_ran(ran)) == sorted(names)


def test_disk_that_stays_full_exits_non_zero_and_says_so(tmp_path: Any) -> None:
    ran = str(tmp_path / "ran")
    with tmpfs(str(tmp_path / "disk"), "8m") as wd:
        requests = _requests(wd, ran, free=False)
        names = [j["name"] for j in requests[0]["jobs"]]
        proc = _run(tmp_path, wd, requests)
        aux = os.path.join(wd, AUX)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("qcg-pm-service: error:")]
        assert len(errors) == 1 and "could not be written" in errors[0], proc.stderr
        assert os.path.join(aux, "jobs.report") in errors[0]
        os.unlink(os.path.join(wd, "big"))  # space again: a resume runs what the journal lacks
        resumed = _run(tmp_path, wd, requests, "--resume", aux)
        assert resumed.returncode == 0, resumed.stderr
        assert set(_journal_finals(aux)) == set(names)  # every job has ended, once the journal could say so
        assert set(_report_names(aux)) <= set(names)  # report lines lost at the end were named on stderr


def test_disk_full_before_start_is_one_error_line(tmp_path: Any) -> None:
    with tmpfs(str(tmp_path / "disk"), "1m") as wd:
        with open(os.path.join(wd, "big"), "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        proc = _run(tmp_path, wd, [submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH])
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("qcg-pm-service: error: cannot write "), proc.stderr
        assert "No space left on device" in lines[0]
