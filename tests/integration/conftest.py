"""Fixtures of the integration tests here: ``local``, a LocalManager in the test's tmp dir, and
the helpers of the API tests that go with it (``state``, ``wait_state``)."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for


@pytest.fixture
def local(tmp_path, monkeypatch):
    """``local(*server_args, cfg=None)``: a LocalManager working in this test's tmp dir
    (``--wd tmp --nodes 4`` unless given); finished at the end of the test."""
    from qcg.pilotjob.api.manager import LocalManager

    monkeypatch.chdir(tmp_path)
    started = []

    def start(*args: str, cfg=None):
        server_args = list(args) or ["--wd", str(tmp_path), "--nodes", "4"]
        manager = LocalManager(server_args, cfg)
        started.append(manager)
        return manager

    try:
        yield start
    finally:
        for manager in started:
            if manager._sock is not None:
                manager.finish()


def state(manager, name: str) -> str:
    return manager.status(name)["jobs"][name]["data"]["status"]


def wait_state(manager, name: str, wanted: str) -> str:
    return wait_for(lambda: state(manager, name) == wanted, what=f"{name} {wanted}")
