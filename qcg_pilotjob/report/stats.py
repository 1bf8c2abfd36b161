"""Figures of a run (pure functions of a :class:`~.runs.Run`; no files, no printing).

Times are POSIX seconds. A task "ran" if it has a start (EXECUTING) and an end; its cores
are busy from its start to its end. The window of utilisation is the service's life
(``final_status``), or for a run still going from its start until now, or with
``from_first_job`` from the first task's start.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .runs import FINAL, Run, TaskRun

__all__ = ["core_usage", "efficiency", "filter_tasks", "gaps", "launch_stats", "percentiles", "summary",
           "usage_over_time", "window"]

Interval = Tuple[float, float]


def percentiles(values: Sequence[float]) -> Dict[str, float]:
    """min, p50, p90, p99, max and mean (nearest rank); empty for no values.

    >>> percentiles([4.0, 1.0, 3.0, 2.0])["p50"]
    2.0
    """
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * n) - 1)]
    return {"min": ordered[0], "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": ordered[-1],
            "mean": sum(ordered) / n}


def _ran(run: Run) -> List[TaskRun]:
    return [t for t in run.tasks if t.ran]


def summary(run: Run) -> Dict[str, Any]:
    """``stats``: counts by state, the service's life and overheads, run-time and queue-time
    percentiles, throughput."""
    ran = _ran(run)
    states = Counter(t.state for t in run.tasks)
    out: Dict[str, Any] = {
        "total_tasks": len(run.tasks), "tasks_by_state": {s: states.get(s, 0) for s in FINAL},
        "failed_tasks": len(run.tasks) - states.get("SUCCEED", 0),
        "total_jobs": len(run.job_states), "jobs_by_state": dict(Counter(run.job_states.values())),
        "total_cores": run.total_cores, "total_nodes": run.total_nodes,
        "service_start": run.service_start, "service_finish": run.service_finish, "finished": run.finished,
    }
    if run.service_start is not None and run.service_finish is not None:
        out["service_runtime"] = run.service_finish - run.service_start
    if ran:
        first = min(t.started for t in ran if t.started is not None)
        last = max(t.finished for t in ran if t.finished is not None)
        out.update(first_start=first, last_finish=last, throughput=len(ran) / (last - first) if last > first else None)
        if run.service_start is not None:
            out["init_overhead"] = first - run.service_start
        if run.service_finish is not None:
            out["finish_overhead"] = run.service_finish - last
        if "init_overhead" in out and "finish_overhead" in out:
            total = out["init_overhead"] + out["finish_overhead"]
            out["total_overhead"] = total
            if out.get("service_runtime"):
                out["overhead_ratio"] = 100.0 * total / out["service_runtime"]
            if run.total_cores:
                out["overhead_core_hours"] = run.total_cores * total / 3600.0
    out["runtime"] = percentiles([_runtime(t) for t in ran])
    out["queue_time"] = percentiles([t.started - t.queued for t in ran
                                     if t.started is not None and t.queued is not None])
    return out


def _runtime(task: TaskRun) -> float:
    if task.rtime is not None:
        return task.rtime
    assert task.started is not None and task.finished is not None
    return task.finished - task.started


def filter_tasks(run: Run, state: Optional[str] = None, node: Optional[str] = None, core: Optional[str] = None,
                 sort: Optional[str] = None) -> List[TaskRun]:
    """``jobs``: tasks in ``state`` (any case) that ran on ``node`` and/or ``core``, sorted by
    ``start``, ``finish``, ``runtime``, ``name`` or ``state`` (tasks without the key last)."""
    def keep(task: TaskRun) -> bool:
        if state and task.state.lower() != state.lower():
            return False
        if node and node not in task.nodes:
            return False
        if core:
            places = [task.nodes.get(node, [])] if node else list(task.nodes.values())
            if not any(core in cores for cores in places):
                return False
        return True
    tasks = [t for t in run.tasks if keep(t)]
    if sort:
        keys: Dict[str, Callable[[TaskRun], Any]] = {
            "start": lambda t: t.started, "finish": lambda t: t.finished,
            "runtime": lambda t: _runtime(t) if t.ran else None, "name": lambda t: t.name,
            "state": lambda t: t.state}
        key = keys[sort.lower()]
        tasks.sort(key=lambda t: (key(t) is None, key(t) if key(t) is not None else 0))
    return tasks


def launch_stats(run: Run) -> Dict[str, Any]:
    """``launch-stats``: how long tasks waited from submit to start, and how the service's
    measured run time compares with the span between its start and end events."""
    ran = _ran(run)
    waits = [t.started - t.queued for t in ran if t.started is not None and t.queued is not None]
    spans = [t.finished - t.started for t in ran if t.started is not None and t.finished is not None]
    lags = [span - t.rtime for t, span in zip(ran, spans) if t.rtime is not None]
    return {"analysed_tasks": len(ran), "queue_wait": percentiles(waits),
            "runtime": percentiles([_runtime(t) for t in ran]),
            "end_report_lag": percentiles(lags)}


def window(run: Run, from_first_job: bool = False, now: Optional[float] = None) -> Optional[Interval]:
    """The span utilisation is measured over, or None if nothing ran and the run has no start."""
    ran = _ran(run)
    start = run.service_start
    if from_first_job or start is None:
        start = min((t.started for t in ran if t.started is not None), default=start)
    end = run.service_finish
    if end is None:
        end = max((t.finished for t in ran if t.finished is not None), default=None) if run.finished else None
        end = end if end is not None else (now if now is not None else time.time())
    if start is None or end <= start:
        return None
    return start, end


def core_usage(run: Run) -> Dict[str, Dict[str, List[Interval]]]:
    """Busy intervals per node and core, in start order."""
    out: Dict[str, Dict[str, List[Interval]]] = {}
    for task in _ran(run):
        assert task.started is not None and task.finished is not None
        for node, cores in task.nodes.items():
            per_node = out.setdefault(node, {})
            for core in cores:
                per_node.setdefault(core, []).append((task.started, task.finished))
    for per_node in out.values():
        for spans in per_node.values():
            spans.sort()
    return out


def _cores(run: Run, usage: Dict[str, Dict[str, List[Interval]]]) -> Iterator[Tuple[str, List[str]]]:
    """Each node (by name) with its core ids: the run's (``nodes.json``), then any other a
    task used."""
    for node in sorted(set(run.core_ids) | set(usage)):
        yield node, list(dict.fromkeys(run.core_ids.get(node, []) + list(usage.get(node, {}))))


def _busy(spans: Iterable[Interval], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] covered by the union of ``spans`` (sorted by start)."""
    total, reach = 0.0, lo
    for a, b in spans:
        a, b = max(a, reach), min(b, hi)
        if b > a:
            total += b - a
            reach = b
    return total


