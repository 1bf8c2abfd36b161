"""``qcg.pilotjob.executor_api.qcgpj_executor``: re-exports :class:`QCGPJExecutor`."""

from qcg_pilotjob.executor_api.executor import QCGPJExecutor

__all__ = ["QCGPJExecutor"]
