"""Compatibility import path: ``qcg.pilotjob`` is ``qcg_pilotjob`` for QCG-PilotJob programs.

``qcg`` is a namespace package and ``qcg.pilotjob`` extends its path over every ``qcg/pilotjob``
directory on ``sys.path``, so modules other distributions install there (for example the
executor API of ``qcg-pilotjob-executor-api``) import next to ours.
"""

from pkgutil import extend_path

from qcg_pilotjob import __version__

__path__ = extend_path(__path__, __name__)

__all__ = ["__version__"]
