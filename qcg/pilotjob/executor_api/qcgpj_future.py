"""``qcg.pilotjob.executor_api.qcgpj_future``: re-exports :class:`QCGPJFuture` (and
``as_completed``/``wait`` over such futures)."""

from qcg_pilotjob.executor_api.future import ALL_COMPLETED, FIRST_COMPLETED, QCGPJFuture, as_completed, wait

__all__ = ["ALL_COMPLETED", "FIRST_COMPLETED", "QCGPJFuture", "as_completed", "wait"]
