"""Domain exceptions with a user-facing message.

>>> str(JobDescriptionError("a", "resources.numCores", "must be at least 1"))
"job 'a': resources.numCores: must be at least 1"
>>> str(InvalidRequest("Wrong control request - missing command"))
'Invalid request: Wrong control request - missing command'
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "INVALID_REQUEST",
    "ConfigError",
    "InvalidRequest",
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


#: how QCG-PilotJob begins the reply to a request whose form is wrong (caught while parsing)
INVALID_REQUEST = "Invalid request: "


class InvalidRequest(RequestError):
    """A request whose form is wrong, as QCG-PilotJob finds while parsing it (a missing
    ``jobNames`` or ``command``, ...): the reply text begins with ``Invalid request: ``."""

    def __init__(self, problem: str) -> None:
        super().__init__(INVALID_REQUEST + problem)
        self.problem = problem


class JobDescriptionError(RequestError):
    """A job description is invalid: names the job and the field. ``malformed``: the entry
    is not a job at all (not an object, no name), which QCG-PilotJob finds while parsing
    the request; the text then begins with ``Invalid request: `` as there."""

    def __init__(self, job: Optional[str], field: Optional[str], problem: str, *, malformed: bool = False) -> None:
        self.job = job
        self.field = field
        self.problem = problem
        parts = [INVALID_REQUEST.rstrip(": ")] if malformed else []
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
