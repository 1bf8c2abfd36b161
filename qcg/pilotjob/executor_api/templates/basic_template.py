"""``qcg.pilotjob.executor_api.templates.basic_template``: re-exports :class:`BasicTemplate`."""

from qcg_pilotjob.executor_api.templates import BasicTemplate

__all__ = ["BasicTemplate"]
