"""The executor API of QCG-PilotJob (``qcg.pilotjob.executor_api``, shipped by the reference
as ``qcg-pilotjob-executor-api``), built in: what EasyVVUQ and FabSim3 use.

    from qcg.pilotjob.executor_api.qcgpj_executor import QCGPJExecutor
    from qcg.pilotjob.executor_api.templates.basic_template import BasicTemplate

    with QCGPJExecutor(resources="4") as ex:
        futures = [ex.submit(BasicTemplate.template, name=f"t{i}", exec="/bin/echo", args=[i])
                   for i in range(8)]
        for f in as_completed(futures):
            print(f.result())           # {"t3": "SUCCEED"}

- :mod:`.templates`: ``QCGPJTemplate``, ``BasicTemplate`` (a job description with
  ``${placeholders}`` and defaults);
- :mod:`.future`: ``QCGPJFuture`` and ``as_completed``/``wait`` over such futures;
- :mod:`.executor`: ``QCGPJExecutor``, a ``concurrent.futures.Executor`` over a
  ``LocalManager``.
"""

from __future__ import annotations

from .. import __version__
from .executor import QCGPJExecutor
from .future import ALL_COMPLETED, FIRST_COMPLETED, QCGPJFuture, as_completed, wait
from .templates import BasicTemplate, QCGPJTemplate

__all__ = ["ALL_COMPLETED", "FIRST_COMPLETED", "BasicTemplate", "QCGPJExecutor", "QCGPJFuture", "QCGPJTemplate",
           "__version__", "as_completed", "wait"]
