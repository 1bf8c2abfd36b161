"""Dependencies between jobs: who waits for whom, and what a finished job releases.

This module decides; the front changes states. :meth:`Dependencies.resolve` registers a
new job's waits and returns what must be omitted at once; :meth:`Dependencies.wake`
returns what a final state releases or omits. A dependency is on a whole job (``after:
["a"]``), on one iteration (``"a:3"``) or per iteration (``"a:${it}"``: iteration *i*
waits for iteration *i* of ``a``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from ..jobdesc import JobDescription
from ..states import JobState
from .registry import JobRecord

__all__ = ["Dependencies", "Released", "Resolution", "dependency_cycle"]

Key = Tuple[str, Optional[int]]
Lookup = Callable[[str], Optional[JobRecord]]


def dependency_cycle(descs: Sequence[JobDescription]) -> Optional[List[str]]:
    """A dependency cycle among jobs submitted together, or None. (Jobs registered earlier
    cannot be part of one: their dependencies on unknown jobs were already omitted.)"""
    graph = {d.name: [dep.name for dep in d.dependencies] for d in descs}
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        path, stack = [root], [iter(graph[root])]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif nxt in graph and state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt in graph and nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return None


@dataclass
class Resolution:
    """A new job's dependencies: omit it whole (``omit``), omit some of its tasks, or wait."""

    omit: Optional[str] = None
    omit_tasks: List[Tuple[int, str]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.omit is None


@dataclass
class Released:
    """What one final state changed for its waiters."""

    release_jobs: List[JobRecord] = field(default_factory=list)
    omit_jobs: List[Tuple[JobRecord, str]] = field(default_factory=list)
    ready_tasks: List[Tuple[JobRecord, int]] = field(default_factory=list)
    omit_tasks: List[Tuple[JobRecord, int, str]] = field(default_factory=list)


class Dependencies:
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.waiters: Dict[Key, List[Tuple[JobRecord, Optional[int]]]] = {}
        self._iteration_keys: Dict[str, Set[int]] = {}  # per job: its iterations someone waits for

    def _state(self, name: str, iteration: Optional[int]) -> Tuple[Optional[JobState], str]:
        target = self.lookup(name)
        if target is None:
            return None, f"dependency '{name}' is not a known job"
        if iteration is None:
            return target.state, ""
        if not target.has_iteration(iteration):
            return None, f"dependency '{name}:{iteration}' does not exist"
        return target.task(iteration).state, ""

    def resolve(self, job: JobRecord) -> Resolution:
        """Register ``job``'s waits; sets its ``deps_pending`` and ``iter_pending``."""
        out = Resolution()
        for dep in job.desc.dependencies:
            if dep.per_iteration:
                continue
            state, problem = self._state(dep.name, dep.iteration)
            if state is None:
                out.omit = problem
                return out
            if state.is_final:
                if state is not JobState.SUCCEED:
                    out.omit = f"dependency '{dep}' finished {state.name}"
                    return out
                continue
            self._wait((dep.name, dep.iteration), job, None)
            job.deps_pending += 1
        per_iter = [d for d in job.desc.dependencies if d.per_iteration]
        if not per_iter:
            return out
        job.iter_pending = [0] * job.total
        for dep in per_iter:
            if self.lookup(dep.name) is None:
                out.omit = f"dependency '{dep.name}' is not a known job"
                return out
            for idx in range(job.total):
                if job.tasks.state(idx).is_final:
                    continue
                it = job.iteration_of(idx)
                state, problem = self._state(dep.name, it)
                if state is None:
                    out.omit_tasks.append((idx, problem))
                elif state.is_final:
                    if state is not JobState.SUCCEED:
                        out.omit_tasks.append((idx, f"dependency '{dep.name}:{it}' finished {state.name}"))
                else:
                    self._wait((dep.name, it), job, it)
                    job.iter_pending[idx] += 1
        return out

    def _wait(self, key: Key, job: JobRecord, iteration: Optional[int]) -> None:
        """``job`` (or its ``iteration``) waits for ``key``."""
        waiting = self.waiters.get(key)
        if waiting is None:
            waiting = self.waiters[key] = []
            if key[1] is not None:
                self._iteration_keys.setdefault(key[0], set()).add(key[1])
        waiting.append((job, iteration))

    def iterations_waited(self, name: str) -> List[int]:
        """The iterations of job ``name`` that other jobs wait for one by one (sorted)."""
        return sorted(self._iteration_keys.get(name, ()))

    def wake(self, key: Key, state: JobState) -> Optional[Released]:
        """``key`` (a job, or one of its iterations) reached the final ``state``; None if
        nobody waited for it (the common case: nothing is allocated)."""
        waiting = self.waiters.pop(key, None)
        if not waiting:
            return None
        if key[1] is not None:
            left = self._iteration_keys[key[0]]
            left.discard(key[1])
            if not left:
                del self._iteration_keys[key[0]]
        out = Released()
        name = f"{key[0]}:{key[1]}" if key[1] is not None else key[0]
        for job, it in waiting:
            if job.state.is_final or self.lookup(job.name) is not job:
                continue
            if it is None:
                if state is JobState.SUCCEED:
                    job.deps_pending -= 1
                    if job.deps_pending == 0:
                        out.release_jobs.append(job)
                else:
                    out.omit_jobs.append((job, f"dependency '{name}' finished {state.name}"))
                continue
            idx = job.index(it)
            if job.tasks.state(idx).is_final:
                continue
            if state is JobState.SUCCEED:
                assert job.iter_pending is not None
                job.iter_pending[idx] -= 1
                if job.iter_pending[idx] == 0 and job.deps_pending == 0:
                    out.ready_tasks.append((job, idx))
            else:
                out.omit_tasks.append((job, idx, f"dependency '{name}' finished {state.name}"))
        return out
