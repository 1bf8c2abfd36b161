"""The task state machine: which state changes are legal, checked in one place.

A task (a job without iterations, or one iteration) moves::

    QUEUED --> EXECUTING --> SUCCEED | FAILED | CANCELED
       |
       +--> FAILED | CANCELED | OMITTED      (never started)

``SCHEDULED`` appears in a task's history (at the moment it starts, as QCG-PilotJob
reports it) but is never reported by a partition. ``OMITTED`` is decided by the front
alone (a dependency did not succeed). A final state never changes. Besides state changes,
a partition may send two kinds of notes that change nothing: QUEUED on a queued task
(with a reason it waits) and EXECUTING on a running task (its pid, once known).

>>> check_task("a:1", JobState.QUEUED, JobState.EXECUTING, [])
>>> check_task("a:1", JobState.QUEUED, JobState.SCHEDULED, [], from_partition=True)
Traceback (most recent call last):
...
qcg_pilotjob.front.transitions.InvalidTransition: task a:1: QUEUED -> SCHEDULED is not allowed (a partition \
never reports SCHEDULED); history: QUEUED
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, Sequence, Tuple

from ..states import JobState

__all__ = ["PARTITION_REPORTS", "TASK_TRANSITIONS", "InvalidTransition", "check_task"]

_Q, _E, _S, _F, _C, _OM = (JobState.QUEUED, JobState.EXECUTING, JobState.SUCCEED, JobState.FAILED,
                           JobState.CANCELED, JobState.OMITTED)

#: legal changes of a task's state (same state: a note, see the module text)
TASK_TRANSITIONS: Dict[JobState, FrozenSet[JobState]] = {
    _Q: frozenset({_Q, _E, _F, _C, _OM}),
    _E: frozenset({_E, _S, _F, _C}),
}

#: the states a partition may report for a task
PARTITION_REPORTS: FrozenSet[JobState] = frozenset({_Q, _E, _S, _F, _C})


class InvalidTransition(Exception):
    """An illegal state change of ``task``; it was not made."""

    def __init__(self, task: str, start: JobState, finish: JobState,
                 history: Sequence[Tuple[float, JobState]] = (), why: str = "") -> None:
        self.task = task
        self.start = start
        self.finish = finish
        self.history = list(history)
        self.why = why
        super().__init__(task, start, finish)

    def __str__(self) -> str:
        story = " -> ".join(s.name for _, s in self.history) or self.start.name
        why = f" ({self.why})" if self.why else ""
        return f"task {self.task}: {self.start.name} -> {self.finish.name} is not allowed{why}; history: {story}"


def check_task(task: str, start: JobState, finish: JobState, history: List[Tuple[float, JobState]],
               from_partition: bool = False) -> None:
    """Raise :class:`InvalidTransition` unless ``start -> finish`` is legal for ``task``
    (and, ``from_partition``, a state a partition may report)."""
    if from_partition and finish not in PARTITION_REPORTS:
        raise InvalidTransition(task, start, finish, history, f"a partition never reports {finish.name}")
    allowed = TASK_TRANSITIONS.get(start)
    if allowed is None:
        raise InvalidTransition(task, start, finish, history, f"{start.name} is final")
    if finish not in allowed:
        raise InvalidTransition(task, start, finish, history)
