"""The auxiliary directory of a run: its name, and finding it again.

A service keeps its logs, report, journal and ``address`` file in
``<wd>/.qcgpjm-service-<id>/`` (QCG-PilotJob's name); a governor's partitions keep theirs
in ``partition-<i>/`` below it.

The aux dir is private: jobs' descriptions (their ``env`` too) land in the journal and the
report, so the directory is made 0700 and every file the service writes there 0600,
whatever the umask (:func:`make_private_dir`, :func:`open_private_fd`).

>>> aux_dir("/w", "host.12")
'/w/.qcgpjm-service-host.12'
>>> instance_of("/w/.qcgpjm-service-host.12")
'host.12'
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import List, Optional

__all__ = ["AUX_PREFIX", "PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "aux_dir", "aux_dirs_below", "instance_of",
           "make_private_dir", "newest_aux_dir", "open_private_fd", "write_private_file"]

AUX_PREFIX = ".qcgpjm-service-"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

_FLAGS = {"a": os.O_WRONLY | os.O_CREAT | os.O_APPEND, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}


def aux_dir(wd: str, instance_id: str) -> str:
    return os.path.join(wd, AUX_PREFIX + instance_id)


def instance_of(path: str) -> str:
    """The instance id an aux dir is named after (its base name without the prefix)."""
    base = os.path.basename(os.path.normpath(path))
    return base[len(AUX_PREFIX):] if base.startswith(AUX_PREFIX) else base


def aux_dirs_below(wd: str) -> List[str]:
    """The aux dirs directly below ``wd`` (none if it cannot be read)."""
    try:
        names = os.listdir(wd)
    except OSError:
        return []
    return [os.path.join(wd, n) for n in names if n.startswith(AUX_PREFIX)]


def newest_aux_dir(wd: str, holding: Optional[str] = None) -> Optional[str]:
    """Of the aux dirs below ``wd`` (that hold the file ``holding``), the one changed last:
    by that file's time, or the directory's own without ``holding``; None if there is none."""
    found = [(d, d if holding is None else os.path.join(d, holding)) for d in aux_dirs_below(wd)]
    found = [(d, f) for d, f in found if holding is None or os.path.isfile(f)]
    return max(found, key=lambda pair: os.path.getmtime(pair[1]))[0] if found else None


def make_private_dir(path: str) -> None:
    """Create ``path`` (and missing parents, with the usual modes) and make it 0700.

    ``os.makedirs(mode=...)`` honours the umask, hence the ``chmod``; an existing directory
    (a resumed run's) is made private too.
    """
    os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)


def open_private_fd(path: str, mode: str = "a") -> int:
    """A raw file descriptor of ``path`` opened for appending (``"a"``) or rewriting
    (``"w"``), the file made 0600 whatever the umask (also a file an older run left)."""
    fd = os.open(path, _FLAGS[mode] | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    # only a regular file (a --report-file of /dev/stdout keeps its mode); one that is not
    # ours (an odd --report-file) is written to as it is
    if stat.S_ISREG(os.fstat(fd).st_mode):
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, PRIVATE_FILE_MODE)
    return fd


def write_private_file(path: str, data: bytes) -> None:
    """Write ``path`` whole, 0600: into ``<path>.tmp``, then renamed over it, so a reader
    sees the old content or the new, never a part (raises OSError; no ``.tmp`` is left)."""
    tmp = path + ".tmp"
    try:
        fd = open_private_fd(tmp, "w")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
