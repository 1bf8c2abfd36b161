"""The front's handle on one partition: its resources, its routing window, how to reach it.

>>> from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
>>> link = PartitionLink(0, "p0", ResourcePool(parse_nodes_spec("2")), print)
>>> link.window, link.credit, link.live
(64, 64, True)
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from ..protocol.messages import Message
from ..resources import ResourcePool
from ..states import JobState

if TYPE_CHECKING:
    from .registry import JobRecord

__all__ = ["MIN_WINDOW", "PartitionLink", "Stopper", "end_left_running"]

_log = logging.getLogger(__name__)

#: the smallest routing window, in cores
MIN_WINDOW = 64

#: ends what a lost partition left running (its process, its tasks' processes, its srun
#: steps) and says what it did, for the FAILED message of those tasks. Its arguments: the
#: link and the (pid, start time) of each task the front knew to be running there.
Stopper = Callable[["PartitionLink", List[Tuple[int, float]]], str]


class PartitionLink:
    """One partition as the front sees it.

    ``outstanding`` counts the cores asked for by tasks dispatched there and not yet
    final; routing keeps it within ``window`` so that work stays in the front's queue,
    where any partition that drains early can take it.
    """

    def __init__(self, index: int, name: str, pool: ResourcePool, send: Callable[[Message], None], *,
                 host: str = "", pid: int = 0) -> None:
        self.index = index
        self.name = name
        self.pool = pool          # a replica, used for fit checks and totals
        self.send = send
        self.host = host
        self.pid = pid
        self.joined = time.time()
        self.used_cores = 0
        self.stopped = False      # it said it stopped
        self.lost = False         # it stopped answering; its work was failed or moved
        self.outstanding = 0
        self.window = MIN_WINDOW
        self.resize_window()
        self.dispatched_tasks = 0
        # the live view's figures (``status``'s PartitionStats): tasks running, and ended
        # succeeded or not, here; cores in use per node as the partition last said
        # (heartbeats), or ``node_usage`` when it runs in this process
        self.running = 0
        self.succeeded = 0
        self.failed = 0
        self.node_used: Dict[str, int] = {}
        self.node_usage: Optional[Callable[[], Dict[str, int]]] = None
        #: set by whoever can end a lost partition's processes (see :data:`Stopper`)
        self.stopper: Optional[Stopper] = None

    def resize_window(self) -> None:
        self.window = max(4 * self.pool.total_cores, MIN_WINDOW)

    @property
    def live(self) -> bool:
        return not self.stopped and not self.lost

    @property
    def credit(self) -> int:
        return self.window - self.outstanding

    def __repr__(self) -> str:
        return f"PartitionLink({self.index}, {self.name!r})"


def end_left_running(link: PartitionLink, running: List[Tuple[JobRecord, int]]) -> str:
    """Ask ``link.stopper`` to end what a lost partition left running: the tasks of
    ``running`` (job, task index) whose pid the front knows. Returns what was done, for
    the FAILED message ("" if there was nothing to do)."""
    if link.stopper is None:
        return "its tasks could not be ended from here" if running else ""
    procs = []
    for job, idx in running:
        rec = job.tasks[idx]
        pid = (rec.runtime or {}).get("pid")
        started = next((t for t, s in reversed(rec.history_entries(job.submit_time))
                        if s is JobState.EXECUTING), None)
        if isinstance(pid, int) and pid > 0 and started is not None:
            procs.append((pid, started))
    try:
        return link.stopper(link, procs)
    except Exception as exc:  # ending what is left is best effort; the loss goes on
        _log.exception("cannot end what partition %s left running", link.name)
        return f"its tasks could not be ended: {exc}"
