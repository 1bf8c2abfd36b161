"""``qcg.pilotjob.api``: the qcg_pilotjob client API under QCG-PilotJob's import path."""

from qcg_pilotjob.api import *  # noqa: F403
from qcg_pilotjob.api import __all__  # noqa: F401
