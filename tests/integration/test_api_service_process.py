"""The Python client API and the service process it starts (``LocalManager``): no orphans, finish,
a failed start, the aux dir and addresses, closing a client (``local``: conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tests.conftest import wait_for
from tests.integration.conftest import wait_state

pytestmark = pytest.mark.integration


# ---- the service process ------------------------------------------------------------------------
def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_local_manager_never_leaves_an_orphan(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from qcg.pilotjob.api.job import Jobs
        from qcg.pilotjob.api.manager import LocalManager
        m = LocalManager(["--wd", {str(tmp_path)!r}, "--nodes", "2"])
        m.submit(Jobs().add(name="hang", script="echo $BASHPID > hang.pid; exec sleep 300"))
        print(m.qcgpm_process.pid, flush=True)
        sys.stdin.read()
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=str(tmp_path))
    service_pid = task_pid = 0
    try:
        line = parent.stdout.readline()
        service_pid = int(line)
        assert psutil.pid_exists(service_pid) and not _gone(service_pid)
        pid_file = tmp_path / "hang.pid"
        task_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="hang.pid"))
        assert not _gone(task_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: _gone(service_pid), timeout=20, what="the service to exit")
        wait_for(lambda: _gone(task_pid), timeout=20, what="the task to be stopped")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdin.close()
        parent.stdout.close()
        for pid in (service_pid, task_pid):
            if pid and not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_finish_returns_after_the_service_exited(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="long", exec="sleep", args="30"))
    wait_state(manager, "long", "EXECUTING")
    started = time.monotonic()
    manager.finish()
    assert manager.qcgpm_process.poll() is not None
    assert manager.qcgpm_process.returncode == 0
    assert time.monotonic() - started < 15
    with open(os.path.join(manager.aux_dir, "final_status")) as fh:
        final = json.load(fh)
    assert final["JobStats"]["TotalJobs"] == 1
    assert final["JobStats"]["ExecutingJobs"] == 0


def test_local_manager_start_failure_reports_service_error(tmp_path, monkeypatch):
    from qcg.pilotjob.api.errors import QCGPJMAError, ServiceError
    from qcg.pilotjob.api.manager import LocalManager

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ServiceError) as info:
        LocalManager(["--wd", str(tmp_path), "--nodes", "bogus"])
    assert "--nodes" in str(info.value)
    assert "bogus" in str(info.value)
    assert isinstance(info.value, QCGPJMAError)


def test_aux_dir_address_and_status_addresses(local, tmp_path):
    manager = local()
    assert os.path.dirname(manager.aux_dir) == str(tmp_path)
    assert os.path.basename(manager.aux_dir).startswith(".qcgpjm-service-")
    with open(os.path.join(manager.aux_dir, "address")) as fh:
        text = fh.read()
    assert not text.endswith("\n")  # as QCG-PilotJob writes it (its qcg-pm -p reads it raw)
    address = text.strip()
    assert address.startswith("tcp://")
    assert address == manager._address
    system = manager.system_status()["System"]
    assert system["Zmqaddress"] == address
    publisher = system["StatusPublisher"]
    assert publisher.startswith("tcp://") and publisher != address
    assert "ZMQ" in system["Ifaces"] and system["Account"]
    manager.finish()
    with open(os.path.join(manager.aux_dir, "final_status")) as fh:
        final = json.load(fh)
    assert final["System"]["Zmqaddress"] == address
    assert final["System"]["StatusPublisher"] == publisher
    assert final["System"]["AuxDir"] == manager.aux_dir


def test_manager_close_and_context_manager(tmp_path) -> None:
    from qcg_pilotjob.api import LocalManager, Manager
    from qcg_pilotjob.api.errors import ConnectionError as ApiConnectionError

    local = LocalManager(["--wd", str(tmp_path), "--nodes", "2"])
    try:
        with Manager(local._address) as client:
            assert client.resources()["total_cores"] == 2
        with pytest.raises(ApiConnectionError, match="Not connected"):
            client.resources()
        assert local.resources()["total_cores"] == 2  # the service goes on
    finally:
        local.finish()


def test_regression_finish_after_kill_manager_process(local):
    """QCG-PilotJob 0.14's ``LocalManager.kill_manager_process()``: SIGTERM to the service,
    which stops as on Slurm's time limit: its task is stopped, final_status is written.
    A ``finish()`` after it waited for a reply from the gone service (600 s); it returns."""
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="long", exec="sleep", args="30"))
    wait_state(manager, "long", "EXECUTING")
    manager.kill_manager_process()
    manager.qcgpm_process.wait(timeout=60)
    with open(os.path.join(manager.aux_dir, "final_status")) as fh:
        final = json.load(fh)
    assert final["JobStats"]["TotalJobs"] == 1 and final["JobStats"]["ExecutingJobs"] == 0
    with open(os.path.join(manager.aux_dir, "service.log")) as fh:
        assert "signal 15 received: stopping" in fh.read()
    manager.finish()  # (nothing to ask: returns at once)
    assert manager._sock is None


@pytest.mark.parametrize("pidfd", [True, False])
def test_regression_client_of_a_dead_service_learns_it_at_once(local, monkeypatch, pidfd):
    """A LocalManager whose service died (here: SIGKILL) waited for the request timeout
    (600 s by default) on every request, wait4's polls included; it now raises at once,
    with the exit code, whether the exit is seen through a pidfd or a sliced wait."""
    from qcg.pilotjob.api.errors import ConnectionError as ApiConnectionError
    from qcg.pilotjob.api.job import Jobs
    from qcg_pilotjob.api import child

    if not pidfd:
        monkeypatch.setattr(child, "_pidfd", lambda pid: None)
    manager = local()
    assert (manager._child.fd is not None) == (pidfd and hasattr(os, "pidfd_open"))
    manager.submit(Jobs().add(name="long", exec="sleep", args="30"))
    wait_state(manager, "long", "EXECUTING")
    task_pid = int(wait_for(lambda: manager.info("long")["jobs"]["long"]["data"].get("runtime", {}).get("pid"),
                            what="the task's pid"))
    os.kill(manager.qcgpm_process.pid, signal.SIGKILL)
    os.kill(task_pid, signal.SIGKILL)  # (a killed service leaves its tasks running: see usage.md §10)
    with pytest.raises(ApiConnectionError, match="the service exited with code -9 before it answered"):
        manager.status("long")
    with pytest.raises(ApiConnectionError, match="code -9"):
        manager.wait4("long")
    manager.finish()  # (returns: nothing to ask)
