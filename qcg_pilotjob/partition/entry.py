"""``qcg-pm-service --parent ADDR``: run as a partition manager of that governor.

A governor starts these itself (``--slurm-partition-nodes``: local processes, or srun
steps inside Slurm); they may also be started by hand, on any host that reaches the
governor's address.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

from .. import __version__
from ..auxdir import aux_dir, make_private_dir
from ..errors import ConfigError
from ..keys import ENV as KEYS_ENV
from ..keys import find_keys
from ..resources import ResourcePool, local_nodes, parse_nodes_spec
from ..service.config import ServiceConfig
from ..service.logs import close_service_log, open_service_log
from ..slurm.allocation import job_end_time
from .remote import RemotePartition

__all__ = ["run_partition"]

_EXIT_TEXTS = {
    2: "registration refused",
    3: "no governor answered at {parent}",
    4: "no node agent came up",
}


def run_partition(cfg: ServiceConfig) -> int:
    """Run until the governor stops this partition; returns the exit code."""
    assert cfg.parent is not None
    nodes = parse_nodes_spec(cfg.nodes) if cfg.nodes is not None else local_nodes()
    pool = ResourcePool(nodes, system_core=cfg.system_core)
    wd = os.path.abspath(cfg.wd)
    pid_name = cfg.instance_id()
    aux = cfg.aux_dir or aux_dir(wd, pid_name)
    try:
        make_private_dir(aux)
    except OSError as exc:
        raise ConfigError(f"cannot create the partition's directory {aux}: {exc.strerror}") from None
    path = os.path.join(aux, "service.log")
    slurm = cfg.launcher in ("agents", "srun")
    # the governor's run keys: from the environment of a partition it started, else from the
    # user's key directory (a partition started by hand); none: a governor with --insecure-net
    keys = find_keys(cfg.parent)
    if keys is not None:
        os.environ[KEYS_ENV] = keys.client_text()  # its tasks and agents inherit them
    remote = RemotePartition(
        pid_name, cfg.parent, pool, lifeline_fd=cfg.lifeline_fd, dry_run=cfg.dry_run, keys=keys,
        launcher=cfg.launcher or "local", agent_timeout=cfg.nl_init_timeout, ready_threshold=cfg.nl_ready_threshold,
        deadline=job_end_time(os.environ["SLURM_JOB_ID"]) if slurm and os.environ.get("SLURM_JOB_ID") else None,
        executor_options={"root_wd": wd, "aux_dir": aux,
                          "env_schema": "slurm" if cfg.envschema == "slurm" or (cfg.envschema == "auto" and slurm)
                          else "none",
                          "zmq_address": cfg.parent, "kill_grace": cfg.kill_grace,
                          "keep_children": cfg.keep_task_children},
    )
    first = (f"partition {pid_name} version {__version__} started {time.strftime('%Y-%m-%d %H:%M:%S')} "
             f"@ {socket.gethostname()} for governor {cfg.parent}")
    try:
        handler = open_service_log(path, first, cfg.log)
    except OSError as exc:
        raise ConfigError(f"partition {pid_name}: cannot write {path}: {exc}") from None
    try:
        code = asyncio.run(remote.run())
    finally:
        close_service_log(handler)
    text = _EXIT_TEXTS.get(code)
    if text is not None:
        detail = text.format(parent=cfg.parent)
        sys.stderr.write(f"qcg-pm-service: error: partition {pid_name}: {detail} (see {path})\n")
    return code
