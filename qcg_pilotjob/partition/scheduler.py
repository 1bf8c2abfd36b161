"""The partition scheduler: pure, no I/O.

FIFO with backfilling: the queue is walked in arrival order; an entry that does not fit
now keeps its place and later entries that fit are started. A pass stops as soon as no
core is free, so with uniform tasks the work per started task is constant however long
the queue is. Entries whose minimum exceeds the free cores are skipped at O(1) cost.

>>> from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
>>> from qcg_pilotjob.jobdesc import JobDescription
>>> s = Scheduler(ResourcePool(parse_nodes_spec("2")))
>>> d = JobDescription.from_dict({"name": "a", "iteration": {"stop": 3},
...                               "execution": {"exec": "true"}})
>>> s.add(TaskSpec(d, 3), [(0, 3)])
>>> [(st.iteration, str(st.allocation)) for st in s.schedule().started]
[(0, 'n0[0]'), (1, 'n0[1]')]
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Iterable, List, Optional, Set, Tuple

from ..jobdesc import JobDescription, ResourceSize
from ..resources import Allocation, ResourcePool

__all__ = ["Failed", "Requirement", "ScheduleResult", "Scheduler", "Started", "TaskSpec", "iteration_size"]


def iteration_size(size: ResourceSize, total: int, count: int, ordinal: int) -> int:
    """Exact resources of iteration number ``ordinal`` (0-based) of ``count`` iterations
    on ``total`` resources for the ``maximum-iters`` and ``split-into`` schedulers.

    >>> [iteration_size(ResourceSize(min=1, scheduler="maximum-iters"), 10, 3, k) for k in range(3)]
    [3, 3, 4]
    >>> [iteration_size(ResourceSize(min=5, scheduler="maximum-iters"), 11, 3, k) for k in range(3)]
    [5, 6, 11]
    """
    if size.scheduler == "split-into":
        parts = int(size.scheduler_params.get("parts", count))
        part = total // parts
        if part <= 0:
            raise ValueError(f"split-into: {parts} parts of {total} resources leave nothing for an iteration")
        if size.min is not None and part < size.min:
            raise ValueError(f"split-into: a part of {part} is smaller than the minimum {size.min}")
        return part
    pmin = size.min or 1
    if total < pmin:
        raise ValueError(f"maximum-iters: minimum {pmin} is larger than the {total} resources available")
    if count * pmin <= total:
        m, pos = count, ordinal
    else:
        per_round = total // pmin
        rounds = math.ceil(count / per_round)
        q, rem = divmod(count, rounds)
        big = rem * (q + 1)
        if ordinal < big:
            m, pos = q + 1, ordinal % (q + 1)
        else:
            m, pos = q, (ordinal - big) % q
    base, extra = divmod(total, m)
    return base + (1 if pos >= m - extra else 0)


@dataclass(frozen=True)
class Requirement:
    """What one task asks for. With ``nodes`` set, cores are per node; ``cores_min``
    ``None`` then means whole nodes."""

    cores_min: Optional[int]
    cores_max: Optional[int]
    nodes_min: Optional[int] = None
    nodes_max: Optional[int] = None
    gpus: int = 0

    @property
    def least_cores(self) -> int:
        if self.nodes_min is None:
            return self.cores_min or 1
        return self.nodes_min * (self.cores_min or 1)


@dataclass
class TaskSpec:
    """A job as a partition sees it: its description and the number of its iterations
    this partition runs (the iteration schedulers divide resources by it)."""

    desc: JobDescription
    iter_total: int

    @property
    def name(self) -> str:
        return self.desc.name

    def requirement(self, pool: ResourcePool, iteration: Optional[int]) -> Requirement:
        res = self.desc.resources
        cores, nodes = res.cores, res.nodes
        ordinal = 0
        if iteration is not None and self.desc.iteration is not None:
            ordinal = iteration - self.desc.iteration.start
        gpus = res.crs.get("gpu", 0)
        if nodes is None:
            assert cores is not None
            if cores.scheduler:
                n = iteration_size(cores, pool.total_cores, self.iter_total, ordinal)
                return Requirement(n, n)
            return Requirement(cores.minimum, cores.maximum)
        nmin: int
        nmax: Optional[int]
        if nodes.scheduler:
            n = iteration_size(nodes, pool.total_nodes, self.iter_total, ordinal)
            nmin, nmax = n, n
        else:
            nmin, nmax = nodes.minimum, nodes.maximum
        if cores is None:
            return Requirement(None, None, nmin, nmax, gpus)
        if cores.scheduler:
            n = iteration_size(cores, pool.max_node_cores, self.iter_total, ordinal)
            return Requirement(n, n, nmin, nmax, gpus)
        return Requirement(cores.minimum, cores.maximum, nmin, nmax, gpus)


@dataclass
class _Entry:
    seq: int
    spec: TaskSpec
    ranges: Deque[Tuple[int, int]]          # pending iterations [start, stop); (-1, 0) = no iteration
    cancelled: Set[int] = field(default_factory=set)
    fixed: Optional[Requirement] = None     # the requirement when it does not vary per iteration
    time_blocked: bool = False              # its wall time does not fit before the allocation ends

    def peek(self) -> Optional[int]:
        while self.ranges:
            start, stop = self.ranges[0]
            if start == -1:
                return -1
            while start < stop and start in self.cancelled:
                self.cancelled.discard(start)
                start += 1
            if start < stop:
                self.ranges[0] = (start, stop)
                return start
            self.ranges.popleft()
        return None

    def pop(self) -> None:
        start, stop = self.ranges[0]
        if start == -1 or start + 1 >= stop:
            self.ranges.popleft()
        else:
            self.ranges[0] = (start + 1, stop)

    def holds(self, iteration: int) -> bool:
        return iteration not in self.cancelled and any(a <= iteration < b for a, b in self.ranges)


@dataclass
class Started:
    spec: TaskSpec
    iteration: Optional[int]
    allocation: Allocation


@dataclass
class Failed:
    spec: TaskSpec
    iterations: List[Optional[int]]
    message: str


@dataclass
class ScheduleResult:
    started: List[Started] = field(default_factory=list)
    failed: List[Failed] = field(default_factory=list)
    #: jobs newly held back because their wall time would outlast the allocation, with why
    time_blocked: List[Tuple[TaskSpec, str]] = field(default_factory=list)


class Scheduler:
    """Queue of dispatched tasks over a :class:`ResourcePool`. State changes only through
    :meth:`add`, :meth:`schedule`, :meth:`release` and :meth:`cancel`."""

    def __init__(self, pool: ResourcePool) -> None:
        self.pool = pool
        self._queue: Dict[int, _Entry] = {}
        self._by_job: Dict[str, List[int]] = {}
        self._seq = 0
        self._failed: List[Failed] = []
        self.queued_tasks = 0
        #: when the allocation ends (epoch seconds); None: no limit known
        self.deadline: Optional[float] = None

    def __len__(self) -> int:
        return self.queued_tasks

    def _check(self, req: Requirement) -> Optional[str]:
        if req.nodes_min is None:
            return self.pool.never_fits((req.cores_min or 1, req.cores_max), None, 0)
        cores = None if req.cores_min is None else (req.cores_min, req.cores_max)
        return self.pool.never_fits(cores, (req.nodes_min, req.nodes_max), req.gpus)

    def add(self, spec: TaskSpec, iterations: Optional[List[Tuple[int, int]]]) -> None:
        """Queue the iterations (``None``: the job has no iterations). Tasks that can
        never fit are reported as failed by the next :meth:`schedule`."""
        ranges: Deque[Tuple[int, int]] = deque(iterations) if iterations else deque([(-1, 0)])
        count = sum(b - a for a, b in iterations) if iterations else 1
        entry = _Entry(self._seq, spec, ranges)
        res = spec.desc.resources
        varies = bool((res.cores and res.cores.scheduler) or (res.nodes and res.nodes.scheduler))
        if not varies:
            req = spec.requirement(self.pool, None)
            problem = self._check(req)
            if problem is not None:
                its: List[Optional[int]] = [None] if not iterations else \
                    [i for a, b in iterations for i in range(a, b)]
                self._failed.append(Failed(spec, its, f"Not enough resources: {problem}"))
                return
            entry.fixed = req
        self._queue[self._seq] = entry
        self._by_job.setdefault(spec.name, []).append(self._seq)
        self._seq += 1
        self.queued_tasks += count

    def _drop(self, entry: _Entry) -> None:
        del self._queue[entry.seq]
        seqs = self._by_job.get(entry.spec.name)
        if seqs is not None:
            seqs.remove(entry.seq)
            if not seqs:
                del self._by_job[entry.spec.name]

    def _allocate(self, req: Requirement) -> Optional[Allocation]:
        if req.nodes_min is None:
            return self.pool.allocate_cores(req.cores_min or 1, req.cores_max)
        return self.pool.allocate_nodes(req.nodes_min, req.nodes_max, req.cores_min, req.cores_max, req.gpus)

    def time_reason(self, spec: TaskSpec) -> str:
        wt = spec.desc.resources.wt or 0.0
        end = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.deadline or 0.0))
        return f"not started: its wall time of {wt:g}s would outlast the allocation (ends {end})"

    def schedule(self, now: Optional[float] = None) -> ScheduleResult:
        """Start what fits now, in queue order. With a ``deadline`` (the allocation's end),
        a task whose wall time would outlast it stays queued."""
        result = ScheduleResult(failed=self._failed)
        self._failed = []
        pool = self.pool
        done: List[_Entry] = []
        deadline = self.deadline
        if deadline is not None and now is None:
            now = time.time()
        for entry in self._queue.values():
            if pool.free_cores == 0:
                break
            fixed = entry.fixed
            if fixed is not None and fixed.least_cores > pool.free_cores:
                continue
            if deadline is not None:
                assert now is not None
                if self._held_by_deadline(entry, now, deadline, result):
                    continue
            if self._start_iterations(entry, result):
                done.append(entry)
        for entry in done:
            if entry.seq in self._queue:
                self._drop(entry)
        return result

    def _held_by_deadline(self, entry: _Entry, now: float, deadline: float, result: ScheduleResult) -> bool:
        """True if the entry's wall time, started ``now``, would outlast ``deadline``: it
        stays queued, reported in ``result.time_blocked`` the first time."""
        wt = entry.spec.desc.resources.wt
        if wt is not None and now + wt > deadline:
            if not entry.time_blocked:
                entry.time_blocked = True
                result.time_blocked.append((entry.spec, self.time_reason(entry.spec)))
            return True
        return False

    def _start_iterations(self, entry: _Entry, result: ScheduleResult) -> bool:
        """Start the entry's pending iterations in order while they fit (into
        ``result.started``; those that can never run into ``result.failed``). Returns True
        if the entry has nothing left to start."""
        pool = self.pool
        fixed = entry.fixed
        while True:
            it = entry.peek()
            if it is None:
                return True
            iteration = None if it == -1 else it
            req = fixed
            if req is None:
                req = self._iteration_requirement(entry, iteration, result)
                if req is None:
                    continue
            if req.least_cores > pool.free_cores:
                return False
            alloc = self._allocate(req)
            if alloc is None:
                return False
            entry.pop()
            self.queued_tasks -= 1
            result.started.append(Started(entry.spec, iteration, alloc))
            if pool.free_cores == 0:
                return entry.peek() is None

    def _iteration_requirement(self, entry: _Entry, iteration: Optional[int],
                               result: ScheduleResult) -> Optional[Requirement]:
        """The requirement of the entry's next iteration when it varies per iteration; None
        if that iteration can never run (it is then taken off the queue as failed)."""
        try:
            req = entry.spec.requirement(self.pool, iteration)
        except ValueError as exc:
            self._fail_next(entry, iteration, str(exc), result)
            return None
        problem = self._check(req)
        if problem is not None:
            self._fail_next(entry, iteration, f"Not enough resources: {problem}", result)
            return None
        return req

    def _fail_next(self, entry: _Entry, iteration: Optional[int], message: str, result: ScheduleResult) -> None:
        """Take the entry's next iteration off the queue as failed with ``message``."""
        entry.pop()
        self.queued_tasks -= 1
        result.failed.append(Failed(entry.spec, [iteration], message))

    def release(self, alloc: Allocation) -> None:
        self.pool.release(alloc)

    def is_time_blocked(self, name: str) -> bool:
        return any(self._queue[seq].time_blocked for seq in self._by_job.get(name, ()))

    def cancel(self, name: str, iterations: Optional[Iterable[Optional[int]]]) -> List[Optional[int]]:
        """Remove queued tasks of job ``name`` (all, or the given iterations); returns the
        iterations removed (``None`` for a job without iterations)."""
        removed: List[Optional[int]] = []
        seqs = list(self._by_job.get(name, ()))
        if iterations is None:
            for seq in seqs:
                entry = self._queue[seq]
                while True:
                    it = entry.peek()
                    if it is None:
                        break
                    removed.append(None if it == -1 else it)
                    entry.pop()
                self._drop(entry)
        else:
            wanted = set(iterations)
            for seq in seqs:
                entry = self._queue[seq]
                for it in list(wanted):
                    if it is None:
                        if entry.peek() == -1:
                            entry.pop()
                            removed.append(None)
                            wanted.discard(None)
                    elif entry.holds(it):
                        entry.cancelled.add(it)
                        removed.append(it)
                        wanted.discard(it)
                if entry.peek() is None:
                    self._drop(entry)
        self.queued_tasks -= len(removed)
        return removed


    def cancel_job(self, name: str) -> Tuple[bool, List[Tuple[int, int]]]:
        """Remove every queued task of job ``name``: whether its task without iterations was
        queued, and the iteration ranges that were (ranges: 10,000,000 queued iterations are
        a few pairs, not a list)."""
        single = False
        out: List[Tuple[int, int]] = []
        for seq in list(self._by_job.get(name, ())):
            entry = self._queue[seq]
            for start, stop in entry.ranges:
                if start == -1:
                    single = True
                    continue
                for it in sorted(i for i in entry.cancelled if start <= i < stop):
                    if it > start:
                        out.append((start, it))
                    start = it + 1
                if start < stop:
                    out.append((start, stop))
            entry.ranges.clear()
            entry.cancelled.clear()
            self._drop(entry)
        self.queued_tasks -= int(single) + sum(b - a for a, b in out)
        return single, out


def unfit_reason(pool: ResourcePool, desc: JobDescription, iter_total: int, with_gpus: bool = True) -> Optional[str]:
    """Why ``desc`` can never run on ``pool`` (checked for its first iteration), or None.
    ``with_gpus=False`` checks only the numbers of cores and nodes."""
    spec = TaskSpec(desc, iter_total)
    first = desc.iteration.start if desc.iteration else None
    try:
        req = spec.requirement(pool, first)
    except ValueError as exc:
        return str(exc)
    if req.nodes_min is None:
        return pool.never_fits((req.cores_min or 1, req.cores_max), None, 0)
    cores = None if req.cores_min is None else (req.cores_min, req.cores_max)
    return pool.never_fits(cores, (req.nodes_min, req.nodes_max), req.gpus if with_gpus else 0)
