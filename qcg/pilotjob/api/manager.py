"""``qcg.pilotjob.api.manager``: re-exports ``qcg_pilotjob.api.manager`` for QCG-PilotJob programs."""

from qcg_pilotjob.api.manager import *  # noqa: F403
from qcg_pilotjob.api.manager import __all__  # noqa: F401
