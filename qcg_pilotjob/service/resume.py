"""``--resume``: continue a run from its journal.

The first run records the options that shape it (:data:`RECORDED`) in the journal's start
record. ``--resume DIR`` alone takes them from there; an option given again on the
command line wins. Before the journal is replayed, tasks that the killed run left
running are ended (they run again: their end was not recorded).

>>> from qcg_pilotjob.front.journal import Replay
>>> cfg = ServiceConfig(resume="aux")
>>> resumed_config(cfg, Replay(config={"governor": True, "nodes": "a:2,b:2", "slurm_partition_nodes": 1}))[0].nodes
'a:2,b:2'
>>> resumed_config(ServiceConfig(resume="aux", nodes="4"), Replay(config={"nodes": "a:2"}))[0].nodes
'4'
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Dict, Tuple

from ..front.journal import Replay
from ..processes import end_process_groups
from .config import ServiceConfig

__all__ = ["RECORDED", "recorded_config", "resumed_config", "stop_leftovers"]

_log = logging.getLogger("qcg_pilotjob.service")

#: options kept in the journal; a resume without them on its command line uses these
RECORDED = ("wd", "governor", "nodes", "resources", "slurm_partition_nodes", "system_core", "dry_run", "net",
            "report_format", "report_file", "envschema", "kill_grace", "keep_task_children", "prune_finished")

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServiceConfig)}


def recorded_config(cfg: ServiceConfig) -> Dict[str, Any]:
    """The options to record (of a validated configuration; ``wd`` absolute)."""
    out = {name: getattr(cfg, name) for name in RECORDED}
    out["wd"] = os.path.abspath(cfg.wd)
    return out


def resumed_config(cfg: ServiceConfig, replay: Replay) -> Tuple[ServiceConfig, Dict[str, Any]]:
    """``cfg`` (validated) with the recorded options of the first run where ``cfg`` has
    the default, and the options so taken. The recorded ones were validated by the first
    run, so the result is not validated again (that would, e.g., turn ``--net`` on)."""
    changes = {name: value for name, value in replay.config.items()
               if name in RECORDED and getattr(cfg, name) == _DEFAULTS[name] and value != _DEFAULTS[name]}
    if cfg.nodes is not None or cfg.resources != _DEFAULTS["resources"]:
        changes.pop("resources", None)  # resources chosen on this command line win as a whole
        changes.pop("nodes", None)
    return (dataclasses.replace(cfg, **changes) if changes else cfg), changes


def stop_leftovers(replay: Replay) -> int:
    """Kill the process groups of tasks a killed service left running (they run again)."""
    procs = [(pid, started) for pid, started in replay.running.values()]
    ended = end_process_groups(procs)
    if ended:
        _log.warning("resume: killed %d task(s) left running by the previous run", ended)
    return ended
