"""The running service: one front, its partitions, its interfaces, in named phases.

:meth:`Service.run` goes through the phases in order — open the network interface,
start the partitions, resume, wait for partitions to register, serve (request file and
clients), stop the partitions, write the final status — inside one
:class:`contextlib.AsyncExitStack`: each phase registers the cleanup of what it opened,
so however the run ends (an error in a phase, a signal, an exception) everything opened
is closed in reverse order, the ``address`` file is removed and the log is closed.

Everything runs on one asyncio loop. The service waits on events only: a change of the
front (a request, a batch of task events) wakes the main coroutine, which checks whether
its work is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any, Dict, List, Optional

import zmq

from .. import __version__
from ..auxdir import aux_dir, instance_of, make_private_dir, write_private_file
from ..errors import ConfigError, ResourceError
from ..front.core import Front
from ..front.hub import PartitionHub
from ..front.journal import JOURNAL_NAME, Journal, Replay, find_aux_dir, read_journal
from ..front.reports import FileImage, Flusher, LineWriter
from ..keys import ENV as KEYS_ENV
from ..keys import RunKeys, save_aux_keys, save_user_keys
from ..lifeline import watch_lifeline
from ..partition.manager import PartitionManager
from ..protocol.batch import BatchSender
from ..protocol.heartbeat import LOST_AFTER_BEATS
from ..protocol.messages import ShutdownMsg
from ..protocol.transport import async_context, listen_host, start_authenticator
from ..resources import Node, ResourcePool
from ..slurm.allocation import SlurmAllocation
from .allocation import find_nodes
from .config import ServiceConfig
from .logs import close_service_log, open_service_log
from .netiface import EventPublisher, NetInterface, Subscriptions
from .nodefile import write_nodes
from .partitions import PartitionProcess, spawn_partitions, stopper_for
from .progress import Progress
from .requestfile import load_requests, process_requests
from .resume import recorded_config, resumed_config, stop_leftovers

__all__ = ["Service", "StartupError", "load_requests"]

_log = logging.getLogger("qcg_pilotjob.service")


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class StartupError(Exception):
    """A phase could not start; ``code`` is the exit code, the text goes to stderr."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Service:
    """One service instance; :meth:`run` returns the process exit code."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.replay: Optional[Replay] = None
        self.requests: List[Any] = []
        self.request_offset = 0
        self.resumed_options: Dict[str, Any] = {}
        # things that can fail are done before the loop starts: a clear error, exit non-zero
        if cfg.resume:
            self.aux_dir = find_aux_dir(cfg.resume)
            self.replay = read_journal(self.aux_dir)
            cfg, self.resumed_options = resumed_config(cfg, self.replay)
            self.instance_id = instance_of(self.aux_dir)
        self.wd = os.path.abspath(cfg.wd)
        if not os.path.isdir(self.wd):
            try:
                os.makedirs(self.wd, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"--wd: cannot create {self.wd}: {exc.strerror}") from None
        if not cfg.resume:
            self.instance_id = cfg.instance_id()
            self.aux_dir = aux_dir(self.wd, self.instance_id)
            if os.path.exists(self.aux_dir):
                raise ConfigError(f"--id: {self.aux_dir} already exists (a run with id {self.instance_id}); "
                                  f"choose another --id, or continue that run with --resume {self.aux_dir}")
        self.cfg = cfg
        self.file_path = self._request_file(cfg)
        self._resources(cfg)
        try:
            make_private_dir(self.aux_dir)
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

    def _request_file(self, cfg: ServiceConfig) -> Optional[str]:
        path = cfg.file_path
        replay = self.replay
        if path is None and replay is not None and replay.file_mode and replay.file_path \
                and os.path.isfile(replay.file_path):
            path = replay.file_path
        if path is None:
            return None
        path = os.path.abspath(path)
        self.requests = load_requests(path)
        if replay is not None:  # requests of this file already done before the kill are not done again
            self.request_offset = replay.file_done.get(path, 0)
        return path

    def _resources(self, cfg: ServiceConfig) -> None:
        found = find_nodes(cfg)
        self.nodes: List[Node] = found.nodes
        self.slurm: Optional[SlurmAllocation] = found.slurm
        self.end_time: Optional[float] = found.end_time
        if cfg.disable_nl and self.slurm is None:
            raise ConfigError("--disable-nl: only inside a Slurm allocation (it replaces the node agents by one "
                              "srun step per task)")
        self.launcher = "local" if self.slurm is None else ("srun" if cfg.disable_nl else "agents")
        self.pool = ResourcePool([n.fresh() for n in self.nodes], system_core=cfg.system_core)

    # --- the run ---------------------------------------------------------------------------
    def run(self) -> int:
        tags = f" (with tags {','.join(self.cfg.tags)})" if self.cfg.tags else ""
        first = (f"service {self.instance_id} version {__version__} started {time.strftime('%Y-%m-%d %H:%M:%S')} "
                 f"@ {socket.gethostname()}{tags}")
        path = os.path.join(self.aux_dir, "service.log")
        try:
            handler = open_service_log(path, first, self.cfg.log)
        except OSError as exc:  # a full disk before the start: one line, no traceback
            sys.stderr.write(f"qcg-pm-service: error: cannot write {path}: {exc}\n")
            return 2
        try:
            return asyncio.run(self._main())
        except StartupError as exc:
            _log.error("%s", exc)
            sys.stderr.write(f"qcg-pm-service: error: {exc}\n")
            return exc.code
        finally:
            close_service_log(handler)

    async def _main(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.changed = asyncio.Event()
        self.stop_signal: List[int] = []
        self.net: Optional[NetInterface] = None
        self.hub: Optional[PartitionHub] = None
        self.partition: Optional[PartitionManager] = None
        self.spawned: List[PartitionProcess] = []
        async with contextlib.AsyncExitStack() as stack:
            self._open_files(stack)
            await self._open_network(stack)
            await self._start_partitions(stack)
            self._record_start()
            self._handle_signals(stack)
            self._resume()
            await self._wait_partitions()
            self._announce()
            await self._serve()
            await self._stop_partitions()
            self._write_final_status()
        if self._lost_lines():
            return 1
        return 128 + self.stop_signal[0] if self.stop_signal else 0

    def _lost_lines(self) -> bool:
        """Whether some lines of the report, journal or final status never reached the disk;
        if so, say which (log and stderr)."""
        lost = self.flusher.lost
        for w in lost:
            _log.error("%d bytes of %s could not be written: %s", w.unwritten, w.path, w.error)
        if lost:
            what = "; ".join(f"{w.path} ({w.unwritten} bytes: {w.error})" for w in lost)
            sys.stderr.write(f"qcg-pm-service: error: lines could not be written: {what}\n")
        return bool(lost)

    def _open_files(self, stack: contextlib.AsyncExitStack) -> None:
        # the journal and the report are on disk at the end of each loop turn that added a line:
        # a task whose end was handled never runs again after a kill (docs/reliability.md)
        flusher = self.flusher = Flusher(self.loop, [], per_turn=[self.journal_writer, self.report])
        stack.callback(flusher.close)
        self.journal = Journal(self.journal_writer)
        self.front = Front(instance_id=self.instance_id, report=self.report, report_format=self.cfg.report_format,
                           journal=self.journal, on_change=self.changed.set)
        self.front.prune = self.cfg.prune_finished
        stack.callback(lambda: _log.warning("service %s finished: %d tasks ended, %d jobs in registry",
                                            self.instance_id, self.front.tasks_done, len(self.front.jobs)))
        if self.file_path:
            self.front.add_interface("file")
        if self.cfg.show_progress:
            progress = Progress(self.front, sys.stdout)
            progress.start(self.loop)
            stack.callback(progress.stop)

    async def _open_network(self, stack: contextlib.AsyncExitStack) -> None:
        cfg = self.cfg
        if not (cfg.net or cfg.governor):
            return
        lo, hi = cfg.net_port_min or 2222, cfg.net_port_max or 9999
        keys = self._run_keys(stack)
        try:
            host = listen_host(self.slurm is not None, cfg.net_host)
            net = NetInterface(self.front, host=host, port=cfg.net_port, port_min=lo, port_max=hi, keys=keys)
        except zmq.ZMQError as exc:
            raise StartupError(f"cannot open the network interface (port {cfg.net_port or 'range'}): {exc}", 2) \
                from None
        self.net = net
        stack.push_async_callback(net.close)
        stack.callback(_remove, os.path.join(self.aux_dir, "address"))  # nobody listens there any more
        publisher: Optional[EventPublisher] = None
        if not cfg.disable_pub:
            try:
                publisher = EventPublisher(host, lo, hi, keys, port=cfg.net_pub_port,
                                           on_topics=self._subscriptions_changed)
            except zmq.ZMQError as exc:
                raise StartupError(f"cannot open the status publisher (port {cfg.net_pub_port or 'range'}): {exc}",
                                   2) from None
            publisher.start()
            stack.callback(publisher.close)
        if keys is not None:
            save_aux_keys(self.aux_dir, keys)
            user_keys = save_user_keys(net.address, keys)
            stack.callback(_remove, user_keys)
        self.front.attach_publisher(publisher.publish if publisher else None, net.address,
                                    publisher.address if publisher else None)
        if cfg.governor:
            self.hub = PartitionHub(self.front, BatchSender(net.sock, "partitions"), heartbeat=cfg.heartbeat,
                                    lost_after=LOST_AFTER_BEATS * cfg.heartbeat, on_change=self.changed.set)
            net.partition_handler = self.hub.on_frame
            self.hub.start()
            stack.callback(self.hub.close)
            if not cfg.slurm_partition_nodes:  # partitions started by hand register through it
                self._write_address(net.address)
        net.start()
        _log.info("network interface at %s, status events at %s", net.address,
                  publisher.address if publisher else "none (--disable-pub)")

    def _run_keys(self, stack: contextlib.AsyncExitStack) -> Optional[RunKeys]:
        """This run's CURVE keys and the authenticator that admits only their owner; None
        with ``--insecure-net`` (said on stderr and in the log)."""
        if self.cfg.insecure_net:
            text = ("--insecure-net: the network interface accepts anyone who can reach it; any such "
                    "peer can run commands as this user")
            _log.warning("%s", text)
            sys.stderr.write(f"qcg-pm-service: warning: {text}\n")
            return None
        keys = RunKeys.new()
        auth = start_authenticator(async_context(), keys)
        stack.callback(auth.stop)
        os.environ[KEYS_ENV] = keys.client_text()  # tasks, partitions and agents inherit it
        return keys

    async def _start_partitions(self, stack: contextlib.AsyncExitStack) -> None:
        if not self.cfg.governor:
            await self._start_local_partition(stack)
        elif self.cfg.slurm_partition_nodes:
            assert self.net is not None and self.hub is not None
            try:
                self.spawned = spawn_partitions(self.loop, self.cfg, self.nodes, self.net.address, self.wd,
                                                self.aux_dir, self._partition_exited,
                                                launcher=self.launcher if self.slurm is not None else None)
            except OSError as exc:
                raise StartupError(f"cannot start the partition managers: {exc}", 2) from None
            for child in self.spawned:
                stack.callback(child.kill)
        if self.hub is not None:
            self.hub.stopper_for = stopper_for(self.spawned, self.slurm.job_id if self.slurm else None)

    async def _start_local_partition(self, stack: contextlib.AsyncExitStack) -> None:
        """Single-manager mode: the same front with one partition in this process."""
        loop, front = self.loop, self.front

        def to_partition(msg: Any) -> None:
            assert self.partition is not None
            loop.call_soon(self.partition.receive, msg)

        def to_front(msg: Any) -> None:
            loop.call_soon(front.on_message, link, msg)

        self.partition = PartitionManager(
            loop, self.pool, to_front,
            executor_options={"root_wd": self.wd, "aux_dir": self.aux_dir, "env_schema": self.env_schema,
                              "zmq_address": front.zmq_address, "kill_grace": self.cfg.kill_grace,
                              "keep_children": self.cfg.keep_task_children},
            dry_run=self.cfg.dry_run, launcher=self.launcher, deadline=self.end_time)
        try:
            missing = await self.partition.prepare(self.cfg.nl_init_timeout, self.cfg.nl_ready_threshold)
        except ResourceError as exc:
            raise StartupError(str(exc), 1) from None
        stack.push_async_callback(self.partition.finish)
        if missing:
            sys.stderr.write(f"qcg-pm-service: warning: no node agent came up on {', '.join(missing)}; "
                             f"those nodes are left out\n")
        link = front.add_link("partition-0", ResourcePool([n.fresh() for n in self.partition.pool.nodes]), to_partition)
        link.node_usage = self.partition.pool.node_usage

    def _subscriptions_changed(self, subs: Subscriptions) -> None:
        self.front.iteration_events = subs.covers("IST")

    def _partition_exited(self, child: PartitionProcess) -> None:
        if self.hub is not None:
            self.hub.exited(child.name, child.returncode)
        self.changed.set()

    def _record_start(self) -> None:
        self.journal.record("start", id=self.instance_id, version=__version__, resumed=bool(self.replay),
                            file_mode=self.file_path is not None and not self.cfg.net, file_path=self.file_path,
                            config=recorded_config(self.cfg))
        if not self.cfg.governor or self.cfg.slurm_partition_nodes:  # (else partitions bring their own)
            write_nodes(self.aux_dir, self.pool.nodes, self.cfg.slurm_partition_nodes if self.cfg.governor else None)
        if not self.journal_writer.flush():  # at once: a run killed at once stays resumable
            raise StartupError(f"cannot write the journal {self.journal_writer.path}: {self.journal_writer.error}", 2)

    def _handle_signals(self, stack: contextlib.AsyncExitStack) -> None:
        def on_signal(signum: int) -> None:
            if not self.stop_signal:
                _log.warning("signal %d received: stopping", signum)
            self.stop_signal.append(signum)
            self.changed.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, on_signal, sig)
            stack.callback(self.loop.remove_signal_handler, sig)
        if self.cfg.lifeline_fd is not None:

            def parent_gone() -> None:  # the program that started us is gone: do not outlive it
                if self.front.request_finish():
                    _log.warning("the parent program exited: stopping")

            watch_lifeline(self.loop, self.cfg.lifeline_fd, parent_gone)

    def _resume(self) -> None:
        if self.replay is None:
            return
        if self.resumed_options:
            _log.info("resume: options of the first run used: %s",
                      ", ".join(f"{k}={v}" for k, v in sorted(self.resumed_options.items())))
        stop_leftovers(self.replay)
        restored = self.front.replay(self.replay)
        _log.warning("resumed from %s: %d jobs restored, %d tasks already final", self.aux_dir, restored,
                     self.front.tasks_done)
        if self.replay.file_mode:
            # the original run was driven by a request file: end once every job has ended
            self.front.request_finish_after_all(record=False)

    async def _wait_partitions(self, timeout: float = 120.0) -> None:
        """Wait until every spawned partition registered (or, with plain ``--governor``
        and a request file, until one did)."""
        hub = self.hub
        if hub is None or (not self.spawned and not self.requests):
            return
        deadline = self.loop.time() + timeout
        timer = self.loop.call_later(timeout, self.changed.set)
        try:
            while not self.stop_signal and not self.front.finish_requested:
                problem = self._registration_problem(hub, deadline, timeout)
                if problem == "":
                    break
                if problem is not None:
                    self.front.begin_stop()
                    for link in hub.live_links():
                        link.send(ShutdownMsg("start-up failed"))
                    hub.flush()
                    for child in self.spawned:
                        await child.wait_exit(10.0)
                    raise StartupError(problem, 1)
                self.changed.clear()
                await self.changed.wait()
        finally:
            timer.cancel()
        if self.spawned:
            self.front.close_membership()  # fails what waits, if every partition is already gone

    def _registration_problem(self, hub: PartitionHub, deadline: float, timeout: float) -> Optional[str]:
        """"" when registration is complete, None to wait on, or the problem."""
        if self.spawned:
            if all(c.name in hub.registered for c in self.spawned):
                return ""
            for child in self.spawned:
                if child.name in hub.refused:
                    return f"partition {child.name} was refused: {hub.refused[child.name]}"
                if child.exited and child.name not in hub.registered:
                    return (f"partition manager {child.name} exited with code {child.returncode} before "
                            f"registering; see {child.stderr_path}: {child.last_error()}")
        elif hub.registered:
            return ""
        if self.loop.time() >= deadline:
            missing = [c.name for c in self.spawned if c.name not in hub.registered]
            return f"partition managers did not register within {timeout:g}s: {', '.join(missing) or 'none registered'}"
        return None

    def _announce(self) -> None:
        """Clients find the address once a submit can be served; a LocalManager is told."""
        cfg = self.cfg
        reserved = ""
        if cfg.system_core:
            reserved = " (one core reserved in each partition)" if cfg.governor else " (one core reserved)"
        _log.info("resources: %d nodes, %d cores in %d partition(s)%s", self.front.total_nodes,
                  self.front.total_cores, sum(1 for lk in self.front.links if lk.live), reserved)
        if self.net is not None and not (cfg.governor and not cfg.slurm_partition_nodes):
            self._write_address(self.net.address)
        if cfg.ready_fd is None:
            return
        front = self.front
        ready = json.dumps({"address": front.zmq_address, "pub": front.publisher_address, "aux": self.aux_dir,
                            "id": self.instance_id})
        try:
            os.write(cfg.ready_fd, ready.encode() + b"\n")
            os.close(cfg.ready_fd)
        except OSError as exc:
            _log.warning("cannot report readiness on fd %d: %s", cfg.ready_fd, exc)

    async def _serve(self) -> None:
        front, cfg = self.front, self.cfg
        file_done = False
        if self.file_path is not None:
            file_done = await process_requests(front, self.journal, self.file_path, self.requests,
                                               self.request_offset,
                                               lambda: bool(self.stop_signal) or front.finish_requested)
        if file_done and not front.finish_after_all and not front.finish_requested and not cfg.net:
            # nothing else can ask for more work: run what the file asked for to the end, as
            # QCG-PilotJob 0.14 does (users' files rely on it); with --net, clients may still
            # submit, so the service serves until finish or finishAfterAllTasksDone
            _log.info("the request file ended without finishAfterAllTasksDone: its %d unfinished jobs run to "
                      "the end, then the service stops", front.active_jobs)
            front.request_finish_after_all()
        while not self.stop_signal:
            if front.finish_requested or (front.finish_after_all and front.all_done):
                break
            self.changed.clear()
            await self.changed.wait()

    async def _stop_partitions(self) -> None:
        """Stop every task; wait for every partition to report it stopped."""
        front = self.front
        front.begin_stop()
        for link in front.links:
            if link.live:
                link.send(ShutdownMsg("finish"))
        while any(link.live for link in front.links):
            self.changed.clear()
            await self.changed.wait()
        if self.hub is not None:
            self.hub.flush()
        for child in self.spawned:
            await child.wait_exit(30.0)

    # --- files -------------------------------------------------------------------------
    def _write_address(self, address: str) -> None:
        path = os.path.join(self.aux_dir, "address")
        try:  # the address alone, no newline (QCG-PilotJob's qcg-pm -p reads the file as it is), whole
            write_private_file(path, address.encode())
        except OSError as exc:  # clients given the address otherwise still reach the service
            _log.warning("cannot write %s: %s", path, exc)

    def _write_final_status(self) -> None:
        status: Dict[str, Any] = self.front_status()
        text = json.dumps(status, indent=2) + "\n"
        for name in ("final_status", "final_status.json"):
            image = FileImage(os.path.join(self.aux_dir, name))
            image.set(text)  # tried again when the files are closed, if it failed
            self.flusher.add(image)

    def front_status(self) -> Dict[str, Any]:
        from ..front.views import status

        data = status(self.front)
        data["System"].update({"Version": __version__, "Wd": self.wd, "AuxDir": self.aux_dir,
                               "PythonVersion": sys.version.split()[0], "Python": sys.executable,
                               "Platform": sys.platform})
        return data
