"""Routing: which partition gets which ready task. Pure: no I/O, no clock.

:meth:`Router.route` takes the ready queue and the partition links and returns the
dispatches to make, ``(link, DispatchMsg)`` with the task indexes they carry, and the
tasks no live partition can run. It keeps each partition's ``outstanding`` cores within
its window, so work waits in the front's queue where any partition that drains early can
take it:

- one live partition: no window, everything goes at once (its scheduler orders it);
- several: each ready job goes to the fitting partition with the most room; a job's
  iterations are shared out so that no partition takes all while another has room; a
  busy partition is topped up a batch at a time, not a task per finished task;
- a job whose iterations use an iteration resource scheduler (``maximum-iters``,
  ``split-into``) goes whole to one partition (that scheduler divides the partition);
- a head entry that fits nowhere now does not block the entries behind it: routing
  looks up to :attr:`Router.lookahead` entries past it.

The front owns task state: it marks the routed tasks with their partition and sends the
messages.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Sequence, Set, Tuple

from ..partition.scheduler import unfit_reason
from ..protocol.messages import DispatchMsg
from .links import PartitionLink
from .ranges import Range, count, split
from .registry import JobRecord

__all__ = ["Dispatch", "ReadyEntry", "Router", "Routing"]


class ReadyEntry:
    """Released tasks of one job not yet sent to a partition (sorted, disjoint ranges of
    task indexes: a job of 10,000,000 iterations is one range)."""

    __slots__ = ("job", "ranges")

    def __init__(self, job: JobRecord, ranges: List[Range]) -> None:
        self.job = job
        self.ranges = ranges


@dataclass(frozen=True)
class Dispatch:
    link: PartitionLink
    job: JobRecord
    ranges: List[Range]
    msg: DispatchMsg


@dataclass
class Routing:
    """What one routing pass decided."""

    dispatches: List[Dispatch] = field(default_factory=list)
    #: tasks no live partition can run: (job, ranges of task indexes, reason)
    unroutable: List[Tuple[JobRecord, List[Range], str]] = field(default_factory=list)


class Router:
    """Routing decisions and their caches (task weight and fitting partitions per job)."""

    def __init__(self, lookahead: int = 64) -> None:
        self.lookahead = lookahead
        self._weights: Dict[str, int] = {}
        self._fits: Dict[str, Set[int]] = {}
        #: the partitions jobs of one shape fit in, by shape (their resources as submitted,
        #: their number of iterations and the first): most jobs of a run share a few shapes
        self._fits_by_shape: Dict[Tuple[str, int, Optional[int]], Set[int]] = {}

    # --- caches --------------------------------------------------------------------------
    def links_changed(self) -> None:
        """A partition joined or lost a node: fits are computed again."""
        self._fits.clear()
        self._fits_by_shape.clear()

    def forget(self, job_name: str) -> None:
        self._weights.pop(job_name, None)
        self._fits.pop(job_name, None)

    def weight(self, job: JobRecord, link: PartitionLink) -> int:
        """Cores one task of ``job`` holds at least (the unit of the routing window)."""
        weight = self._weights.get(job.name)
        if weight is None:
            res = job.desc.resources
            if res.nodes is not None:
                weight = res.nodes.minimum * (res.cores.minimum if res.cores else link.pool.max_node_cores)
            else:
                weight = res.cores.minimum if res.cores else 1
            self._weights[job.name] = weight
        return weight

    def known_weight(self, job_name: str) -> int:
        return self._weights.get(job_name, 1)

    def fitting(self, job: JobRecord, links: Sequence[PartitionLink], live: List[PartitionLink]
                ) -> List[PartitionLink]:
        """The live partitions ``job`` fits in (cached per job)."""
        fit = self._fits.get(job.name)
        if fit is None:
            desc = job.desc
            shape = (json.dumps(desc.raw.get("resources"), sort_keys=True, default=str), job.total,
                     desc.iteration.start if desc.iteration else None)
            fit = self._fits_by_shape.get(shape)
            if fit is None:
                fit = {lk.index for lk in links if unfit_reason(lk.pool, desc, job.total, with_gpus=False) is None}
                if len(self._fits_by_shape) >= 10_000:
                    self._fits_by_shape.clear()
                self._fits_by_shape[shape] = fit
            self._fits[job.name] = fit
        return [lk for lk in live if lk.index in fit]

    # --- routing -------------------------------------------------------------------------
    def route(self, ready: Deque[ReadyEntry], links: Sequence[PartitionLink], final: bool = False) -> Routing:
        """Route from the head of ``ready`` (which loses what is routed). ``final``: no
        partition will join any more, so with none live everything ready is unroutable."""
        out = Routing()
        live = [link for link in links if link.live]
        if not live:
            if final:
                while ready:
                    entry = ready.popleft()
                    ranges = _waiting(entry)
                    if ranges:
                        out.unroutable.append((entry.job, ranges, "no live partition is left to run it"))
            return out
        if not ready:
            return out
        single = len(live) == 1
        if not single and all(lk.credit <= 0 and lk.outstanding > 0 for lk in live):
            return out  # every window is full: the next final event routes again
        scanned = pos = 0
        while pos < len(ready) and scanned < self.lookahead:
            entry = ready[pos]
            ranges = _waiting(entry)
            if not ranges:
                del ready[pos]
                continue
            fits = self.fitting(entry.job, links, live)
            if not fits:  # (partitions were lost) nothing left that can run it
                out.unroutable.append((entry.job, ranges, "Not enough resources: no live partition can run it"))
                del ready[pos]
                continue
            link = max(fits, key=lambda lk: lk.credit)
            waiting = count(ranges)
            take = self._take(entry.job, waiting, link, fits, live, single)
            if take is None:  # stop here: top-ups go a batch at a time, or no window has room
                entry.ranges = ranges
                break
            if take == 0:
                entry.ranges = ranges
                pos += 1
                scanned += 1
                continue
            chunk, rest = split(ranges, take)
            out.dispatches.append(self._dispatch(link, entry.job, chunk, take))
            if rest:
                entry.ranges = rest
            else:
                del ready[pos]
        return out

    def _take(self, job: JobRecord, waiting: int, link: PartitionLink, fits: List[PartitionLink],
              live: List[PartitionLink], single: bool) -> Optional[int]:
        """How many of the ``waiting`` tasks go to ``link`` now; 0: skip this entry, None:
        stop routing."""
        res = job.desc.resources
        whole = bool((res.cores and res.cores.scheduler) or (res.nodes and res.nodes.scheduler))
        if single or whole:
            return waiting
        weight = self.weight(job, link)
        take = min(waiting, link.credit // weight)
        others = [lk.credit for lk in fits if lk is not link and lk.credit >= weight]
        if take > 0 and others:
            # not all to the emptiest while another has room too: what is left of the job
            # after this chunk goes to the next one (share alike, or level off)
            share = max(-(-waiting // (len(others) + 1)), (link.credit - max(others)) // weight)
            take = min(take, share)
        batch = max(1, link.window // (4 * weight))
        if 0 < take < batch and take < waiting and link.outstanding >= batch * weight:
            # top a busy partition up by a batch at a time: a message per task would cost
            # more than the task (it still has work queued)
            return None
        if take <= 0:
            if link.outstanding == 0:
                return 1  # a task larger than the window still goes
            if all(lk.credit <= 0 for lk in live):
                return None  # no window has room: later entries cannot go either
            return 0
        return take

    def _dispatch(self, link: PartitionLink, job: JobRecord, ranges: List[Range], tasks: int) -> Dispatch:
        weight = self.weight(job, link)
        link.outstanding += weight * tasks
        link.dispatched_tasks += tasks
        its: Optional[List[Tuple[int, int]]] = None
        if job.desc.iteration is not None:
            start = job.desc.iteration.start
            its = [(a + start, b + start) for a, b in ranges]
        return Dispatch(link, job, ranges, DispatchMsg(job.desc, job.total, its))

    def requeue_lost(self, ready: Deque[ReadyEntry], back: List[ReadyEntry]) -> None:
        """Tasks a lost partition had not started go back to the head of the queue."""
        ready.extendleft(reversed(back))


def _waiting(entry: ReadyEntry) -> List[Range]:
    """What of ``entry`` still waits; nothing once its job is final (a job canceled while
    it waited here: its settled task table no longer knows what was skipped)."""
    if entry.job.state.is_final:
        return []
    return entry.job.tasks.waiting(entry.ranges)


def new_ready_queue() -> Deque[ReadyEntry]:
    return deque()


__all__ += ["new_ready_queue"]
