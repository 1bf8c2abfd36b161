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
    dry_run: bool = False               # start no processes: tasks "succeed" at once (benchmarks)
    heartbeat: float = 1.0              # governor <-> partition heartbeat interval, seconds
    aux_dir: Optional[str] = None       # a partition started by a governor: where its files go
    launcher: Optional[str] = None      # a partition started by a governor: local, agents or srun
    ready_fd: Optional[int] = None      # LocalManager: where to write the ready line
    lifeline_fd: Optional[int] = None   # LocalManager: EOF here means the parent is gone

    def validate(self) -> ServiceConfig:
        """Return a normalised copy; raise :class:`ConfigError` naming the bad option."""
        cfg = self
        if cfg.envschema not in ("auto", "slurm"):
            raise ConfigError(f"--envschema: must be auto or slurm, not {cfg.envschema!r}")
        if cfg.resources not in ("auto", "slurm", "local"):
            raise ConfigError(f"--resources: must be auto, slurm or local, not {cfg.resources!r}")
        if cfg.report_format not in ("text", "json", "none"):
            raise ConfigError(f"--report-format: must be text, json or none, not {cfg.report_format!r}")
        if not cfg.report_file:
            raise ConfigError("--report-file: must not be empty")
        if cfg.log.lower() not in LOG_LEVELS:
            raise ConfigError(f"--log: must be one of {', '.join(LOG_LEVELS)}, not {cfg.log!r}")
        if cfg.kill_grace < 0:
            raise ConfigError("--kill-grace: must not be negative")
        for opt, val in (("--net-port", cfg.net_port), ("--net-port-min", cfg.net_port_min),
                         ("--net-port-max", cfg.net_port_max)):
            if val is not None and not 1 <= val <= 65535:
                raise ConfigError(f"{opt}: {val} is not a TCP port (1-65535)")
        if cfg.net_port is not None or cfg.net_port_min is not None or cfg.net_port_max is not None:
            cfg = replace(cfg, net=True)
        cfg = replace(cfg, net_port_min=2222 if cfg.net_port_min is None else cfg.net_port_min,
                      net_port_max=9999 if cfg.net_port_max is None else cfg.net_port_max)
        assert cfg.net_port_min is not None and cfg.net_port_max is not None
        if cfg.net_port_min > cfg.net_port_max:
            raise ConfigError(f"--net-port-min ({cfg.net_port_min}) is larger than --net-port-max "
                              f"({cfg.net_port_max})")
        if cfg.slurm_partition_nodes is not None and cfg.slurm_partition_nodes < 1:
            raise ConfigError("--slurm-partition-nodes: must be at least 1")
        b, e = cfg.slurm_limit_nodes_range_begin, cfg.slurm_limit_nodes_range_end
        if b is not None and b < 0:
            raise ConfigError("--slurm-limit-nodes-range-begin: must not be negative")
        if e is not None and e < 0:
            raise ConfigError("--slurm-limit-nodes-range-end: must not be negative")
        if b is not None and e is not None and b >= e:
            raise ConfigError("--slurm-limit-nodes-range-begin must be smaller than "
                              "--slurm-limit-nodes-range-end (begin inclusive, end exclusive)")
        if cfg.id is not None and (not cfg.id or any(c in cfg.id for c in "/\\\0 ")):
            raise ConfigError(f"--id: {cfg.id!r} cannot be used as part of a directory name")
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
        if cfg.heartbeat <= 0:
            raise ConfigError("--heartbeat: must be greater than zero")
        if cfg.parent is not None:
            if cfg.governor:
                raise ConfigError("--parent: a governor cannot register with a parent (one level of governors)")
            if cfg.file or cfg.net or cfg.resume:
                raise ConfigError("--parent: a partition manager takes its jobs from the governor; "
                                  "--file-path, --net and --resume cannot be used with it")
            return cfg
        if not cfg.file and not cfg.net and not cfg.governor and cfg.resume is None:
            raise ConfigError("no interface: give --file-path FILE (or --net), or --resume DIR")
        if cfg.launcher not in (None, "local", "agents", "srun"):
            raise ConfigError(f"--launcher: must be local, agents or srun, not {cfg.launcher!r}")
        return cfg

    def instance_id(self) -> str:
        return self.id or f"{socket.gethostname()}.{random.randrange(10000)}"
