"""Compatibility import path: ``qcg.pilotjob`` is ``qcg_pilotjob`` for QCG-PilotJob programs."""

from qcg_pilotjob import __version__

__all__ = ["__version__"]
