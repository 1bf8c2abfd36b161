"""Garbage-collector settings of the long-running processes (service, partition, agent).

CPython's default collects the youngest generation every 700 allocations and scans all
live objects once the old generation grows by a quarter. A service holding tens of
thousands of job records, nearly all free of reference cycles, then spends a fifth of its
time in the collector (10,000 jobs in a dry run: 2.7-2.9 s with the defaults, 2.1-2.3 s
with these). :func:`tune` freezes what was allocated while starting (imports, options: never
garbage) and collects less often; cycles are still collected.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune"]

#: allocations before a young collection, and young/middle collections before an older one
THRESHOLDS = (50_000, 20, 100)


def tune() -> None:
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
