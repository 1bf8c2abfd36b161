"""qcg_pilotjob: run many small tasks inside one allocation.

>>> import qcg_pilotjob
>>> isinstance(qcg_pilotjob.__version__, str)
True
"""

from __future__ import annotations

__all__ = ["__version__"]

#: The package version, reported in ``service.log`` and ``final_status``.
__version__ = "0.1.0"
