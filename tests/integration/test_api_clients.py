"""The Python client API against a real service: other clients (``Manager``) on the address of a
service started by ``LocalManager``, and jobs that are clients themselves (``local``: conftest.py)."""

from __future__ import annotations

import ast
import os
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration


# ---- other clients ------------------------------------------------------------------------------
def test_manager_json_encoding_and_env_address(local, monkeypatch):
    from qcg.pilotjob.api.job import Jobs
    from qcg.pilotjob.api.manager import Manager

    service = local()
    with open(os.path.join(service.aux_dir, "address")) as fh:
        address = fh.read()
    # the address as it is (regression: a trailing newline broke QCG-PilotJob's qcg-pm -p $(cat address))
    assert address == service._address
    assert not os.path.exists(os.path.join(service.aux_dir, "address.tmp"))

    client = Manager(address, cfg={"encoding": "json", "poll_delay": 60})
    try:
        assert client.resources()["total_cores"] == 4
        assert client.submit(Jobs().add(name="j", exec="sleep", args="0.2")) == ["j"]
        assert client.wait4("j") == {"j": "SUCCEED"}
        assert service.list()["j"]["status"] == "SUCCEED"
    finally:
        client._disconnect()

    monkeypatch.setenv("QCG_PM_ZMQ_ADDRESS", address)
    env_client = Manager()
    try:
        assert env_client._address == address
        assert env_client.status("j")["jobs"]["j"]["data"]["status"] == "SUCCEED"
    finally:
        env_client._disconnect()


def test_manager_bad_encoding_rejected(local):
    from qcg.pilotjob.api.errors import WrongArgumentsError
    from qcg.pilotjob.api.manager import Manager

    service = local()
    with pytest.raises(WrongArgumentsError):
        Manager(service._address, cfg={"encoding": "xml"})


def test_job_is_an_application_controller(local, tmp_path):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    oneliner = ('from qcg.pilotjob.api.manager import Manager; m=Manager(); print(m.resources()); '
                'm._disconnect()')
    controller = tmp_path / "controller.py"
    controller.write_text(textwrap.dedent("""
        from qcg.pilotjob.api.job import Jobs
        from qcg.pilotjob.api.manager import Manager
        m = Manager()
        m.submit(Jobs().add(name="inner", script="echo inner > inner.txt"))
        print(m.wait4("inner"))
        m._disconnect()
    """))
    jobs = Jobs().add(name="ctl", script=f"{sys.executable} -c '{oneliner}' > ctl.out; "
                                          "echo $QCG_PM_ZMQ_ADDRESS > addr.out") \
        .add(name="ctl2", exec=sys.executable, args=[str(controller)], stdout="ctl2.out", stderr="ctl2.err")
    manager.submit(jobs)
    assert manager.wait4(["ctl", "ctl2"]) == {"ctl": "SUCCEED", "ctl2": "SUCCEED"}, \
        (tmp_path / "ctl2.err").read_text()
    assert (tmp_path / "addr.out").read_text().strip() == manager._address
    seen = ast.literal_eval((tmp_path / "ctl.out").read_text().strip())
    assert seen["total_cores"] == 4
    assert seen["used_cores"] >= 1  # at least the controller itself
    assert (tmp_path / "ctl2.out").read_text().strip() == "{'inner': 'SUCCEED'}"
    assert (tmp_path / "inner.txt").read_text() == "inner\n"
    assert manager.status("inner")["jobs"]["inner"]["data"]["status"] == "SUCCEED"


def test_regression_events_as_the_reference_publishes_them(local):
    """Status events lacked QCG-PilotJob's ``manager`` field and its ``JST`` topic."""
    import json as _json
    import time as _time

    from qcg.pilotjob.api.job import Jobs
    from qcg_pilotjob.protocol.transport import connect_subscriber, sync_context

    manager = local()
    system = manager.system_status()["System"]
    sub = connect_subscriber(sync_context(), system["StatusPublisher"], ("JST", "JFI"), manager._keys)
    try:
        events = []
        deadline = _time.monotonic() + 60
        # a subscription reaches the publisher asynchronously: a job per try until one is heard
        for attempt in range(100):
            name = f"e{attempt}"
            manager.submit(Jobs().add(name=name, exec="/bin/true"))
            manager.wait4(name)
            while sub.poll(300):
                topic, _, data = sub.recv_string().partition(" ")
                events.append((topic, _json.loads(data)))
            if any(t == "JFI" for t, _ in events) or _time.monotonic() > deadline:
                break
        assert any(t == "JFI" for t, _ in events), events
        # a JFI heard means both subscriptions are in place (JFI's is the last one sent), but
        # that job's JST may have gone out before they were: the next job is heard whole
        manager.submit(Jobs().add(name="whole", exec="/bin/true"))
        manager.wait4("whole")
        mine = []
        while not any(t == "JFI" for t, _ in mine) and sub.poll(30_000):
            topic, _, data = sub.recv_string().partition(" ")
            if _json.loads(data)["job"] == "whole":
                mine.append((topic, _json.loads(data)))
        assert all(d["manager"] == system["InstanceId"] for _, d in mine)
        assert ("JST", "SUCCEED") in [(t, d["state"]) for t, d in mine]
        assert ("JFI", "SUCCEED") in [(t, d["state"]) for t, d in mine]
    finally:
        sub.close(0)


def test_iteration_status_events_reach_a_subscriber(local):
    """IST events, made only once the XPUB publisher has seen a subscription that covers
    them, reach that subscriber: an iteration's EXECUTING and final state."""
    import json as _json
    import time as _time

    from qcg.pilotjob.api.job import Jobs
    from qcg_pilotjob.protocol.transport import connect_subscriber, sync_context

    manager = local()
    system = manager.system_status()["System"]
    sub = connect_subscriber(sync_context(), system["StatusPublisher"], ("IST",), manager._keys)
    try:
        events = []
        deadline = _time.monotonic() + 60
        for attempt in range(100):  # the subscription reaches the service asynchronously
            name = f"it{attempt}"
            manager.submit(Jobs().add(name=name, exec="/bin/true", iteration=2))
            manager.wait4(name)
            while sub.poll(300):
                topic, _, data = sub.recv_string().partition(" ")
                events.append((topic, _json.loads(data)))
            # (a job that ran while the subscription was on its way may be heard in part)
            if sum(1 for _, d in events if d["job"] == name) == 4 or _time.monotonic() > deadline:
                break
        assert events and {t for t, _ in events} == {"IST"}
        seen = sorted((d["it"], d["state"]) for _, d in events if d["job"] == name)
        assert seen == [(0, "EXECUTING"), (0, "SUCCEED"), (1, "EXECUTING"), (1, "SUCCEED")]
        assert all(d["manager"] == system["InstanceId"] for _, d in events)
    finally:
        sub.close(0)
