"""Errors raised by the client API (the hierarchy of QCG-PilotJob's ``qcg.pilotjob.api.errors``)."""

from __future__ import annotations

__all__ = [
    "ConnectionError",
    "FileError",
    "InternalError",
    "InvalidJobDescriptionError",
    "JobNotDefinedError",
    "PlaceholderError",
    "QCGPJMAError",
    "ServiceError",
    "TimeoutElapsed",
    "WrongArgumentsError",
]


class QCGPJMAError(Exception):
    """Base of every API error."""


class InternalError(QCGPJMAError):
    """An unexpected reply or state."""


class InvalidJobDescriptionError(QCGPJMAError):
    """A job description given to :class:`~qcg_pilotjob.api.job.Jobs` is wrong."""


class PlaceholderError(InvalidJobDescriptionError, KeyError):
    """An executor template's placeholder has no value. Also a ``KeyError``, which is what
    QCG-PilotJob's executor API raises there (and what its users catch).

    >>> err = PlaceholderError("template: no value for the placeholder 'exec'")
    >>> isinstance(err, KeyError), str(err)
    (True, "template: no value for the placeholder 'exec'")
    """

    def __str__(self) -> str:  # (KeyError's own would quote the whole message)
        return str(self.args[0]) if self.args else ""


class JobNotDefinedError(QCGPJMAError):
    """No job of that name in the group."""


class ConnectionError(QCGPJMAError):  # the name QCG-PilotJob programs catch
    """The service could not be reached, or it refused the request (its message is kept)."""


class WrongArgumentsError(QCGPJMAError):
    """Arguments of an API call are wrong."""


class FileError(QCGPJMAError):
    """A job file cannot be read or written."""


class ServiceError(QCGPJMAError):
    """The service could not be started or stopped."""


class TimeoutElapsed(QCGPJMAError):
    """A wait with a timeout ended before the jobs did."""
