"""The Python client API: ``Manager``, ``LocalManager``, ``Jobs``, ``JobInfo`` and the errors.

Also importable as ``qcg.pilotjob.api`` for QCG-PilotJob programs.
"""

from __future__ import annotations

from .errors import (
    ConnectionError,
    FileError,
    InternalError,
    InvalidJobDescriptionError,
    JobNotDefinedError,
    QCGPJMAError,
    ServiceError,
    TimeoutElapsed,
    WrongArgumentsError,
)
from .job import Jobs
from .jobinfo import JobInfo
from .manager import LocalManager, Manager

__all__ = [
    "ConnectionError",
    "FileError",
    "InternalError",
    "InvalidJobDescriptionError",
    "JobInfo",
    "JobNotDefinedError",
    "Jobs",
    "LocalManager",
    "Manager",
    "QCGPJMAError",
    "ServiceError",
    "TimeoutElapsed",
    "WrongArgumentsError",
]
