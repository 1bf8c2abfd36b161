"""Domain exceptions with a user-facing message.

>>> str(JobDescriptionError("a", "resources.numCores", "must be at least 1"))
"job 'a': resources.numCores: must be at least 1"
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "ConfigError",
    "JobDescriptionError",
    "QCGError",
    "RequestError",
    "ResourceError",
    "ResumeError",
]


class QCGError(Exception):
    """Base of every error the service reports to its user."""


class RequestError(QCGError):
    """A request cannot be processed; the message is the reply text."""


class JobDescriptionError(RequestError):
    """A job description is invalid: names the job and the field."""

    def __init__(self, job: Optional[str], field: Optional[str], problem: str) -> None:
        self.job = job
        self.field = field
        self.problem = problem
        parts = []
        if job is not None:
            parts.append(f"job '{job}'")
        if field:
            parts.append(field)
        parts.append(problem)
        super().__init__(": ".join(parts))


class ResourceError(QCGError):
    """Resources are described wrongly or cannot satisfy a request."""


class ConfigError(QCGError):
    """The service's own options are wrong; the service cannot start."""


class ResumeError(ConfigError):
    """The ``--resume`` directory cannot be used."""
