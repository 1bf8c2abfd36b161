"""``python -m qcg.pilotjob.service`` starts the qcg_pilotjob service."""

from qcg_pilotjob.service import main

__all__ = ["main"]
