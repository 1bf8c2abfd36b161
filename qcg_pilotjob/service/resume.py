"""``--resume``: continue a run from its journal.

The first run records the options that shape it (:data:`RECORDED`) in the journal's start
record. ``--resume DIR`` alone takes them from there; an option given again on the
command line wins. Before the journal is replayed, tasks that the killed run left
running are ended (they run again: their end was not recorded).

>>> from qcg_pilotjob.front.journal import Replay
>>> cfg = ServiceConfig(resume="aux")
>>> resumed_config(cfg, Replay(config={"governor": True, "nodes": "a:2,b:2", "slurm_partition_nodes": 1})).nodes
'a:2,b:2'
>>> resumed_config(ServiceConfig(resume="aux", nodes="4"), Replay(config={"nodes": "a:2"})).nodes
'4'
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict

from ..front.journal import Replay
from ..processes import end_process_groups
from .config import ServiceConfig

__all__ = ["RECORDED", "recorded_config", "resumed_config", "stop_leftovers"]

_log = logging.getLogger("qcg_pilotjob.service")

#: options kept in the journal; a resume without them on its command line uses these
RECORDED = ("governor", "nodes", "slurm_partition_nodes", "system_core", "dry_run", "net", "report_format",
            "report_file", "envschema", "kill_grace")

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServiceConfig)}


def recorded_config(cfg: ServiceConfig) -> Dict[str, Any]:
    return {name: getattr(cfg, name) for name in RECORDED}


def resumed_config(cfg: ServiceConfig, replay: Replay) -> ServiceConfig:
    """``cfg`` with the recorded options of the first run where ``cfg`` has the default."""
    changes = {name: value for name, value in replay.config.items()
               if name in RECORDED and getattr(cfg, name) == _DEFAULTS[name] and value != _DEFAULTS[name]}
    if not changes:
        return cfg
    _log.info("resume: options of the first run used: %s", ", ".join(f"{k}={v}" for k, v in sorted(changes.items())))
    return dataclasses.replace(cfg, **changes).validate()


def stop_leftovers(replay: Replay) -> int:
    """Kill the process groups of tasks a killed service left running (they run again)."""
    procs = [(pid, started) for pid, started in replay.running.values()]
    ended = end_process_groups(procs)
    if ended:
        _log.warning("resume: killed %d task(s) left running by the previous run", ended)
    return ended
