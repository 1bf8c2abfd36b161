"""``qcg.pilotjob.api.errors``: re-exports ``qcg_pilotjob.api.errors`` for QCG-PilotJob programs."""

from qcg_pilotjob.api.errors import *  # noqa: F403
from qcg_pilotjob.api.errors import __all__  # noqa: F401
