"""``qcg.pilotjob.executor_api.templates.qcgpj_template``: re-exports :class:`QCGPJTemplate`."""

from qcg_pilotjob.executor_api.templates import QCGPJTemplate

__all__ = ["QCGPJTemplate"]
