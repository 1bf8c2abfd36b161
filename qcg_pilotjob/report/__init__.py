"""``qcg-pm-report``: what a run did, read from its files (``jobs.report``, ``final_status``,
the journal), for a finished run or one still going, single manager or governor.

- :mod:`.runs` reads a run into :class:`~.runs.Run` (tasks with their times and cores);
- :mod:`.stats` computes from a run (pure functions: counts, percentiles, overheads,
  utilisation, gaps);
- :mod:`.svg` draws Gantt and utilisation charts as SVG, with no plotting library;
- :mod:`.cli` is the click command.
"""