def efficiency(run: Run, from_first_job: bool = False, until_last_job: bool = False,
               now: Optional[float] = None) -> Dict[str, Any]:
    """``efficiency``/``rusage``: per core, per node and overall, the share of the window
    its cores were busy, and core-hours used against available. Cores that ran nothing count
    when the run's nodes are known (``nodes.json``). ``until_last_job``: each core's window
    ends when its last task ended."""
    win = window(run, from_first_job, now)
    usage = core_usage(run)
    nodes: Dict[str, Dict[str, Any]] = {}
    if win is None:
        return {"window": None, "total_cores": 0, "used_cores": 0, "nodes": {}}
    lo, hi = win
    used_total = avail_total = used_avail = 0.0
    used_cores = cores_total = 0
    for node, core_ids in _cores(run, usage):
        per_core: Dict[str, Dict[str, float]] = {}
        node_used = node_avail = 0.0
        for core in core_ids:
            spans = usage.get(node, {}).get(core, [])
            end = max((b for _, b in spans), default=lo) if until_last_job else hi
            avail = max(0.0, end - lo)
            busy = _busy(spans, lo, end)
            per_core[core] = {"busy": busy, "unused": avail - busy,
                              "utilization": 100.0 * busy / avail if avail > 0 else 0.0}
            node_used, node_avail = node_used + busy, node_avail + avail
            used_cores += 1 if spans else 0
            if busy > 0:  # (the cores that ran something in the window)
                used_avail += avail
        cores_total += len(core_ids)
        nodes[node] = {"cores": per_core, "core_hours_used": node_used / 3600,
                       "core_hours_available": node_avail / 3600,
                       "utilization": 100.0 * node_used / node_avail if node_avail > 0 else 0.0,
                       "partition": run.partitions.get(node)}
        used_total, avail_total = used_total + node_used, avail_total + node_avail
    return {"window": [lo, hi], "total_cores": cores_total, "used_cores": used_cores,
            "not_used_cores": cores_total - used_cores,
            "core_hours_used": used_total / 3600, "core_hours_available": avail_total / 3600,
            "avg_all_cores_utilization": 100.0 * used_total / avail_total if avail_total > 0 else 0.0,
            "avg_core_utilization": 100.0 * used_total / used_avail if used_avail > 0 else 0.0,
            "nodes": nodes}


def usage_over_time(run: Run) -> List[Tuple[float, int]]:
    """The cores in use as a step function: (time, cores from then on), in time order."""
    changes: Counter = Counter()
    for task in _ran(run):
        assert task.started is not None and task.finished is not None
        changes[task.started] += task.cores
        changes[task.finished] -= task.cores
    steps, level = [], 0
    for when in sorted(changes):
        if changes[when]:  # (a task ending as another starts on its cores changes nothing)
            level += changes[when]
            steps.append((when, level))
    return steps


def gaps(run: Run, min_gap: float = 0.0) -> Dict[str, Dict[str, List[Interval]]]:
    """Per node and core, the idle spans inside the window longer than ``min_gap`` s."""
    win = window(run)
    if win is None:
        return {}
    lo, hi = win
    out: Dict[str, Dict[str, List[Interval]]] = {}
    usage = core_usage(run)
    for node, core_ids in _cores(run, usage):
        for core in core_ids:
            idle, reach = [], lo
            for a, b in usage.get(node, {}).get(core, []):
                if a - reach > min_gap:
                    idle.append((reach, a))
                reach = max(reach, b)
            if hi - reach > min_gap:
                idle.append((reach, hi))
            out.setdefault(node, {})[core] = idle
    return out
