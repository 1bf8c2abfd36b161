"""``qcg.pilotjob.api.jobinfo``: re-exports ``qcg_pilotjob.api.jobinfo`` for QCG-PilotJob programs."""

from qcg_pilotjob.api.jobinfo import *  # noqa: F403
from qcg_pilotjob.api.jobinfo import __all__  # noqa: F401
