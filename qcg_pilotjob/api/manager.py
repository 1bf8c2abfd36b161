"""Client API: ``Manager`` talks to a running service, ``LocalManager`` starts one first.

Requests travel over one persistent ZMQ REQ socket. The first (``status``) is JSON, which
every service reads; if the service says it speaks msgpack (ours do) the rest are msgpack,
else JSON (a QCG-PilotJob 0.14 service). ``cfg={"encoding": "json"|"msgpack"}`` fixes it.
``wait4``/``wait4all`` listen to the service's status events and return as soon as the
last awaited job ends; a status poll every ``poll_delay`` seconds covers events lost in
transit.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Iterable, List, Optional, Set, Union

import zmq

from ..keys import find_keys
from ..protocol.transport import connect_subscriber, parse_address, sync_context
from ..protocol.wire import decode_reply, encode_request
from . import errors
from .child import ChildExited, ChildWatch
from .job import Jobs
from .jobinfo import JobInfo
from .link import LinkLost, LinkReceiver, close_requester, open_requester

__all__ = ["LocalManager", "Manager"]

_log = logging.getLogger("qcg_pilotjob.api")

_FINAL = ("SUCCEED", "FAILED", "CANCELED", "OMITTED")
Names = Union[str, Iterable[str]]


def _name_list(names: Names) -> List[str]:
    if isinstance(names, str):
        return [names]
    return list(names)


class Manager:
    """A connection to one running service (a manager or a governor)."""

    DEFAULT_ADDRESS_ENV = "QCG_PM_ZMQ_ADDRESS"
    DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
    DEFAULT_PROTO = "tcp"
    DEFAULT_PORT = "5555"
    DEFAULT_POLL_DELAY = 2
    #: watch the connection while a request waits (LocalManager watches its service's process)
    _watch_link = True

    def __init__(self, address: Optional[str] = None, cfg: Optional[Dict[str, Any]] = None) -> None:
        cfg = dict(cfg or {})
        self._cfg = cfg
        self._log_handler: Optional[logging.Handler] = None
        self._setup_logging(cfg)
        if address is None:
            address = os.environ.get(self.DEFAULT_ADDRESS_ENV, self.DEFAULT_ADDRESS)
        self._address = parse_address(address)
        self.poll_delay = float(cfg.get("poll_delay", self.DEFAULT_POLL_DELAY))
        timeout = cfg.get("request_timeout", 600)
        self._timeout_ms = None if timeout is None else int(float(timeout) * 1000)
        # "auto": the first request is JSON, which every service reads; msgpack from then on if
        # the service says it speaks it (ours do; QCG-PilotJob 0.14's would stop on it)
        self._encoding = cfg.get("encoding", "auto")
        if self._encoding not in ("auto", "msgpack", "json"):
            raise errors.WrongArgumentsError("cfg['encoding'] must be 'auto', 'msgpack' or 'json'")
        self._negotiate = self._encoding == "auto"
        if self._negotiate:
            self._encoding = "json"
        self._ctx = sync_context()
        # the run's client keys: from the aux dir (LocalManager), the user's key directory
        # (found by address) or the environment (a task of the service)
        self._keys = find_keys(self._address, getattr(self, "aux_dir", None))
        self._sock: Optional[zmq.Socket] = None
        self._sub: Optional[zmq.Socket] = None
        self._link: Optional[LinkReceiver] = None
        self._connect()

    # --- connection ----------------------------------------------------------------------
    def _setup_logging(self, cfg: Dict[str, Any]) -> None:
        log_file = cfg.get("log_file")
        if log_file:
            handler = logging.FileHandler(log_file)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            _log.addHandler(handler)
            level = str(cfg.get("log_level", "info")).upper()
            _log.setLevel(getattr(logging, level, logging.INFO))
            self._log_handler = handler

    def _open_requester(self) -> None:
        self._sock, self._link = open_requester(self._ctx, self._address, self._timeout_ms, self._keys,
                                                self._watch_link)

    def _close_requester(self) -> None:
        close_requester(self._sock, self._link)
        self._sock = self._link = None

    def _connect(self) -> None:
        self._open_requester()
        try:
            status = self.system_status().get("System", {})
        except BaseException:
            self._disconnect()  # (a client that could not connect leaves no socket behind)
            raise
        if self._negotiate and "msgpack" in (status.get("Encodings") or ()):
            self._encoding = "msgpack"
        pub = status.get("StatusPublisher")
        if pub:
            self._sub = connect_subscriber(self._ctx, pub, ("IFI", "JFI", "NOJ"), self._keys)
        _log.info("connected to %s @ %s (events: %s)", status.get("InstanceId"), self._address, pub)

    def _send(self, request: Dict[str, Any]) -> Dict[str, Any]:
        if self._sock is None:
            raise errors.ConnectionError("Not connected")
        try:
            _log.debug("request: %.2000s", request)  # (formatted only when DEBUG is on)
            if self._link is not None:
                self._link.before_send()
            self._sock.send(encode_request(request, self._encoding))
            raw = self._receive(self._sock)
        except LinkLost:
            # the old socket may still hold the request, and would send it to a service that
            # comes back at that address: a new one, so that a retry is not run twice
            self._close_requester()
            self._open_requester()
            raise
        except zmq.Again:
            # the socket stays usable (REQ_RELAXED); the late reply is discarded (REQ_CORRELATE)
            raise errors.ConnectionError(
                f"no reply from the service at {self._address} within {self._timeout_ms / 1000:g}s"
                if self._timeout_ms else f"no reply from the service at {self._address}") from None
        except zmq.ZMQError as exc:
            raise errors.ConnectionError(f"request to {self._address} failed: {exc}") from None
        try:
            reply = decode_reply(raw, self._encoding)
        except Exception as exc:
            raise errors.InternalError(f"Invalid reply from the service: {exc}") from None
        if not isinstance(reply, dict) or "code" not in reply:
            raise errors.InternalError("Invalid reply from the service")
        _log.debug("reply: %.2000s", reply)
        return reply

    def _receive(self, sock: zmq.Socket[Any]) -> bytes:
        """The reply (``zmq.Again`` after the request timeout; ConnectionError as soon as the
        connection says none will come)."""
        if self._link is not None:
            return self._link.receive(self._timeout_ms)
        return bytes(sock.recv())

    @staticmethod
    def _check(reply: Dict[str, Any], need_data: bool = True) -> Any:
        if reply["code"] != 0:
            raise errors.ConnectionError(f"Request failed - {reply.get('message', 'unknown error')}")
        if need_data:
            if "data" not in reply:
                raise errors.InternalError("Invalid reply from the service")
            return reply["data"]
        return reply

    def send_request(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """Send any request; returns the whole (successful) response."""
        return self._check(self._send(request), need_data=False)

    # --- requests ----------------------------------------------------------------------
    def system_status(self) -> Dict[str, Any]:
        return self._check(self._send({"request": "status"}))

    def resources(self) -> Dict[str, Any]:
        return self._check(self._send({"request": "resourcesInfo"}))

    def submit(self, jobs: Jobs) -> List[str]:
        if not isinstance(jobs, Jobs):
            raise errors.WrongArgumentsError("submit takes a Jobs object")
        data = self._check(self._send({"request": "submit", "jobs": jobs.ordered_jobs()}))
        if "jobs" not in data:
            raise errors.InternalError("Missing response data")
        return list(data["jobs"])

    def list(self) -> Dict[str, Any]:
        data = self._check(self._send({"request": "listJobs"}))
        if "jobs" not in data:
            raise errors.InternalError("Rquest failed - missing jobs data")
        return data["jobs"]

    def status(self, names: Names) -> Dict[str, Any]:
        return self._check(self._send({"request": "jobStatus",
                                       "jobNames": _name_list(names)}))

    def info(self, names: Names, **kwargs: Any) -> Dict[str, Any]:
        req: Dict[str, Any] = {"request": "jobInfo", "jobNames": _name_list(names)}
        if kwargs:
            req["params"] = kwargs
        return self._check(self._send(req))

    def info_parsed(self, names: Names, **kwargs: Any) -> Dict[str, JobInfo]:
        data = self.info(names, **kwargs)
        out: Dict[str, JobInfo] = {}
        for name, entry in data.get("jobs", {}).items():
            if entry.get("status") == 0:
                out[name] = JobInfo.from_job(entry["data"])
        return out

    def remove(self, names: Names) -> Dict[str, Any]:
        return self._check(self._send({"request": "removeJob",
                                       "jobNames": _name_list(names)}))

    def cancel(self, names: Names) -> Dict[str, Any]:
        return self._check(self._send({"request": "cancelJob",
                                       "jobNames": _name_list(names)}))

    def finish(self) -> None:
        """Ask the service to finish (running jobs are stopped) and close the connection."""
        self._check(self._send({"request": "finish"}))
        self._disconnect()
        self.cleanup()

    def _disconnect(self) -> None:
        self._close_requester()
        if self._sub is not None:
            self._sub.close(linger=0)
            self._sub = None

    def close(self) -> None:
        """Close the connection (the service goes on); later calls raise ConnectionError."""
        self._disconnect()
        self.cleanup()

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def cleanup(self) -> None:
        if self._log_handler is not None:
            _log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    # --- waiting -----------------------------------------------------------------------
    @staticmethod
    def is_status_finished(status: str) -> bool:
        return status in _FINAL

    def _events(self, timeout: float) -> List[tuple]:
        """Events received within ``timeout`` seconds (at least one, unless it elapses)."""
        if self._sub is None:
            time.sleep(max(0.0, timeout))
            return []
        out = []
        if self._sub.poll(int(max(0.0, timeout) * 1000)):
            while True:
                try:
                    text = self._sub.recv_string(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                topic, _, payload = text.partition(" ")
                try:
                    out.append((topic, json.loads(payload) if payload else {}))
                except ValueError:
                    _log.warning("malformed status event dropped: %.80s", text)
        return out

    def wait4(self, names: Names, timeout: Optional[float] = None) -> Dict[str, str]:
        """Wait until every named job (or ``name:it``) is finished; returns their states.

        Raises :class:`~.errors.TimeoutElapsed` when ``timeout`` seconds pass first.
        """
        pending: Set[str] = set(_name_list(names))
        result: Dict[str, str] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            done = self._final_states(pending)
            pending.difference_update(done)
            result.update(done)
            next_poll = time.monotonic() + self.poll_delay
            while pending:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise errors.TimeoutElapsed(f"{len(pending)} job(s) not finished within {timeout}s")
                if now >= next_poll:
                    break
                wait = next_poll - now if deadline is None else min(next_poll, deadline) - now
                hits = {name for name in self._finish_events(wait) if name in pending}
                if hits:
                    # confirmed by a status request: the event may be left from a removed job
                    # of the same name
                    done = self._final_states(hits)
                    pending.difference_update(done)
                    result.update(done)
        return result

    def _finish_events(self, timeout: float) -> List[str]:
        """Names (``job`` or ``job:it``) of the finish events received within ``timeout``."""
        names = []
        for topic, ev in self._events(timeout):
            if topic in ("IFI", "JFI"):
                name = str(ev.get("job"))
                names.append(name if ev.get("it") is None else f"{name}:{ev['it']}")
        return names

    def _final_states(self, names: Iterable[str], missing_ok: bool = False) -> Dict[str, str]:
        """The states of those of ``names`` that are finished (``missing_ok``: names the
        service does not know are left out instead of an error)."""
        out: Dict[str, str] = {}
        for name, entry in self.status(sorted(names)).get("jobs", {}).items():
            if entry.get("status") != 0:
                if missing_ok:
                    continue
                raise errors.InternalError(f"Missing job's {name} data: {entry.get('message')}")
            state = entry["data"]["status"]
            if self.is_status_finished(state):
                out[name] = state
        return out

    def wait4all(self, timeout_secs: Optional[float] = None, *, timeout: Optional[float] = None) -> None:
        """Wait until the service has no unfinished job. A "no jobs" event is confirmed with
        a status request before returning, so an event left from an earlier burst of jobs
        cannot end the wait early. ``timeout_secs`` is QCG-PilotJob 0.14's name, ``timeout``
        ours."""
        timeout = _either(timeout_secs, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            data = self._check(self._send({"request": "status", "options": {"allJobsFinished": True}}))
            if data.get("AllJobsFinished"):
                return
            next_poll = time.monotonic() + self.poll_delay
            woke = False
            while not woke:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise errors.TimeoutElapsed(f"jobs not finished within {timeout}s")
                if now >= next_poll:
                    break
                wait = next_poll - now if deadline is None else min(next_poll, deadline) - now
                woke = any(topic == "NOJ" for topic, _ in self._events(wait))

    def wait4_any_job_finish(self, timeout_secs: Optional[float] = None, *,
                             timeout: Optional[float] = None) -> tuple:
        """Wait for the next job or iteration to finish; returns (name, state).
        ``timeout_secs`` is QCG-PilotJob 0.14's name, ``timeout`` ours."""
        timeout = _either(timeout_secs, timeout)
        if self._sub is None:
            raise errors.ServiceError("Service not support publishing status events")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 3600.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                raise errors.TimeoutElapsed(f"no job finished within {timeout}s")
            for name in self._finish_events(wait):
                # confirmed: an event left from a removed job of the same name is skipped
                done = self._final_states([name], missing_ok=True)
                if name in done:
                    return name, done[name]


