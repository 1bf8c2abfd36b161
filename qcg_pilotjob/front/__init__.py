"""The front: the one place that owns jobs and their states, in both modes.

A single manager has one front and one partition in the same process; a governor has
one front and many partitions, reached through the :mod:`.hub`. Modules:

- :mod:`.core`: :class:`~.core.Front`, the only place where task and job states change;
- :mod:`.links`: :class:`~.links.PartitionLink`, the front's handle on a partition;
- :mod:`.transitions`: the task state machine and :class:`~.transitions.InvalidTransition`;
- :mod:`.requests`: client requests, checked and turned into calls on the front;
- :mod:`.views`: read-only views (job status and info, list, status, report entries);
- :mod:`.dependencies`: who waits for whom;
- :mod:`.router`: which partition gets which ready task (pure);
- :mod:`.registry`: job and task records; :mod:`.journal` and :mod:`.reports`: files;
- :mod:`.hub`: the governor's side of the partition links.
"""
