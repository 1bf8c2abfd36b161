"""The service: ``qcg-pm-service`` and ``python -m qcg_pilotjob.service``."""

from __future__ import annotations

from .cli import main

__all__ = ["main"]
