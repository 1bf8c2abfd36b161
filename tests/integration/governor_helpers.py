"""Helpers of the governor-mode tests: reading a run's aux dir, partitions of ``--nodes`` node
names, the governor's partition and task processes, one request over the network interface."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import subprocess
from typing import Any, Dict, List, Optional

import psutil
import zmq

from tests.conftest import secure_as_owner, wait_for


# ---- helpers -------------------------------------------------------------------------------------
def _report_lines(aux: str) -> Dict[str, Dict[str, Any]]:
    out = {}
    with open(os.path.join(aux, "jobs.report")) as fh:
        for line in fh:
            entry = json.loads(line)
            out[entry["name"]] = entry
    return out


def _final_status(aux: str) -> Dict[str, Any]:
    with open(os.path.join(aux, "final_status")) as fh:
        return json.load(fh)


def _nodes(allocation: str) -> List[str]:
    """Node names of an allocation text such as ``n0[0:1],n1[0]``."""
    return re.findall(r"([^,\[\]]+)\[", allocation)


def _when(entry: Dict[str, Any], state: str) -> datetime.datetime:
    return next(datetime.datetime.fromisoformat(h["date"]) for h in entry["history"] if h["state"] == state)


def _iterations(report: Dict[str, Dict[str, Any]], job: str) -> Dict[int, Dict[str, Any]]:
    prefix = f"{job}:"
    return {int(name[len(prefix):]): e for name, e in report.items() if name.startswith(prefix)}


def _partition_of(node: str, size: int) -> int:
    """``--nodes 2,2,2,2`` names nodes n0..n3; partition i holds nodes [i*size, (i+1)*size)."""
    assert re.fullmatch(r"n\d+", node), node
    return int(node[1:]) // size


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_all(procs: List[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _partition_children(gov_pid: int, count: int) -> List[psutil.Process]:
    """The partition processes a governor started, once there are ``count`` of them."""
    def found() -> Optional[List[psutil.Process]]:
        try:
            kids = [p for p in psutil.Process(gov_pid).children() if "--parent" in p.cmdline()]
        except psutil.Error:
            return None
        return kids if len(kids) == count else None
    return wait_for(found, timeout=20, what=f"{count} partition processes")


def _cmdline(proc: psutil.Process) -> List[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def _marker_procs(marker: str) -> List[psutil.Process]:
    out = []
    for proc in psutil.process_iter():
        cmd = _cmdline(proc)
        if cmd[:1] == ["sleep"] and marker in cmd and not _gone(proc):
            out.append(proc)
    return out


def _aux(wd: str, ident: str) -> str:
    return os.path.join(wd, f".qcgpjm-service-{ident}")


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _write_reqs(tmp_path: Any, reqs: List[Any]) -> str:
    path = str(tmp_path / "reqs.json")
    with open(path, "w") as fh:
        json.dump(reqs, fh)
    return path


def _ask(address: str, request: Dict[str, Any]) -> Dict[str, Any]:
    """One JSON request over the network interface."""
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        secure_as_owner(sock, address)
        sock.connect(address)
        sock.send(json.dumps(request).encode())
        reply = json.loads(sock.recv())
        sock.close(linger=0)
    finally:
        ctx.term()
    assert reply["code"] == 0, reply
    return reply


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
