"""Our ``Manager`` driving a real QCG-PilotJob 0.14.2 service (regression: it spoke msgpack
first, and the reference's service stopped on the decode error while our client timed out).

The reference is installed from PyPI into ``.cache/qcgpj-0.14.2`` once (``benchmarks.refenv``,
shared with the benchmarks); if that cannot be done the test fails under CI and is skipped
elsewhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import refenv
from tests.conftest import free_port, need, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.compat, pytest.mark.timeout(300)]


def test_our_manager_drives_a_reference_service(tmp_path: Path) -> None:
    from qcg.pilotjob.api.job import Jobs
    from qcg.pilotjob.api.manager import Manager

    python = need(refenv.ensure)
    port = free_port()
    service = subprocess.Popen([python, "-m", "qcg.pilotjob.service", "--net", "--net-port", str(port),
                                "--nodes", "2", "--wd", str(tmp_path)],
                               cwd=str(tmp_path), env=refenv.clean_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any((d / "address").exists() for d in tmp_path.glob(".qcgpjm-service-*")), timeout=60,
                 what="the reference service's address file")
        manager = Manager(f"tcp://127.0.0.1:{port}", {"poll_delay": 0.5, "request_timeout": 30})
        assert manager._encoding == "json"  # it does not list msgpack: JSON throughout
        assert manager.resources()["total_cores"] == 2
        ids = manager.submit(Jobs().add(name="hello", exec="/bin/echo", args=["hi"], stdout="hello.out")
                             .add(name="sweep", exec="/bin/true", iteration=3))
        assert ids == ["hello", "sweep"]
        assert manager.wait4(ids) == {"hello": "SUCCEED", "sweep": "SUCCEED"}
        assert manager.list()["sweep"]["status"] == "SUCCEED"
        info = manager.info_parsed("hello")["hello"]
        assert info.status == "SUCCEED" and info.total_cores == 1
        manager.wait4all()
        manager.finish()
        assert service.wait(timeout=60) == 0
    finally:
        if service.poll() is None:
            service.kill()
        _, err = service.communicate(timeout=30)
    assert (tmp_path / "hello.out").read_text() == "hi\n", err
