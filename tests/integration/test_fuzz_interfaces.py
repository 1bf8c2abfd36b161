"""Bounded fuzz of the client interfaces (issue 9): hostile requests from tests/fuzzing.py.

- Network interface: a governor run with two partitions gets ``QCG_FUZZ_MESSAGES`` (default
  1,500) hostile requests over CURVE, JSON and msgpack alike. Every one is answered; no
  handler ever raises (the loop guard is never needed: every bad input is a checked
  rejection); two jobs submitted before the storm ends succeed and leave their files; the
  run ends by itself with exit code 0 and no traceback in any log.
- File interface: hostile request files. Each run either exits 2 with one line on stderr,
  or exits 0 having answered every request of the file; never a traceback.

The seed is ``QCG_FUZZ_SEED`` (default fixed, so CI is reproducible); the figures (messages
by kind, answered with code 0 or an error) are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import pytest
import zmq

from qcg_pilotjob.api.manager import Manager
from qcg_pilotjob.keys import find_keys
from qcg_pilotjob.protocol.transport import secure_client
from qcg_pilotjob.protocol.wire import decode_reply
from tests.conftest import service_cmd, wait_for
from tests.fuzzing import Fuzzer, pack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SEED = int(os.environ.get("QCG_FUZZ_SEED", "20261202"))
MESSAGES = int(os.environ.get("QCG_FUZZ_MESSAGES", "1500"))

JOB = {"name": "f1", "execution": {"exec": "/bin/true", "args": ["a", "${it}"], "env": {"A": "1"},
                                   "stdout": "f1.${it}.out", "wd": "sub"},
       "resources": {"numCores": {"min": 1, "max": 2}, "wt": "10s"}, "iteration": {"start": 0, "stop": 2}}
CORPUS: List[Dict[str, Any]] = [
    {"request": "submit", "jobs": [JOB]},
    {"request": "submit", "jobs": [{"name": "f2", "execution": {"script": "true"},
                                    "dependencies": {"after": ["f1"]}, "resources": {"numNodes": {"exact": 1}}}]},
    {"request": "submit", "jobs": [{"name": "f3", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 3},
                                    "dependencies": {"after": ["f1:${it}"]}, "attributes": {"k": "v"}}]},
    {"request": "listJobs"},
    {"request": "jobStatus", "jobNames": ["f1", "f1:0"]},
    {"request": "jobInfo", "jobNames": ["f1"], "params": {"withChilds": True}},
    {"request": "cancelJob", "jobNames": ["f3"]},
    {"request": "removeJob", "jobNames": ["f2"]},
    {"request": "resourcesInfo"},
    {"request": "status", "options": {"allJobsFinished": True}},
    {"request": "control", "command": "notACommand"},
    {"request": "register", "entity": "manager"},
    {"request": "notify", "entity": "job"},
]


def _encode(fuzz: Fuzzer, kind: str, value: Any) -> bytes:
    """What goes on the wire: bytes as they are, a value as JSON text or msgpack."""
    if isinstance(value, bytes):
        return value
    if kind == "deep" and isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode() if fuzz.rng.random() < 0.5 else pack(value)


def _sentinel(name: str) -> Dict[str, Any]:
    return {"name": name, "execution": {"exec": "/bin/sh", "args": ["-c", f"echo ran > {name}.txt"]}}


def test_fuzz_network_interface(tmp_path: Path) -> None:
    proc = subprocess.Popen(service_cmd("--net", "--wd", str(tmp_path), "--id", "fz", "--nodes", "2,2",
                                        "--slurm-partition-nodes", "1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = tmp_path / ".qcgpjm-service-fz"
    ctx = zmq.Context()
    answered: Dict[str, Counter[str]] = {}
    try:
        address = wait_for(lambda: (aux / "address").exists() and (aux / "address").read_text().strip(),
                           timeout=60, what="the address file")
        owner = Manager(address)
        assert owner.submit(_jobs("sentinel_before")) == ["sentinel_before"]
        keys = find_keys(address, aux=str(aux))
        assert keys is not None
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 30_000)
        sock.setsockopt(zmq.SNDTIMEO, 30_000)
        secure_client(sock, keys)
        sock.connect(address)
        fuzz = Fuzzer(SEED)
        for n in range(MESSAGES):
            if n == MESSAGES // 2:
                assert owner.submit(_jobs("sentinel_during")) == ["sentinel_during"]
            kind, value = fuzz.message(fuzz.rng.choice(CORPUS))
            data = _encode(fuzz, kind, value)
            sock.send(data)
            try:
                reply = sock.recv()
            except zmq.Again:
                raise AssertionError(f"message {n} ({kind}, seed {SEED}) got no answer: {data[:300]!r}") from None
            # (the reply comes in the encoding the service read the request in: JSON text or msgpack)
            code = decode_reply(reply, "json" if reply[:1] == b"{" else "msgpack").get("code")
            answered.setdefault(kind, Counter())["ok" if code == 0 else "error"] += 1
        assert owner.wait4(["sentinel_before", "sentinel_during"], timeout=120) == {
            "sentinel_before": "SUCCEED", "sentinel_during": "SUCCEED"}
        states = owner.list()
        owner.finish()
        rc = proc.wait(timeout=120)
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        ctx.destroy(linger=0)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert rc == 0, stderr
    assert (tmp_path / "sentinel_before.txt").read_text() == "ran\n"
    assert (tmp_path / "sentinel_during.txt").read_text() == "ran\n"
    assert all(entry["status"] in ("SUCCEED", "FAILED", "CANCELED", "OMITTED") for entry in states.values()), states
    total = sum(sum(c.values()) for c in answered.values())
    assert total == MESSAGES
    logs = [aux / "service.log", *sorted(aux.glob("partition-*/service.log"))]
    for log in logs:
        text = log.read_text()
        assert "Traceback" not in text, (log, _tail(text))
        assert "the frame is dropped" not in text, (log, _tail(text))  # no handler raised
    print(f"\nfuzz network interface, seed {SEED}: {total} requests, all answered; by kind: "
          + ", ".join(f"{k} {sum(c.values())} (ok {c['ok']}, error {c['error']})" for k, c in sorted(answered.items()))
          + f"; jobs registered {len(states)}")


def _jobs(name: str) -> Any:
    from qcg_pilotjob.api.job import Jobs

    return Jobs().add_std(_sentinel(name))


def _tail(text: str) -> str:
    return text[-3000:]


# ---- request files -------------------------------------------------------------------------------
FILES = int(os.environ.get("QCG_FUZZ_FILES", "24"))


def test_fuzz_request_files(tmp_path: Path) -> None:
    fuzz = Fuzzer(SEED + 1)
    outcomes: Counter[str] = Counter()
    for n in range(FILES):
        wd = tmp_path / f"run{n}"
        wd.mkdir()
        roll = fuzz.rng.random()
        if roll < 0.7:  # a list of requests, some hostile
            reqs: Any = [fuzz.message(fuzz.rng.choice(CORPUS))[1] if fuzz.rng.random() < 0.5
                         else fuzz.rng.choice(CORPUS) for _ in range(fuzz.rng.randint(1, 12))]
            reqs = [r if not isinstance(r, bytes) else r.decode("latin-1") for r in reqs]
            reqs.append({"request": "control", "command": "finishAfterAllTasksDone"})
            data = json.dumps(reqs).encode()
            kind = "requests"
        else:  # the file itself is hostile
            kind, value = fuzz.message(CORPUS)
            data = value if isinstance(value, bytes) else value.encode() if isinstance(value, str) \
                else json.dumps(value).encode()
            kind = f"file-{kind}"
        path = wd / "reqs.json"
        path.write_bytes(data)
        res = subprocess.run(service_cmd("--file-path", str(path), "--wd", str(wd), "--id", "f", "--nodes", "2"),
                             capture_output=True, text=True, timeout=120, errors="replace")
        assert "Traceback" not in res.stderr, (n, kind, res.stderr[-3000:])
        assert res.returncode in (0, 2), (n, kind, res.returncode, res.stderr[-3000:])
        if res.returncode == 2:
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("qcg-pm-service: error: "), (n, kind, res.stderr)
            outcomes[f"{kind}: refused (exit 2)"] += 1
            continue
        log = (wd / ".qcgpjm-service-f" / "service.log").read_text()
        assert "Traceback" not in log, (n, kind, _tail(log))
        handled = re.findall(r"request (\d+)/(\d+) ", log)
        total = int(handled[0][1]) if handled else 0
        assert total or data.strip() == b"[]", (n, kind, _tail(log))  # (an empty list holds no request)
        assert {int(i) for i, _ in handled} == set(range(1, total + 1)), (n, kind, _tail(log))
        outcomes[f"{kind}: served (exit 0)"] += 1
    print(f"\nfuzz request files, seed {SEED + 1}: {FILES} files; " +
          ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
