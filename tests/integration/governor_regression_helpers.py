"""Helpers of the governor regression tests (real governor and partition processes on loopback,
waiting on conditions with deadlines): aux dir files, requests on a fresh REQ socket, processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from typing import Any, Dict, List, Optional

import psutil
import zmq

from tests.conftest import secure_as_owner, wait_for
from tests.integration.governor_helpers import _aux, _read

__all__ = ["_aux", "_read"]  # (shared with the governor tests)

FINAL = {"SUCCEED", "FAILED", "CANCELED", "OMITTED"}


# ---- helpers -------------------------------------------------------------------------------------
def _report(aux: str) -> Dict[str, Dict[str, Any]]:
    """jobs.report (json lines) by name; a later line of the same name wins."""
    out = {}
    for line in _read(os.path.join(aux, "jobs.report")).splitlines():
        entry = json.loads(line)
        out[entry["name"]] = entry
    return out


def _ask(address: str, request: Dict[str, Any], ok: bool = True) -> Dict[str, Any]:
    """One JSON request on a fresh REQ socket; no answer within 10 s fails the test."""
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        sock.setsockopt(zmq.SNDTIMEO, 10_000)
        secure_as_owner(sock, address)
        sock.connect(address)
        sock.send(json.dumps(request).encode())
        try:
            reply = json.loads(sock.recv())
        except zmq.Again:
            raise AssertionError(f"the governor at {address} did not answer {request} within 10 s") from None
        sock.close(linger=0)
    finally:
        ctx.term()
    if ok:
        assert reply["code"] == 0, reply
    return reply


def _status(address: str) -> Dict[str, Any]:
    return _ask(address, {"request": "status"})["data"]


def _job_states(address: str, names: List[str]) -> Dict[str, str]:
    data = _ask(address, {"request": "jobStatus", "jobNames": names})["data"]["jobs"]
    return {name: data[name]["data"]["status"] for name in names}


def _job_info(address: str, names: List[str]) -> Dict[str, Dict[str, Any]]:
    data = _ask(address, {"request": "jobInfo", "jobNames": names})["data"]["jobs"]
    return {name: data[name]["data"] for name in names}


def _nodes(allocation: str) -> List[str]:
    """Node names of an allocation text such as ``a[0:1],b[0]``."""
    return re.findall(r"([^,\[\]]+)\[", allocation)


def _gone(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_pids(pids: List[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            proc.send_signal(signal.SIGCONT)
            proc.kill()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def _partition_pids(gov_pid: int, count: int) -> List[int]:
    """The partition processes a governor started, once there are ``count`` of them."""
    def found() -> Optional[List[int]]:
        try:
            kids = [p.pid for p in psutil.Process(gov_pid).children() if "--parent" in p.cmdline()]
        except psutil.Error:
            return None
        return kids if len(kids) == count else None
    return wait_for(found, timeout=30, what=f"{count} partition processes")


def _marker_pids(marker: str) -> List[int]:
    out = []
    for proc in psutil.process_iter():
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if cmd[:1] == ["sleep"] and marker in cmd and not _gone(proc.pid):
            out.append(proc.pid)
    return out


def _address(aux: str) -> str:
    return wait_for(lambda: _read(os.path.join(aux, "address")).strip(), timeout=30,
                    what="the governor's address file")


def _registered(aux: str, ident: str) -> None:
    wait_for(lambda: f"partition {ident} registered" in _read(os.path.join(aux, "service.log")), timeout=30,
             what=f"partition {ident} to register")
