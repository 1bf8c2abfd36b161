"""``qcg.pilotjob.executor_api``: QCG-PilotJob's executor API, built into qcg_pilotjob
(``qcg_pilotjob.executor_api``)."""

from qcg_pilotjob.executor_api import *  # noqa: F403
from qcg_pilotjob.executor_api import __all__, __version__  # noqa: F401
