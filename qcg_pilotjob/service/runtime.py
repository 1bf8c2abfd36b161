"""The running service: wires the front to its partition, reads requests, shuts down.

Everything runs on one asyncio loop. The service waits on events only: a change of the
front (a request, a batch of task events) wakes the main coroutine, which checks whether
its work is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import zmq

from .. import __version__
from ..errors import ConfigError, ResourceError
from ..governor.front import Front
from ..governor.hub import PartitionHub
from ..governor.journal import JOURNAL_NAME, Journal, Replay, find_aux_dir, read_journal
from ..governor.reports import Flusher, LineWriter
from ..lifeline import watch_lifeline
from ..partition.manager import PartitionManager
from ..protocol.messages import ShutdownMsg
from ..resources import Node, ResourcePool, local_nodes, parse_nodes_spec
from ..slurm.allocation import SlurmAllocation, in_slurm_allocation, job_end_time
from .config import ServiceConfig
from .netiface import EventPublisher, NetInterface
from .progress import Progress

__all__ = ["AUX_PREFIX", "Service", "load_requests"]

_log = logging.getLogger("qcg_pilotjob.service")

AUX_PREFIX = ".qcgpjm-service-"
#: heartbeats a peer may miss before it is lost: a dead process is noticed at once (its pid
#: or srun step ends); this margin is for a hung one, and must outlast a busy moment such as
#: registering a 100,000-job submit
LOST_AFTER_BEATS = 30


def load_requests(path: str) -> List[Any]:
    """Read a request file: a JSON list of requests (a single object is taken as one)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read request file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"request file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ConfigError(f"request file {path} must hold a JSON list of requests, not {type(data).__name__}")
    return data


def _short(obj: Any, limit: int = 300) -> str:
    text = json.dumps(obj, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit] + "..."


