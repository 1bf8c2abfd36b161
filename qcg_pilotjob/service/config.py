"""The service's configuration, checked before anything starts.

>>> cfg = ServiceConfig(file_path="jobs.json", nodes="4")
>>> cfg.validate().file
True
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field, replace
from typing import List, Optional

from ..errors import ConfigError

__all__ = ["LOG_LEVELS", "ServiceConfig"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "notset")


@dataclass(frozen=True)
class ServiceConfig:
    net: bool = False
    net_port: Optional[int] = None
    net_port_min: Optional[int] = None   # None: 2222, and --net not implied
    net_port_max: Optional[int] = None   # None: 9999, and --net not implied
    net_host: Optional[str] = None      # None: loopback, or the node's address inside Slurm
    insecure_net: bool = False          # no CURVE: anyone who reaches the interface may use it
    file: bool = False
    file_path: Optional[str] = None
    wd: str = "."
    envschema: str = "auto"
    resources: str = "auto"
    report_format: str = "text"
    report_file: str = "jobs.report"
    nodes: Optional[str] = None
    log: str = "info"
    system_core: bool = False
    disable_nl: bool = False
    show_progress: bool = False
    governor: bool = False
    parent: Optional[str] = None
    id: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    slurm_partition_nodes: Optional[int] = None
    slurm_limit_nodes_range_begin: Optional[int] = None
    slurm_limit_nodes_range_end: Optional[int] = None
    resume: Optional[str] = None
    kill_grace: float = 10.0
    keep_task_children: bool = False    # leave what a task leaves behind running (daemons on purpose)
    prune_finished: bool = False        # finished iterations keep their state alone (very long runs)
    # QCG-PilotJob 0.14's other options (docs/usage.md, "Options kept for QCG-PilotJob 0.14")
    disable_pub: bool = False           # no status-event publisher
    net_pub_port: Optional[int] = None  # the publisher's port (else one of the --net-port range)
    nl_init_timeout: float = 120.0      # seconds to wait for the node agents
    nl_ready_threshold: Optional[float] = None  # fraction of agents that must come up (None: at least one)
    nl_start_method: str = "slurm"      # how node agents start (srun; "ssh" is taken as srun)
    slurm_resources_file: Optional[str] = None  # the nodes, as QCG-PilotJob's Resources.to_dict JSON
    enable_rt_stats: bool = False       # (every task's start and end are in jobs.report anyway)
    wrapper_rt_stats: Optional[str] = None
    enable_proc_stats: bool = False     # (no effect)
    dry_run: bool = False               # start no processes: tasks "succeed" at once (benchmarks)
    heartbeat: float = 1.0              # governor <-> partition heartbeat interval, seconds
    aux_dir: Optional[str] = None       # a partition started by a governor: where its files go
    launcher: Optional[str] = None      # a partition started by a governor: local, agents or srun
    ready_fd: Optional[int] = None      # LocalManager: where to write the ready line
    lifeline_fd: Optional[int] = None   # LocalManager: EOF here means the parent is gone

    def validate(self) -> ServiceConfig:
        """Return a normalised copy; raise :class:`ConfigError` naming the bad option."""
        self._check_general()
        cfg = self._with_net_ports()
        cfg._check_slurm_partitions()
        if cfg.id is not None and (not cfg.id or any(c in cfg.id for c in "/\\\0 ")):
            raise ConfigError(f"--id: {cfg.id!r} cannot be used as part of a directory name")
        cfg = cfg._with_implied_modes()
        if cfg.heartbeat <= 0:
            raise ConfigError("--heartbeat: must be greater than zero")
        if not cfg.nl_init_timeout > 0:
            raise ConfigError("--nl-init-timeout: must be greater than zero")
        if cfg.nl_ready_threshold is not None and not 0 < cfg.nl_ready_threshold <= 1:
            raise ConfigError(f"--nl-ready-threshold: {cfg.nl_ready_threshold} is not in (0, 1]")
        if cfg.net_pub_port is not None and not 0 < cfg.net_pub_port < 65536:
            raise ConfigError(f"--net-pub-port: {cfg.net_pub_port} is not a port number")
        cfg._check_interfaces()
        return cfg

    def _check_general(self) -> None:
        """The choice options, the report file, the log level and the kill grace."""
        if self.envschema not in ("auto", "slurm"):
            raise ConfigError(f"--envschema: must be auto or slurm, not {self.envschema!r}")
        if self.resources not in ("auto", "slurm", "local"):
            raise ConfigError(f"--resources: must be auto, slurm or local, not {self.resources!r}")
        if self.report_format not in ("text", "json", "none"):
            raise ConfigError(f"--report-format: must be text, json or none, not {self.report_format!r}")
        if not self.report_file:
            raise ConfigError("--report-file: must not be empty")
        if self.log.lower() not in LOG_LEVELS:
            raise ConfigError(f"--log: must be one of {', '.join(LOG_LEVELS)}, not {self.log!r}")
        if self.kill_grace < 0:
            raise ConfigError("--kill-grace: must not be negative")

    def _with_net_ports(self) -> ServiceConfig:
        """Check the ports; any of them implies ``--net``; the range gets its defaults."""
        for opt, val in (("--net-port", self.net_port), ("--net-port-min", self.net_port_min),
                         ("--net-port-max", self.net_port_max)):
            if val is not None and not 1 <= val <= 65535:
                raise ConfigError(f"{opt}: {val} is not a TCP port (1-65535)")
        cfg = self
        if cfg.net_port is not None or cfg.net_port_min is not None or cfg.net_port_max is not None:
            cfg = replace(cfg, net=True)
        cfg = replace(cfg, net_port_min=2222 if cfg.net_port_min is None else cfg.net_port_min,
                      net_port_max=9999 if cfg.net_port_max is None else cfg.net_port_max)
        assert cfg.net_port_min is not None and cfg.net_port_max is not None
        if cfg.net_port_min > cfg.net_port_max:
            raise ConfigError(f"--net-port-min ({cfg.net_port_min}) is larger than --net-port-max "
                              f"({cfg.net_port_max})")
        return cfg

    def _check_slurm_partitions(self) -> None:
        """``--slurm-partition-nodes`` and the ``--slurm-limit-nodes-range-*`` pair."""
        if self.slurm_partition_nodes is not None and self.slurm_partition_nodes < 1:
            raise ConfigError("--slurm-partition-nodes: must be at least 1")
        b, e = self.slurm_limit_nodes_range_begin, self.slurm_limit_nodes_range_end
        if b is not None and b < 0:
            raise ConfigError("--slurm-limit-nodes-range-begin: must not be negative")
        if e is not None and e < 0:
            raise ConfigError("--slurm-limit-nodes-range-end: must not be negative")
        if b is not None and e is not None and b >= e:
            raise ConfigError("--slurm-limit-nodes-range-begin must be smaller than "
                              "--slurm-limit-nodes-range-end (begin inclusive, end exclusive)")

    def _with_implied_modes(self) -> ServiceConfig:
        """Options implied by others: ``--nodes`` means local resources, a file path the file
        interface, partition nodes a governor; the file interface has a default path."""
        cfg = self
        if cfg.nodes is not None:
            if cfg.resources == "slurm":
                raise ConfigError("--nodes implies --resources local; it cannot be used with --resources slurm")
            cfg = replace(cfg, resources="local")
        if cfg.file_path is not None:
            cfg = replace(cfg, file=True)
        if cfg.slurm_partition_nodes is not None:
            cfg = replace(cfg, governor=True)
        if cfg.file and cfg.file_path is None:
            cfg = replace(cfg, file_path="qcg_pm_reqs.json")
        return cfg

    def _check_interfaces(self) -> None:
        """Where jobs come from: a partition manager (``--parent``) from its governor only;
        anything else needs an interface. The launcher is checked only without a parent."""
        if self.parent is not None:
            if self.governor:
                raise ConfigError("--parent: a governor cannot register with a parent (one level of governors)")
            if self.file or self.net or self.resume:
                raise ConfigError("--parent: a partition manager takes its jobs from the governor; "
                                  "--file-path, --net and --resume cannot be used with it")
            return
        if not self.file and not self.net and not self.governor and self.resume is None:
            raise ConfigError("no interface: give --file-path FILE (or --net), or --resume DIR")
        if self.launcher not in (None, "local", "agents", "srun"):
            raise ConfigError(f"--launcher: must be local, agents or srun, not {self.launcher!r}")

    def instance_id(self) -> str:
        return self.id or f"{socket.gethostname()}.{random.randrange(10000)}"