def _either(timeout_secs: Optional[float], timeout: Optional[float]) -> Optional[float]:
    if timeout_secs is not None and timeout is not None and timeout_secs != timeout:
        raise TypeError("give timeout_secs or timeout, not both")
    return timeout if timeout is not None else timeout_secs


class LocalManager(Manager):
    """Starts a service as a child process on this host and connects to it.

    The service ends when :meth:`finish` is called, or when this program exits or dies
    (it watches a pipe held open by this process), so no service is left behind.
    """

    _watch_link = False

    def __init__(self, server_args: Optional[List[str]] = None, cfg: Optional[Dict[str, Any]] = None) -> None:
        cfg = dict(cfg or {})
        args = [str(a) for a in (server_args or [])]
        if "--net" not in args:
            args.append("--net")
        init_timeout = float(cfg.get("init_timeout", 300))
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the service's lifetime
        cmd = [sys.executable, "-m", "qcg_pilotjob.service", *args,
               "--ready-fd", str(ready_w), "--lifeline-fd", str(life_r)]
        try:
            self.qcgpm_process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=self._stderr,
                                                  pass_fds=(ready_w, life_r))
        finally:
            os.close(ready_w)
            os.close(life_r)
        os.set_inheritable(life_w, False)
        self._lifeline = life_w
        self._terminated = False  # (kill_manager_process was called)
        self._child = ChildWatch(self.qcgpm_process)
        try:
            info = self._wait_ready(ready_r, init_timeout)
        except BaseException:
            self._kill()
            raise
        finally:
            os.close(ready_r)
        self.aux_dir: Optional[str] = info.get("aux")
        super().__init__(info["address"], cfg)

    def _service_error(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-2000:] if text else "(no output)"

    def _receive(self, sock: zmq.Socket[Any]) -> bytes:
        """The reply, or at once an error if the service process ends first."""
        try:
            return self._child.receive(sock, self._timeout_ms)
        except ChildExited as exc:
            raise errors.ConnectionError(f"{exc} before it answered; its output: {self._service_error()}") from None

    def _wait_ready(self, fd: int, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.ServiceError(f"Service not started in {timeout:g}s; its output: "
                                          f"{self._service_error()}")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    buf += chunk
                    if b"\n" in buf:
                        return dict(json.loads(buf.split(b"\n", 1)[0]))
                    continue
                # EOF without a ready line: the service failed
                self.qcgpm_process.wait(timeout=10)
                raise errors.ServiceError(f"Service failed to start (exit code {self.qcgpm_process.returncode}): "
                                          f"{self._service_error()}")
            if self.qcgpm_process.poll() is not None:
                raise errors.ServiceError(f"Service failed to start (exit code {self.qcgpm_process.returncode}): "
                                          f"{self._service_error()}")

    def _kill(self) -> None:
        proc = self.qcgpm_process
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._child.close()
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1

    def finish(self) -> None:
        """Finish the service and return once its process has exited (SIGTERM after 10 s).
        A service that was sent SIGTERM (:meth:`kill_manager_process`) or has exited is not
        asked (nobody would answer): it is waited for."""
        try:
            if self._terminated or self.qcgpm_process.poll() is not None:
                self._disconnect()
                self.cleanup()
            else:
                try:
                    super().finish()
                except errors.ConnectionError:
                    if self.qcgpm_process.poll() != 0:
                        raise
                    self._disconnect()  # it finished, and its answer was lost on the way
                    self.cleanup()
        finally:
            try:
                self.qcgpm_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _log.warning("service did not exit within 10 s of finish; terminating it")
            self._kill()
            self._stderr.close()

    def kill_manager_process(self) -> None:
        """Terminate the service process with SIGTERM: it stops as at Slurm's time limit
        (running tasks stopped, final_status written). :meth:`finish` then only waits."""
        self._terminated = True
        self.qcgpm_process.terminate()

    def __del__(self) -> None:
        life = getattr(self, "_lifeline", -1)
        if life >= 0:
            os.close(life)
            self._lifeline = -1
        child = getattr(self, "_child", None)
        if child is not None:
            child.close()