def _stop_leftovers(replay: Replay) -> None:
    """Kill the process groups of tasks a killed service left running (they run again)."""
    import psutil

    for (job, it), (pid, started) in replay.running.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - started) > 5.0:
                continue  # the pid was reused by an unrelated process
            os.killpg(pid, signal.SIGKILL)
            _log.warning("resume: killed task %s%s (pid %d) left running by the previous run", job,
                         "" if it is None else f":{it}", pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue


def open_service_log(path: str, first_line: str, level: str) -> logging.Handler:
    """Write the log's first line (whatever the level), then log the package there."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(first_line + "\n")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("qcg_pilotjob")
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    root.propagate = False
    return handler


def close_service_log(handler: logging.Handler) -> None:
    logging.getLogger("qcg_pilotjob").removeHandler(handler)
    handler.close()


def run_partition(cfg: ServiceConfig) -> int:
    """``--parent ADDR``: run as a partition manager of that governor."""
    from ..partition.remote import RemotePartition

    assert cfg.parent is not None
    nodes = parse_nodes_spec(cfg.nodes) if cfg.nodes is not None else local_nodes()
    pool = ResourcePool(nodes, system_core=cfg.system_core)
    wd = os.path.abspath(cfg.wd)
    pid_name = cfg.instance_id()
    aux = cfg.aux_dir or os.path.join(wd, AUX_PREFIX + pid_name)
    try:
        os.makedirs(aux, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the partition's directory {aux}: {exc.strerror}") from None
    path = os.path.join(aux, "service.log")
    handler = open_service_log(path, f"partition {pid_name} version {__version__} started "
                                     f"{time.strftime('%Y-%m-%d %H:%M:%S')} @ {socket.gethostname()} "
                                     f"for governor {cfg.parent}", cfg.log)
    remote = RemotePartition(
        pid_name, cfg.parent, pool, lifeline_fd=cfg.lifeline_fd, dry_run=cfg.dry_run,
        launcher=cfg.launcher or "local",
        deadline=job_end_time(os.environ["SLURM_JOB_ID"]) if cfg.launcher in ("agents", "srun")
        and os.environ.get("SLURM_JOB_ID") else None,
        executor_options={"root_wd": wd, "aux_dir": aux,
                          "env_schema": "slurm" if cfg.envschema == "slurm" or (
                              cfg.envschema == "auto" and cfg.launcher in ("agents", "srun")) else "none",
                          "zmq_address": cfg.parent, "kill_grace": cfg.kill_grace},
    )
    try:
        code = asyncio.run(remote.run())
    finally:
        close_service_log(handler)
    if code == 2:
        sys.stderr.write(f"qcg-pm-service: error: partition {pid_name}: registration refused (see {path})\n")
    elif code == 4:
        sys.stderr.write(f"qcg-pm-service: error: partition {pid_name}: no node agent came up (see {path})\n")
    elif code == 3:
        sys.stderr.write(f"qcg-pm-service: error: partition {pid_name}: no governor answered at {cfg.parent}\n")
    return code


class _Child:
    """A partition manager process this governor started; its exit wakes the governor."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, args: List[str], aux: str,
                 changed: asyncio.Event, front: Optional[Front] = None, lifeline: bool = True) -> None:
        self.name = name
        self.front = front
        self.loop = loop
        self.changed = changed
        self.stderr_path = os.path.join(aux, "stderr.log")
        # a pipe whose end closes when this governor dies; srun cannot carry it to a node,
        # where partitions notice a dead governor by its missing heartbeats instead
        self.lifeline = -1
        fds: List[int] = []
        if lifeline:
            life_r, self.lifeline = os.pipe()
            os.set_inheritable(self.lifeline, False)
            args = [*args, "--lifeline-fd", str(life_r)]
            fds.append(life_r)
        with open(self.stderr_path, "wb") as err:
            try:
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=err, pass_fds=tuple(fds))
            finally:
                for fd in fds:
                    os.close(fd)
        self.exited = False
        self.returncode: Optional[int] = None
        self._done = asyncio.Event()
        self.pidfd = os.pidfd_open(self.proc.pid)
        loop.add_reader(self.pidfd, self._on_exit)

    def _on_exit(self) -> None:
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.returncode = self.proc.wait()
        self.exited = True
        self._done.set()
        if self.returncode != 0:
            _log.warning("partition manager %s exited with code %s", self.name, self.returncode)
        if self.front is not None:
            for link in self.front.links:
                if link.name == self.name and link.live:
                    # no need to wait for missed heartbeats: the process is gone
                    self.front.lose_link(link, f"partition {self.name} lost: its process exited with code "
                                               f"{self.returncode}")
        self.changed.set()

    def last_error(self) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as fh:
                lines = [ln.strip() for ln in fh if ln.strip()]
            return lines[-1] if lines else "(no output)"
        except OSError:
            return "(no output)"

    async def wait_exit(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except asyncio.TimeoutError:
            _log.warning("partition manager %s did not exit within %gs; killing it", self.name, timeout)
            self.kill()

    def kill(self) -> None:
        if self.lifeline >= 0:
            os.close(self.lifeline)
            self.lifeline = -1
        if not self.exited and self.proc.poll() is None:
            self.proc.kill()


class Service:
    """One service instance; :meth:`run` returns the process exit code."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.wd = os.path.abspath(cfg.wd)
        self.replay: Optional[Replay] = None
        self.requests: List[Any] = []
        self.request_offset = 0
        self.file_path: Optional[str] = cfg.file_path
        # things that can fail are done before the loop starts: a clear error, exit non-zero
        if not os.path.isdir(self.wd):
            try:
                os.makedirs(self.wd, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"--wd: cannot create {self.wd}: {exc.strerror}") from None
        if cfg.resume:
            self.aux_dir = find_aux_dir(cfg.resume)
            self.replay = read_journal(self.aux_dir)
            base = os.path.basename(self.aux_dir)
            self.instance_id = base[len(AUX_PREFIX):] if base.startswith(AUX_PREFIX) else base
            if self.file_path is None and self.replay.file_mode and self.replay.file_path \
                    and os.path.isfile(self.replay.file_path):
                self.file_path = self.replay.file_path
        else:
            self.instance_id = cfg.instance_id()
            self.aux_dir = os.path.join(self.wd, AUX_PREFIX + self.instance_id)
            if os.path.exists(self.aux_dir):
                raise ConfigError(f"--id: {self.aux_dir} already exists (a run with id {self.instance_id}); "
                                  f"choose another --id, or continue that run with --resume {self.aux_dir}")
        if self.file_path is not None:
            self.file_path = os.path.abspath(self.file_path)
            self.requests = load_requests(self.file_path)
            if self.replay is not None:
                # requests of this file already done before the kill are not done again
                self.request_offset = self.replay.file_done.get(self.file_path, 0)
        self.slurm: Optional[SlurmAllocation] = None
        self.end_time: Optional[float] = None
        begin, end = cfg.slurm_limit_nodes_range_begin, cfg.slurm_limit_nodes_range_end
        if cfg.nodes is not None:
            if begin is not None or end is not None:
                raise ConfigError("--slurm-limit-nodes-range-begin/end: only for Slurm resources, not with --nodes")
            self.nodes: List[Node] = parse_nodes_spec(cfg.nodes)
        elif cfg.resources == "slurm" or (cfg.resources == "auto" and in_slurm_allocation()):
            if not in_slurm_allocation():
                raise ConfigError("--resources slurm: not inside a Slurm allocation "
                                  "(SLURM_JOB_ID and SLURM_JOB_NODELIST are not set)")
            self.slurm = SlurmAllocation.from_env(begin=begin, end=end)
            self.nodes = self.slurm.nodes()
            self.end_time = job_end_time(self.slurm.job_id)
        else:
            if begin is not None or end is not None:
                raise ConfigError("--slurm-limit-nodes-range-begin/end: only inside a Slurm allocation")
            self.nodes = local_nodes()
        if cfg.disable_nl and self.slurm is None:
            raise ConfigError("--disable-nl: only inside a Slurm allocation (it replaces the node agents by one "
                              "srun step per task)")
        self.launcher = "local" if self.slurm is None else ("srun" if cfg.disable_nl else "agents")
        self.pool = ResourcePool(copy.deepcopy(self.nodes), system_core=cfg.system_core)
        try:
            os.makedirs(self.aux_dir, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the auxiliary directory {self.aux_dir}: {exc.strerror}") from None
        self.env_schema = "slurm" if cfg.envschema == "slurm" or (cfg.envschema == "auto" and self.slurm) else "none"
        report_path = cfg.report_file if os.path.isabs(cfg.report_file) else \
            os.path.join(self.aux_dir, cfg.report_file)
        try:
            self.report = LineWriter(None if cfg.report_format == "none" else report_path)
            self.journal_writer = LineWriter(os.path.join(self.aux_dir, JOURNAL_NAME))
        except OSError as exc:
            raise ConfigError(f"--report-file: cannot write {exc.filename}: {exc.strerror}") from None

    # --- logging -----------------------------------------------------------------------
    def _setup_logging(self) -> logging.Handler:
        tags = f" (with tags {','.join(self.cfg.tags)})" if self.cfg.tags else ""
        return open_service_log(os.path.join(self.aux_dir, "service.log"),
                                f"service {self.instance_id} version {__version__} started "
                                f"{time.strftime('%Y-%m-%d %H:%M:%S')} @ {socket.gethostname()}{tags}", self.cfg.log)


    # --- main --------------------------------------------------------------------------
    def run(self) -> int:
        return asyncio.run(self._main())

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        handler = self._setup_logging()
        cfg = self.cfg
        changed = asyncio.Event()
        report = self.report
        journal_writer = self.journal_writer
        flusher = Flusher(loop, [report, journal_writer])
        journal = Journal(journal_writer)
        governor = cfg.governor
        front = Front([], instance_id=self.instance_id, report=report,
                      report_format=cfg.report_format, journal=journal, on_change=changed.set)
        front.interfaces = ["file"] if self.file_path else []
        net: Optional[NetInterface] = None
        publisher: Optional[EventPublisher] = None
        hub: Optional[PartitionHub] = None
        spawned: List[_Child] = []
        if cfg.net or governor:
            try:
                net = NetInterface(front, port=cfg.net_port, port_min=cfg.net_port_min or 2222,
                                   port_max=cfg.net_port_max or 9999)
                publisher = EventPublisher("*", cfg.net_port_min or 2222, cfg.net_port_max or 9999)
            except zmq.ZMQError as exc:
                msg = f"cannot open the network interface (port {cfg.net_port or 'range'}): {exc}"
                _log.error(msg)
                sys.stderr.write(f"qcg-pm-service: error: {msg}\n")
                if net is not None:
                    await net.close()
                close_service_log(handler)
                return 2
            front.zmq_address = net.address
            front.publisher_address = publisher.address
            front.publish = publisher.publish
            front.interfaces.append("zmq")
            if governor and not cfg.slurm_partition_nodes:  # partitions started by hand register through it
                self._write_address(net.address)
            if governor:
                hub = PartitionHub(front, net.sock, heartbeat=cfg.heartbeat,
                                   lost_after=LOST_AFTER_BEATS * cfg.heartbeat, on_change=changed.set)
                net.partition_handler = hub.on_frame
                hub.start()
            net.start()
            _log.info("network interface at %s, status events at %s", net.address, publisher.address)
        partition: Optional[PartitionManager] = None
        if not governor:
            # single-manager mode: the same front with one partition in this process

            def to_partition(msg: Any) -> None:
                assert partition is not None
                loop.call_soon(partition.receive, msg)

            def to_front(msg: Any) -> None:
                loop.call_soon(front.on_message, link, msg)

            partition = PartitionManager(
                loop, self.pool, to_front,
                executor_options={"root_wd": self.wd, "aux_dir": self.aux_dir, "env_schema": self.env_schema,
                                  "zmq_address": front.zmq_address, "kill_grace": cfg.kill_grace},
                dry_run=cfg.dry_run, launcher=self.launcher, deadline=self.end_time,
            )
            try:
                missing = await partition.prepare()
            except ResourceError as exc:
                sys.stderr.write(f"qcg-pm-service: error: {exc}\n")
                return 1
            if missing:
                sys.stderr.write(f"qcg-pm-service: warning: no node agent came up on {', '.join(missing)}; "
                                 f"those nodes are left out\n")
            front_pool = ResourcePool(copy.deepcopy(partition.pool.nodes))
            link = front.add_link("partition-0", front_pool, to_partition)
        elif cfg.slurm_partition_nodes:
            assert net is not None and hub is not None
            try:
                spawned = self._spawn_partitions(loop, net.address, changed, front)
            except OSError as exc:
                sys.stderr.write(f"qcg-pm-service: error: cannot start the partition managers: {exc}\n")
                return 2
        journal.record("start", id=self.instance_id, version=__version__, resumed=bool(self.replay),
                       file_mode=self.file_path is not None and not cfg.net, file_path=self.file_path)
        journal_writer.flush()  # at once: a run killed within the first flush interval stays resumable
        _log.info("resources: %d nodes, %d cores%s", self.pool.total_nodes, self.pool.total_cores,
                  " (one core reserved for the service)" if cfg.system_core else "")
        stop_signal: List[int] = []

        def on_signal(signum: int) -> None:
            if not stop_signal:
                _log.warning("signal %d received: stopping", signum)
            stop_signal.append(signum)
            changed.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        if cfg.lifeline_fd is not None:

            def parent_gone() -> None:  # the program that started us is gone: do not outlive it
                if not front.finish_requested:
                    _log.warning("the parent program exited: stopping")
                front.finish_requested = True
                changed.set()

            watch_lifeline(loop, cfg.lifeline_fd, parent_gone)

        def report_ready() -> None:
            # after the partitions this governor started registered: a client's first submit must fit
            if cfg.ready_fd is None:
                return
            ready = json.dumps({"address": front.zmq_address, "pub": front.publisher_address, "aux": self.aux_dir,
                                "id": self.instance_id})
            try:
                os.write(cfg.ready_fd, ready.encode() + b"\n")
                os.close(cfg.ready_fd)
            except OSError as exc:
                _log.warning("cannot report readiness on fd %d: %s", cfg.ready_fd, exc)

        progress = Progress(front, sys.stdout) if cfg.show_progress else None
        if progress:
            progress.start(loop)
        try:
            if self.replay is not None:
                _stop_leftovers(self.replay)
                restored = front.replay(self.replay)
                _log.warning("resumed from %s: %d jobs restored, %d tasks already final", self.aux_dir,
                             restored, front.tasks_done)
                if self.replay.file_mode:
                    # the original run was driven by a request file: end once every job has ended
                    front.finish_after_all = True
            if hub is not None:
                problem = await self._wait_partitions(front, hub, spawned, changed, stop_signal)
                if problem is not None:
                    _log.error("%s", problem)
                    sys.stderr.write(f"qcg-pm-service: error: {problem}\n")
                    front.stopping = True
                    for lk in front.links:
                        if lk.live:
                            lk.send(ShutdownMsg("start-up failed"))
                    hub.flush()
                    for child in spawned:
                        await child.wait_exit(10.0)
                    return 1
            if spawned:
                front.partitions_final = True
                front.flush_dispatch()  # fails what waits, if every partition is already gone
            if net is not None and not (governor and not cfg.slurm_partition_nodes):
                # clients find the address once a submit can be served (agents up, partitions registered)
                self._write_address(net.address)
            report_ready()
            file_done = await self._process_file(front, journal, stop_signal)
            if file_done and not front.finish_after_all and not front.finish_requested and not cfg.net:
                if not front.all_done:
                    running = front.active_jobs
                    _log.warning("the request file ended without finishAfterAllTasksDone: %d unfinished jobs "
                                 "are stopped now", running)
                    sys.stderr.write(f"qcg-pm-service: warning: request file ended without "
                                     f"finishAfterAllTasksDone; {running} unfinished jobs were stopped\n")
                front.finish_requested = True
            while not stop_signal:
                if front.finish_requested or (front.finish_after_all and front.all_done):
                    break
                changed.clear()
                await changed.wait()
            # shutdown: stop every task, wait for every partition to report it stopped
            front.stopping = True
            for lk in front.links:
                if lk.live:
                    lk.send(ShutdownMsg("finish"))
            while any(lk.live for lk in front.links):
                changed.clear()
                await changed.wait()
            if hub is not None:
                hub.flush()
            for child in spawned:
                await child.wait_exit(30.0)
            if partition is not None:
                await partition.finish()
            self._write_final_status(front)
        finally:
            if hub is not None:
                hub.close()
            for child in spawned:
                child.kill()
            if net is not None:
                await net.close()
                with contextlib.suppress(OSError):  # nobody listens there any more
                    os.unlink(os.path.join(self.aux_dir, "address"))
            if publisher is not None:
                publisher.close()
            if progress:
                progress.stop()
            flusher.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            _log.warning("service %s finished: %d tasks ended, %d jobs in registry", self.instance_id,
                         front.tasks_done, len(front.jobs))
            close_service_log(handler)
        if stop_signal:
            return 128 + stop_signal[0]
        return 0

    def _write_address(self, address: str) -> None:
        with open(os.path.join(self.aux_dir, "address"), "w", encoding="utf-8") as fh:
            fh.write(address + "\n")

    def _spawn_partitions(self, loop: asyncio.AbstractEventLoop, address: str,
                          changed: asyncio.Event, front: Front) -> List[_Child]:
        """Start one partition manager process per group of ``--slurm-partition-nodes``
        nodes: with ``srun`` on the group's first node inside Slurm, else as local processes
        (the same command line splits virtual ``--nodes`` on a laptop)."""
        cfg = self.cfg
        size = cfg.slurm_partition_nodes or 1
        groups = [self.nodes[i:i + size] for i in range(0, len(self.nodes), size)]
        children = []
        for i, group in enumerate(groups):
            pid_name = f"partition-{i}"
            spec = ",".join(f"{n.name}:{n.total}" + (f":{len(n.gpu_ids)}" if n.gpu_ids else "") for n in group)
            aux = os.path.join(self.aux_dir, pid_name)
            os.makedirs(aux, exist_ok=True)
            args = [sys.executable, "-m", "qcg_pilotjob.service", "--parent", address, "--id", pid_name,
                    "--nodes", spec, "--wd", self.wd, "--aux-dir", aux, "--kill-grace", str(cfg.kill_grace),
                    "--envschema", cfg.envschema, "--log", cfg.log, "--heartbeat", str(cfg.heartbeat)]
            if cfg.system_core:
                args.append("--system-core")
            if cfg.dry_run:
                args.append("--dry-run")
            if self.slurm is not None:
                args += ["--launcher", self.launcher]
                args = ["srun", "--overlap", "-N", "1", "-n", "1", "-w", group[0].name, "--cpu-bind=none",
                        "--mem-per-cpu=0", "-J", pid_name, "-u", *args]
            children.append(_Child(loop, pid_name, args, aux, changed, front, lifeline=self.slurm is None))
        _log.info("started %d partition managers of up to %d nodes", len(children), size)
        return children

    async def _wait_partitions(self, front: Front, hub: PartitionHub, spawned: List[_Child],
                               changed: asyncio.Event, stop_signal: List[int],
                               timeout: float = 120.0) -> Optional[str]:
        """Wait until every spawned partition registered (or, with plain ``--governor``
        and a request file, until one did). Returns a problem, or None."""
        if not spawned and not self.requests:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        timer = loop.call_later(timeout, changed.set)
        try:
            while not stop_signal and not front.finish_requested:
                if spawned:
                    if all(c.name in hub.registered for c in spawned):
                        return None
                    for child in spawned:
                        if child.name in hub.refused:
                            return f"partition {child.name} was refused: {hub.refused[child.name]}"
                        if child.exited and child.name not in hub.registered:
                            return (f"partition manager {child.name} exited with code {child.returncode} before "
                                    f"registering; see {child.stderr_path}: {child.last_error()}")
                elif hub.registered:
                    return None
                if loop.time() >= deadline:
                    missing = [c.name for c in spawned if c.name not in hub.registered]
                    return (f"partition managers did not register within {timeout:g}s: "
                            f"{', '.join(missing) or 'none registered'}")
                changed.clear()
                await changed.wait()
            return None
        finally:
            timer.cancel()

    async def _process_file(self, front: Front, journal: Journal, stop_signal: List[int]) -> bool:
        if self.file_path is None:
            return False
        total = len(self.requests)
        for index in range(self.request_offset, total):
            if stop_signal or front.finish_requested:
                return False  # interrupted: the file did not end
            req = self.requests[index]
            resp = front.handle_request(req)
            journal.record("file", path=self.file_path, done=index + 1)
            name = req.get("request") if isinstance(req, dict) else None
            if resp.get("code") == 0:
                _log.info("request %d/%d (%s): %s", index + 1, total, name, _short(resp))
            else:
                _log.error("request %d/%d (%s) failed: %s", index + 1, total, name, resp.get("message"))
            if index % 64 == 63:
                await asyncio.sleep(0)  # let started tasks be reaped between large batches
        return True

    def _write_final_status(self, front: Front) -> None:
        status: Dict[str, Any] = front.status_data()
        status["System"].update({
            "Version": __version__,
            "Wd": self.wd,
            "AuxDir": self.aux_dir,
            "PythonVersion": sys.version.split()[0],
            "Python": sys.executable,
            "Platform": sys.platform,
        })
        text = json.dumps(status, indent=2)
        for name in ("final_status", "final_status.json"):
            with open(os.path.join(self.aux_dir, name), "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
