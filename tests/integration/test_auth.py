"""Authenticated by default (issue 9): the service admits only clients holding its run's
keys. A client without keys, one with other keys and one run as another uid are refused:
no reply, and nothing they sent has any effect. The owner's Manager finds the keys by
address (``~/.qcg-pilotjob/``); a task's own client finds them in its environment."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import zmq

from qcg_pilotjob.api.manager import Manager
from qcg_pilotjob.keys import RunKeys, endpoint_file_name, user_key_dir
from qcg_pilotjob.protocol.transport import secure_client
from tests.conftest import service_cmd, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SUBMIT = json.dumps({"request": "submit", "jobs": [{"name": "intruder", "execution": {
    "exec": "bash", "args": ["-c", "touch owned"]}}]}).encode()


def raw_submit(address: str, keys: Optional[RunKeys]) -> Optional[bytes]:
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 2000)
        if keys is not None:
            secure_client(sock, keys)
        sock.connect(address)
        sock.send(SUBMIT)
        try:
            return sock.recv()
        except zmq.Again:
            return None
    finally:
        ctx.destroy(linger=0)


def test_clients_without_the_runs_keys_are_refused(keyed_service: Dict[str, Any]) -> None:
    address = keyed_service["address"]
    server_public = (keyed_service["aux"] / "keys").read_text().split()[0].encode()
    other = RunKeys.new()
    assert raw_submit(address, None) is None
    assert raw_submit(address, RunKeys(server_public, other.client_public, other.client_secret)) is None
    owner = Manager(address, {"poll_delay": 0.1})
    try:
        assert owner.list() == {}  # neither submit had any effect
        assert not (keyed_service["wd"] / "owned").exists()
        owner.submit(_jobs())
        assert owner.wait4("mine", timeout=30) == {"mine": "SUCCEED"}
    finally:
        owner.finish()
    # one WARNING per peer, however often it reconnects: the keyless client fails the
    # handshake. Its address is read when it can be (it is often gone at once; then it is
    # "an unknown address", one more line at most). The line says it does not use CURVE or,
    # when the busy service saw it hang up first (the stop-13 CI flake), that it hung up.
    # The other key is refused by the authenticator, which names the address.
    keyed_service["proc"].wait(timeout=30)
    log = (keyed_service["aux"] / "service.log").read_text()
    no_curve = [line.split("client interface: refused a peer at ", 1)[1] for line in log.splitlines()
                if "client interface: refused a peer at " in line]
    assert no_curve, log
    assert all(": it does not use CURVE (" in line or ": it hung up during the handshake (" in line
               for line in no_curve), log
    hosts = [line.split(": it ")[0].rpartition(":")[0] or line.split(": it ")[0] for line in no_curve]
    assert len(hosts) == len(set(hosts)) and set(hosts) <= {"127.0.0.1", "an unknown address"}, log
    assert log.count("refused a peer at 127.0.0.1: its key is not this run's") == 1
    assert other.client_public.decode() in log
    refused = re.search(r"client interface: (\d+) connection\(s\) refused in all, from (\d+) peer", log)
    assert refused is not None and int(refused[1]) >= int(refused[2]) >= len(no_curve), log


def _log_with(aux: Path, *texts: str) -> Optional[str]:
    log = (aux / "service.log").read_text()
    return log if all(text in log for text in texts) else None


def test_a_task_talks_to_its_service_with_the_keys_of_its_environment(keyed_service: Dict[str, Any]) -> None:
    script = (f"{sys.executable} -c \"from qcg_pilotjob.api.manager import Manager; "
              f"m = Manager(); print(sorted(m.list())); m.close()\" > seen.txt")
    owner = Manager(keyed_service["address"], {"poll_delay": 0.1})
    try:
        owner.submit(_jobs(script=script))
        assert owner.wait4("mine", timeout=60) == {"mine": "SUCCEED"}
    finally:
        owner.finish()
    assert (keyed_service["wd"] / "seen.txt").read_text().strip() == "['mine']"


def test_key_files_are_private_and_the_user_file_goes_with_the_service(keyed_service: Dict[str, Any]) -> None:
    user_file = Path(user_key_dir()) / endpoint_file_name(keyed_service["address"])
    assert oct(user_file.stat().st_mode & 0o777) == "0o600"
    assert oct((keyed_service["aux"] / "keys").stat().st_mode & 0o777) == "0o600"
    Manager(keyed_service["address"]).finish()
    keyed_service["proc"].wait(timeout=30)
    assert not user_file.exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_another_uid_cannot_use_the_service(keyed_service: Dict[str, Any]) -> None:
    code = ("import sys, zmq\n"
            "from qcg_pilotjob.keys import find_keys\n"
            f"print('keys', find_keys({keyed_service['address']!r}) is not None)\n"
            "ctx = zmq.Context(); s = ctx.socket(zmq.REQ); s.setsockopt(zmq.LINGER, 0)\n"
            "s.setsockopt(zmq.RCVTIMEO, 2000)\n"
            f"s.connect({keyed_service['address']!r}); s.send({SUBMIT!r})\n"
            "try:\n    print('reply', s.recv())\nexcept zmq.Again:\n    print('refused')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("QCG_PM_ZMQ_KEYS", "HOME")}
    env["HOME"] = "/tmp"
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60, env=env, cwd="/tmp")
    assert "keys False" in out.stdout and "refused" in out.stdout, (out.stdout, out.stderr)
    owner = Manager(keyed_service["address"])
    try:
        assert owner.list() == {}
    finally:
        owner.finish()


def _jobs(script: str = "true") -> Any:
    from qcg_pilotjob.api.job import Jobs

    jobs = Jobs()
    jobs.add(name="mine", script=script)
    return jobs


def test_regression_fake_partition_without_keys_cannot_register(tmp_path: Path) -> None:
    """A fake partition registered as 64 cores and received the owner's jobs: without the
    run's keys its connection fails the handshake and the governor never hears of it."""
    from qcg_pilotjob.protocol.codec import encode_batch
    from qcg_pilotjob.protocol.messages import PROTOCOL_VERSION, RegisterMsg
    from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
    from tests.integration.test_curve import handshake

    proc = subprocess.Popen(service_cmd("--governor", "--wd", str(tmp_path), "--id", "gov"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = tmp_path / ".qcgpjm-service-gov"
    try:
        address = wait_for(lambda: (aux / "address").exists() and (aux / "address").read_text().strip(),
                           what="the address file")
        assert handshake(address, None) == "failed"
        ctx = zmq.Context()
        try:
            fake = ctx.socket(zmq.DEALER)
            fake.setsockopt(zmq.LINGER, 0)
            fake.connect(address)
            nodes = [n.to_dict() for n in ResourcePool(parse_nodes_spec("64")).nodes]
            fake.send(encode_batch([RegisterMsg("fake", PROTOCOL_VERSION, nodes, "h", 1)]))
        finally:
            ctx.destroy(linger=0)
        owner = Manager(address)
        try:
            status = owner.system_status()
            assert status["System"]["Partitions"] == 0 and status["Resources"]["TotalCores"] == 0
        finally:
            owner.finish()
        assert "fake" not in (aux / "service.log").read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
