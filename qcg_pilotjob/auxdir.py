"""The auxiliary directory of a run: its name, and finding it again.

A service keeps its logs, report, journal and ``address`` file in
``<wd>/.qcgpjm-service-<id>/`` (QCG-PilotJob's name); a governor's partitions keep theirs
in ``partition-<i>/`` below it.

>>> aux_dir("/w", "host.12")
'/w/.qcgpjm-service-host.12'
>>> instance_of("/w/.qcgpjm-service-host.12")
'host.12'
"""

from __future__ import annotations

import os
from typing import List

__all__ = ["AUX_PREFIX", "aux_dir", "aux_dirs_below", "instance_of", "partition_dir"]

AUX_PREFIX = ".qcgpjm-service-"


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


def partition_dir(aux: str, name: str) -> str:
    return os.path.join(aux, name)
