"""Our service driven by the REAL reference client: ``qcg-pilotjob==0.14.2`` from PyPI.

The client is installed once into a separate venv under ``<repo>/.cache/refclient-venv``
(git-ignored; reused while it still imports) and runs ``refclient_driver.py``, which
talks JSON over ZMQ to our service through ``qcg.pilotjob.api.manager.Manager`` and prints
a JSON summary that this test checks.

The install needs PyPI. If it cannot be done, the test fails under CI (``CI=true``) and
is skipped elsewhere, with pip's output either way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List

import pytest

from qcg_pilotjob.api.manager import Manager
from tests.conftest import service_cmd, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.compat]

REFERENCE = "qcg-pilotjob==0.14.2"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.environ.get("QCG_REFCLIENT_VENV") or os.path.join(REPO, ".cache", "refclient-venv")
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "refclient_driver.py")
# the client imports only zmq besides itself at import time (its click/psutil deps serve the
# service side): --no-deps plus pyzmq keeps the install small and fast
PACKAGES = ["--no-deps", REFERENCE, "pyzmq"]
CHECK = ("import importlib.metadata as md, qcg.pilotjob.api.manager, qcg.pilotjob.api.job; "
         "print(md.version('qcg-pilotjob'))")


def _venv_python(venv: str) -> str:
    return os.path.join(venv, "bin", "python")


def _clean_env() -> Dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "QCG_PM_ZMQ_ADDRESS"):
        env.pop(var, None)
    return env


def _usable(venv: str) -> bool:
    py = _venv_python(venv)
    if not os.path.exists(py):
        return False
    proc = subprocess.run([py, "-I", "-c", CHECK], capture_output=True, text=True, timeout=60,
                          env=_clean_env(), check=False)
    return proc.returncode == 0 and proc.stdout.strip() == REFERENCE.split("==")[1]


def _run(cmd: List[str], log: List[str]) -> bool:
    log.append("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_clean_env(), check=False)
    except subprocess.TimeoutExpired as exc:
        log.append(f"timed out after {exc.timeout}s")
        return False
    log.append(proc.stdout[-3000:] + proc.stderr[-3000:])
    log.append(f"exit code {proc.returncode}")
    return proc.returncode == 0


def _install(venv: str) -> List[str]:
    """Create the venv and install the client; return the log (empty on success)."""
    log: List[str] = []
    py = _venv_python(venv)
    pip_opts = ["install", "--disable-pip-version-check", "--no-input", *PACKAGES]
    # fast path: a venv without pip, filled by this interpreter's pip (pip >= 22.3 has --python)
    shutil.rmtree(venv, ignore_errors=True)
    if _run([sys.executable, "-m", "venv", "--without-pip", venv], log) and \
            _run([sys.executable, "-m", "pip", "--python", py, *pip_opts], log) and _usable(venv):
        return []
    # slow path: a venv with its own pip
    shutil.rmtree(venv, ignore_errors=True)
    if _run([sys.executable, "-m", "venv", venv], log) and _run([py, "-m", "pip", *pip_opts], log) \
            and _usable(venv):
        return []
    return log or ["unknown failure"]


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Serialise installs of concurrent test runs sharing the cache dir."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def refclient_python() -> str:
    """The python of a venv holding the reference client (installed when missing or broken)."""
    started = time.monotonic()
    with _locked(VENV + ".lock"):
        if _usable(VENV):
            how = "reused"
        else:
            log = _install(VENV)
            if log:
                msg = (f"cannot install the reference client {REFERENCE} into {VENV} "
                       f"(PyPI needed):\n" + "\n".join(log))
                if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                    pytest.fail(msg, pytrace=False)
                pytest.skip(msg)
            how = "installed"
    sys.stderr.write(f"\nreference client {how} in {VENV} in {time.monotonic() - started:.2f}s\n")
    return _venv_python(VENV)


@pytest.mark.timeout(600)
def test_reference_client_drives_our_service(refclient_python: str, tmp_path: Any) -> None:
    wd = str(tmp_path)
    addr_file = os.path.join(wd, ".qcgpjm-service-ref", "address")
    with open(os.path.join(wd, "service.out"), "w") as out, open(os.path.join(wd, "service.err"), "w") as err:
        # the reference client cannot do CURVE: the service runs without authentication
        svc = subprocess.Popen(service_cmd("--net", "--insecure-net", "--nodes", "4", "--wd", wd, "--id", "ref",
                                           "--kill-grace", "1"),
                               stdout=out, stderr=err)
    try:
        def address() -> str:
            if svc.poll() is not None:
                raise AssertionError(f"service exited {svc.returncode}: {_read(wd, 'service.err')}")
            if os.path.exists(addr_file):
                return _read(wd, ".qcgpjm-service-ref/address").strip()
            return ""

        addr = wait_for(address, timeout=30, what="the service address file")
        try:
            drv = subprocess.run([refclient_python, "-I", DRIVER, addr], cwd=wd, capture_output=True, text=True,
                                 timeout=180, env=_clean_env(), check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"driver timed out; stderr: {exc.stderr!r}") from None
        assert drv.returncode == 0, f"driver failed ({drv.returncode}):\n{drv.stderr}\nstdout: {drv.stdout}"
        res = json.loads(drv.stdout.strip().splitlines()[-1])
        rc = svc.wait(timeout=30)
    finally:
        if svc.poll() is None:
            svc.kill()
            svc.wait()

    # the reference package (not our qcg shim) did the talking
    assert res["client_file"].startswith(os.path.realpath(VENV)) or res["client_file"].startswith(VENV)
    assert res["system"] == {"InstanceId": "ref", "StatusPublisher": res["publisher"]}
    assert res["publisher"].startswith("tcp://")

    assert res["resources"] == {"total_nodes": 1, "total_cores": 4, "used_cores": 0, "free_cores": 4}
    assert res["resources_busy"]["used_cores"] == 1 and res["resources_busy"]["free_cores"] == 3
    assert res["resources_after"]["used_cores"] == 0 and res["resources_after"]["total_cores"] == 4

    assert res["submitted"] == ["first", "iter", "last"]
    assert res["submitted_long"] == ["long"]
    assert res["wait4"] == {"first": "SUCCEED", "iter": "SUCCEED", "last": "SUCCEED"}
    assert res["wait4_iteration"] == {"iter:1": "SUCCEED"}
    assert res["status"] == {"first": "SUCCEED", "iter": "SUCCEED", "last": "SUCCEED", "iter:2": "SUCCEED"}
    assert res["info_iter"] == {
        "status": "SUCCEED",
        "iterations": {"start": 0, "stop": 3, "total": 3, "finished": 3, "failed": 0},
        "childs": [[0, "SUCCEED"], [1, "SUCCEED"], [2, "SUCCEED"]],
    }
    parsed = res["info_parsed_first"]
    assert parsed["name"] == "first" and parsed["status"] == "SUCCEED"
    assert parsed["total_cores"] == 1 and len(parsed["nodes"]) == 1
    assert parsed["time"] is not None and parsed["time"] >= 0  # our rtime parses as the client's H:M:S.f
    assert parsed["wdir"] == wd

    assert res["wait4_long"] == {"long": "CANCELED"}
    assert res["list"] == {"first": "SUCCEED", "iter": "SUCCEED", "last": "SUCCEED", "long": "CANCELED"}
    assert res["wait4all"] == "ok"
    assert res["all_finished"] == {"AllJobsFinished": True}
    assert res["finish"] == "ok"
    assert res["events_seen"] >= 1, "the client never received a status event from our publisher"

    assert rc == 0, f"service exit code {rc}: {_read(wd, 'service.err')}"
    assert _read(wd, "first.out").strip() == "hello"
    assert sorted(_read(wd, f"iter_{i}.out").strip() for i in range(3)) == ["it 0", "it 1", "it 2"]


@pytest.mark.timeout(300)
def test_reference_client_is_refused_without_insecure_net(refclient_python: str, tmp_path: Any) -> None:
    """The reference client cannot do CURVE: a service started without --insecure-net gives it
    no answer, runs nothing it sent, and says so in its log (one WARNING line)."""
    wd = str(tmp_path)
    with open(os.path.join(wd, "service.err"), "w") as err:
        svc = subprocess.Popen(service_cmd("--net", "--nodes", "2", "--wd", wd, "--id", "ref"),
                               stdout=subprocess.DEVNULL, stderr=err)
    aux = os.path.join(wd, ".qcgpjm-service-ref")
    probe = None
    try:
        addr = wait_for(lambda: os.path.exists(os.path.join(aux, "address")) and
                        _read(aux, "address").strip(), timeout=30, what="the service address file")
        probe = subprocess.Popen([refclient_python, "-I", DRIVER, addr, "probe"], cwd=wd, env=_clean_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: "client interface: refused a peer at " in _read(aux, "service.log"), timeout=60,
                 what="the refusal in the service log")
        assert probe.poll() is None, probe.communicate()  # still waiting for an answer
        owner = Manager(addr)
        try:
            assert owner.list() == {}
        finally:
            owner.finish()
        assert svc.wait(timeout=30) == 0
    finally:
        for proc in (probe, svc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert probe.communicate()[0] == ""  # never "answered"
    assert not os.path.exists(os.path.join(wd, "probed"))
    assert "--insecure-net" in _read(aux, "service.log")


def _read(wd: str, name: str) -> str:
    with open(os.path.join(wd, name)) as fh:
        return fh.read()
