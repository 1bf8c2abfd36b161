"""The Python client API against a real service started by ``LocalManager``: waiting for jobs,
woken by events, and timeouts (``local``: conftest.py)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for
from tests.integration.conftest import state

pytestmark = pytest.mark.integration


# ---- waiting: events, timeouts -----------------------------------------------------------------
def test_wait4_is_event_driven(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local(cfg={"poll_delay": 60})
    assert manager.poll_delay == 60
    manager.submit(Jobs().add(name="short", exec="sleep", args="0.3").add(name="its", exec="sleep", args="0.3",
                                                                        iteration=2))
    started = time.monotonic()
    assert manager.wait4(["short", "its:1"]) == {"short": "SUCCEED", "its:1": "SUCCEED"}
    assert time.monotonic() - started < 30  # far below poll_delay: the events woke it
    assert manager.wait4("its") == {"its": "SUCCEED"}


def test_wait4all_is_event_driven(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local(cfg={"poll_delay": 60})
    manager.submit(Jobs().add(name="a", exec="sleep", args="0.3").add(name="b", exec="sleep", args="0.4"))
    started = time.monotonic()
    manager.wait4all()
    assert time.monotonic() - started < 30
    assert state(manager, "a") == "SUCCEED"
    assert state(manager, "b") == "SUCCEED"


def test_regression_wait4all_stale_no_jobs_event(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local(cfg={"poll_delay": 60})
    manager.submit(Jobs().add(name="quick", exec="true"))
    assert manager.wait4("quick") == {"quick": "SUCCEED"}
    wait_for(lambda: manager.resources()["used_cores"] == 0, what="quick to release its core")
    manager.submit(Jobs().add(name="slower", exec="sleep", args="1"))
    started = time.monotonic()
    manager.wait4all()
    assert state(manager, "slower") == "SUCCEED"
    assert time.monotonic() - started < 30


def test_wait4_any_job_finish(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="one", exec="sleep", args="0.2"))
    assert manager.wait4_any_job_finish(timeout=30) == ("one", "SUCCEED")


def test_regression_wait4_any_job_finish_skips_stale_event(local):
    """An unread finish event of a removed job must not be taken for its successor's."""
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="r", exec="/bin/true"))
    wait_for(lambda: state(manager, "r") == "SUCCEED", what="the first r to finish")
    manager.remove("r")
    manager.submit(Jobs().add(name="r", exec="sleep", args="0.5"))
    assert manager.wait4_any_job_finish(timeout=30) == ("r", "SUCCEED")
    assert state(manager, "r") == "SUCCEED"  # the second r, not the stale event of the first


def test_timeouts(local):
    from qcg.pilotjob.api.errors import QCGPJMAError, TimeoutElapsed
    from qcg.pilotjob.api.job import Jobs

    assert issubclass(TimeoutElapsed, QCGPJMAError)
    manager = local()
    manager.submit(Jobs().add(name="long", exec="sleep", args="30"))
    with pytest.raises(TimeoutElapsed):
        manager.wait4("long", timeout=0.5)
    with pytest.raises(TimeoutElapsed):
        manager.wait4all(timeout=0.5)
    with pytest.raises(QCGPJMAError):
        manager.wait4_any_job_finish(timeout=0.3)
    # QCG-PilotJob 0.14's keyword (regression: a TypeError on ours) and the positional form
    with pytest.raises(TimeoutElapsed):
        manager.wait4all(timeout_secs=0.3)
    with pytest.raises(TimeoutElapsed):
        manager.wait4all(0.3)
    with pytest.raises(QCGPJMAError):
        manager.wait4_any_job_finish(timeout_secs=0.3)
    with pytest.raises(TypeError):
        manager.wait4all(timeout_secs=1, timeout=2)
    assert state(manager, "long") == "EXECUTING"  # the connection is still usable
