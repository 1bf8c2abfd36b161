"""``qcg-pm top``: a live view of a running service or governor.

Every ``--interval`` seconds it asks the service for ``status`` with its partitions'
figures and shows: tasks queued, running, done and failed, overall and per partition;
cores in use per node; tasks ended per second (over the last interval) and the time
left at that rate. On a terminal the view is redrawn in place; otherwise (a pipe, a log
file) each refresh is a block of plain lines. It ends when the service ends (or after
``--count`` refreshes).

:class:`TopView` turns replies into text and is tested without a service.
"""

from __future__ import annotations

import re
import time
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["TopView", "bar", "eta_text"]

CLEAR = "\x1b[H\x1b[2J"


def eta_text(seconds: Optional[float]) -> str:
    """
    >>> eta_text(3725), eta_text(None)
    ('1:02:05', '?')
    """
    if seconds is None:
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def bar(used: int, total: int, width: int = 20) -> str:
    """
    >>> bar(2, 4, 8)
    '[####....]'
    """
    filled = 0 if total <= 0 else round(width * min(used, total) / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _natural(name: str) -> List[Any]:
    """partition-2 before partition-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class TopView:
    """What one refresh shows, from a ``status`` reply's data (with ``PartitionStats``)."""

    def __init__(self, max_nodes: int = 32) -> None:
        self.max_nodes = max_nodes
        self._last: Optional[Tuple[float, int]] = None  # (when, tasks ended) at the last refresh

    def figures(self, data: Dict[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
        now = time.monotonic() if now is None else now
        its = data.get("IterationStats", {})
        done = its.get("FinishedIterations", 0)
        failed = its.get("FailedIterations", 0) + its.get("CanceledIterations", 0) + its.get("OmittedIterations", 0)
        queued, running = its.get("InScheduleIterations", 0), its.get("ExecutingIterations", 0)
        ended = done + failed
        rate = None
        if self._last is not None and now > self._last[0]:
            rate = (ended - self._last[1]) / (now - self._last[0])
        self._last = (now, ended)
        left = queued + running
        eta = 0.0 if left == 0 else (left / rate if rate else None)
        res = data.get("Resources", {})
        return {"queued": queued, "running": running, "done": done, "failed": failed, "rate": rate, "eta": eta,
                "cores": res.get("TotalCores", 0), "used_cores": res.get("UsedCores", 0),
                "partitions": data.get("PartitionStats", [])}

    def render(self, data: Dict[str, Any], now: Optional[float] = None) -> List[str]:
        f = self.figures(data, now)
        system = data.get("System", {})
        rate = "?" if f["rate"] is None else f"{f['rate']:.1f}"
        lines = [f"qcg-pm top: {system.get('InstanceId', '?')} on {system.get('Host', '?')}, up "
                 f"{str(system.get('Uptime', '?')).split('.')[0]}",
                 f"tasks: queued {f['queued']}  running {f['running']}  done {f['done']}  failed {f['failed']}  "
                 f"{rate} tasks/s  ETA {eta_text(f['eta'])}",
                 f"cores: {f['used_cores']} of {f['cores']} in use {bar(f['used_cores'], f['cores'])}"]
        parts = sorted(f["partitions"], key=lambda p: _natural(p["name"]))
        if len(parts) > 1:
            lines.append("")
            lines.append(f"{'PARTITION':<14} {'STATE':<8} {'QUEUED':>7} {'RUNNING':>8} {'DONE':>8} {'FAILED':>7} "
                         f"{'CORES':>11}")
            for p in parts:
                lines.append(f"{p['name']:<14} {p['state']:<8} {p['queued']:>7} {p['running']:>8} "
                             f"{p['succeeded']:>8} {p['failed']:>7} {p['used_cores']:>5}/{p['cores']:<5}")
        nodes = [(name, used, total, p["name"]) for p in parts for name, (used, total) in p["nodes"].items()]
        if nodes:
            lines.append("")
            width = max(len(n[0]) for n in nodes[:self.max_nodes])
            for name, used, total, part in nodes[:self.max_nodes]:
                where = f"  ({part})" if len(parts) > 1 else ""
                lines.append(f"{name:<{width}} {bar(used, total)} {used:>4}/{total:<4}{where}")
            if len(nodes) > self.max_nodes:
                busy = sum(1 for n in nodes if n[1] > 0)
                lines.append(f"... and {len(nodes) - self.max_nodes} more nodes ({busy} of {len(nodes)} busy)")
        return lines
