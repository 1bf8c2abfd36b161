"""``qcg.pilotjob.api.job``: re-exports ``qcg_pilotjob.api.job`` for QCG-PilotJob programs."""

from qcg_pilotjob.api.job import *  # noqa: F403
from qcg_pilotjob.api.job import __all__  # noqa: F401
