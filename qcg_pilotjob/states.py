"""Job and iteration states.

>>> JobState.SUCCEED.is_final
True
>>> JobState.parse("QUEUED") is JobState.QUEUED
True
"""

from __future__ import annotations

import enum
from typing import FrozenSet

__all__ = ["FAILED_STATES", "FINAL_STATES", "JobState"]


class JobState(enum.IntEnum):
    """The life cycle of a job and of each of its iterations (travels as an int)."""

    #: Submitted and waiting for its dependencies or for free resources.
    QUEUED = 1
    #: Resources are allocated; the process is being started.
    SCHEDULED = 2
    #: The process runs.
    EXECUTING = 3
    #: Ended with exit code 0 (for a job with iterations: every iteration did).
    SUCCEED = 4
    #: Could not start, ended with a non-zero code, exceeded its wall time, or
    #: (for a job with iterations) at least one iteration did not succeed.
    FAILED = 5
    #: Cancelled by the user or stopped by the service.
    CANCELED = 6
    #: Will never run: a job it depends on did not succeed or does not exist.
    OMITTED = 7

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_failure(self) -> bool:
        return self in FAILED_STATES

    @classmethod
    def parse(cls, name: str) -> JobState:
        return cls[name]


#: States that never change again.
FINAL_STATES: FrozenSet[JobState] = frozenset(
    {JobState.SUCCEED, JobState.FAILED, JobState.CANCELED, JobState.OMITTED}
)
#: Final states that count as "did not succeed".
FAILED_STATES: FrozenSet[JobState] = frozenset({JobState.FAILED, JobState.CANCELED, JobState.OMITTED})
