"""A partition manager: scheduler + executor for a group of nodes.

It receives :mod:`~qcg_pilotjob.protocol.messages` from its front and answers with
batched :class:`~qcg_pilotjob.protocol.messages.TaskEventsMsg`. The same class runs in
the service process (single-manager mode) or in a process of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import ResourceError
from ..protocol.messages import (
    CancelMsg,
    DispatchMsg,
    ForgetMsg,
    Message,
    NodeLostMsg,
    ShutdownMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
    TasksEndedMsg,
)
from ..resources import ResourcePool
from ..states import JobState
from .agents import AgentExecutor
from .executor import (
    STOP_CANCEL,
    STOP_SHUTDOWN,
    STOP_WALLTIME,
    DryRunExecutor,
    Executor,
    LocalExecutor,
    RunningTask,
    SrunExecutor,
)
from .scheduler import Scheduler, TaskSpec

__all__ = ["PartitionManager"]

_log = logging.getLogger(__name__)

Send = Callable[[Message], None]


class PartitionManager:
    """Runs dispatched tasks on its pool; reports every state change to ``send``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: ResourcePool, send: Send, *,
                 executor_options: Dict[str, object], partition_id: str = "partition-0",
                 dry_run: bool = False, launcher: str = "local", deadline: Optional[float] = None) -> None:
        self.loop = loop
        self.id = partition_id
        self.pool = pool
        self.scheduler = Scheduler(pool)
        self.scheduler.deadline = deadline
        self.send = send
        self.executor: Executor
        if dry_run:
            self.executor = DryRunExecutor(loop, on_exit=self._on_exit, **executor_options)  # type: ignore[arg-type]
        elif launcher == "agents":
            self.executor = AgentExecutor(loop, on_exit=self._on_exit, nodes=[n.name for n in pool.nodes],
                                          **executor_options)  # type: ignore[arg-type]
        elif launcher == "srun":
            self.executor = SrunExecutor(loop, on_exit=self._on_exit, **executor_options)  # type: ignore[arg-type]
        else:
            self.executor = LocalExecutor(loop, on_exit=self._on_exit, **executor_options)  # type: ignore[arg-type]
        #: jobs with tasks here (queued or running), and how many: a job's spec goes when
        #: its last task here ends (a long run of many jobs holds only the live ones)
        self.specs: Dict[str, TaskSpec] = {}
        self._tasks_here: Dict[str, int] = {}
        self._events: List[TaskEvent] = []
        self._flush_pending = False
        self._schedule_pending = False
        self._stopping = False

    async def prepare(self, agent_timeout: float = 120.0, ready_threshold: Optional[float] = None) -> List[str]:
        """Start node agents (Slurm); nodes without one are left out. Returns those nodes.
        ``ready_threshold`` (``--nl-ready-threshold``): the fraction of agents that must
        come up, else :class:`ResourceError` (None: at least one)."""
        if not isinstance(self.executor, AgentExecutor):
            return []
        missing = await self.executor.start_agents(agent_timeout)
        kept = [n for n in self.pool.nodes if n.name not in missing]
        if not kept:
            raise ResourceError(f"no node agent came up (nodes: {', '.join(missing)})")
        total = len(self.pool.nodes)
        if ready_threshold is not None and len(kept) < ready_threshold * total:
            raise ResourceError(f"{len(kept)} of {total} node agents came up, fewer than --nl-ready-threshold "
                                f"{ready_threshold:g} asks (missing: {', '.join(missing)})")
        for node in kept:
            # GPUs as each node's agent sees them (CUDA_VISIBLE_DEVICES of its step), when
            # the allocation's environment did not say: nodes need not be alike
            gpus = self.executor.agent_gpus(node.name)
            if gpus and not node.gpu_ids:
                node.gpu_ids = list(gpus)
                node.free_gpus = list(range(len(gpus)))
        self.pool = ResourcePool(kept)
        deadline = self.scheduler.deadline
        self.scheduler = Scheduler(self.pool)
        self.scheduler.deadline = deadline
        self.executor.on_node_lost = self._node_lost
        self.executor.on_pid = self._pid_known
        return missing

    def _node_lost(self, node: str) -> None:
        """A node's agent is gone: nothing more is scheduled there, and the front's totals
        shrink."""
        self.pool.disable_node(node)
        self._flush()
        self.send(NodeLostMsg(node))

    def _pid_known(self, task: RunningTask) -> None:
        """A remote start reported its pid: the front's runtime information gets it."""
        self._event(task.spec.name, task.iteration, JobState.EXECUTING,
                    {"allocation": str(task.allocation), "wd": task.plan.wd, "pid": task.pid})

    async def finish(self) -> None:
        """After the stop: end the node agents' srun steps."""
        if isinstance(self.executor, AgentExecutor):
            await self.executor.stop_agents()

    # --- inbound -----------------------------------------------------------------------
    def receive(self, msg: Message) -> None:
        if isinstance(msg, DispatchMsg):
            self._dispatch(msg)
        elif isinstance(msg, CancelMsg):
            self._cancel(msg)
        elif isinstance(msg, ForgetMsg):
            for name in msg.jobs:
                self.specs.pop(name, None)
                self._tasks_here.pop(name, None)
        elif isinstance(msg, ShutdownMsg):
            self.loop.create_task(self._shutdown(msg.reason))
        else:
            _log.warning("partition %s: unexpected message %s dropped", self.id, type(msg).__name__)

    def _dispatch(self, msg: DispatchMsg) -> None:
        name = msg.desc.name
        self._tasks_here[name] = self._tasks_here.get(name, 0) + (
            sum(b - a for a, b in msg.iterations) if msg.iterations else 1)
        if self._stopping:
            message = "the service is finishing; the task was not started"
            if msg.iterations:
                self._ended(msg.desc.name, list(msg.iterations), JobState.CANCELED, message)
            else:
                self._event(msg.desc.name, None, JobState.CANCELED, {"message": message})
            return
        spec = self.specs.get(msg.desc.name)
        if spec is None:
            spec = TaskSpec(msg.desc, msg.iter_total)
            self.specs[msg.desc.name] = spec
        self.scheduler.add(spec, msg.iterations)
        self._kick()

    def _cancel(self, msg: CancelMsg) -> None:
        if msg.iterations is None:
            self._cancel_queued(msg.job, "canceled before it started")
        else:
            for it in self.scheduler.cancel(msg.job, msg.iterations):
                self._event(msg.job, it, JobState.CANCELED, {"message": "canceled before it started"})
        if msg.iterations is None:
            keys = [k for k in self.executor.running if k[0] == msg.job]
        else:
            keys = [(msg.job, it) for it in msg.iterations]
        for key in keys:
            self.executor.stop(key, STOP_CANCEL)

    # --- scheduling --------------------------------------------------------------------
    def _kick(self) -> None:
        if not self._schedule_pending and not self._stopping:
            self._schedule_pending = True
            self.loop.call_soon(self._schedule)

    def _schedule(self) -> None:
        self._schedule_pending = False
        if self._stopping:
            return
        again = False
        result = self.scheduler.schedule()
        for spec, reason in result.time_blocked:
            _log.warning("job %s held back: %s", spec.name, reason)
            self._event(spec.name, None, JobState.QUEUED, {"message": reason})
        for failed in result.failed:
            for it in failed.iterations:
                self._event(failed.spec.name, it, JobState.FAILED, {"message": failed.message})
        for st in result.started:
            try:
                error = self.executor.start(st.spec, st.iteration, st.allocation)
            except Exception as exc:  # fail this task; an escaping error would stop all scheduling
                _log.exception("cannot start task %s", st.spec.name)
                error = f"cannot start the task: {exc}"
            if error is not None:
                self.scheduler.release(st.allocation)
                again = True
                self._event(st.spec.name, st.iteration, JobState.FAILED,
                            {"message": error, "allocation": str(st.allocation)})
            else:
                task = self.executor.running[(st.spec.name, st.iteration)]
                data: Dict[str, object] = {"allocation": str(st.allocation), "wd": task.plan.wd}
                if task.pid:
                    data["pid"] = task.pid
                self._event(st.spec.name, st.iteration, JobState.EXECUTING, data, task.started)
        if again:
            self._kick()

    def _on_exit(self, task: RunningTask, code: int, when: float) -> None:
        self.scheduler.release(task.allocation)
        data: Dict[str, object] = {"exit_code": code, "rtime": max(0.0, when - task.started)}
        reason = task.stop_reason
        if task.error is not None:
            state = JobState.FAILED
            data["message"] = task.error
        elif reason == STOP_CANCEL:
            state = JobState.CANCELED
            data["message"] = "canceled by user"
        elif reason == STOP_SHUTDOWN:
            state = JobState.CANCELED
            data["message"] = "stopped: the service finished"
        elif reason == STOP_WALLTIME:
            state = JobState.FAILED
            data["message"] = f"wall time limit of {task.spec.desc.resources.wt:g}s exceeded; the task was killed"
        elif code == 0:
            state = JobState.SUCCEED
        else:
            state = JobState.FAILED
            data["message"] = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
        # the end goes out before new tasks are started (their start takes the time): a
        # front killed meanwhile has recorded it and will not run the task again
        self._event(task.spec.name, task.iteration, state, data, max(when, task.started))
        self._kick()

    # --- outbound ----------------------------------------------------------------------
    def _event(self, job: str, it: Optional[int], state: JobState, data: Optional[Dict[str, object]],
               when: Optional[float] = None) -> None:
        """Queue a task event; ``when`` is the moment it happened (default: now). A start and
        an end carry the executor's own stamps, so the history's dates bound the run time."""
        self._events.append(TaskEvent(job, it, int(state), time.time() if when is None else when, data))
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush)
        if state.is_final:
            self._gone(job, 1)

    def _gone(self, job: str, n: int) -> None:
        """``n`` tasks of ``job`` ended here; with the last, its spec goes."""
        left = self._tasks_here.get(job, 0) - n
        if left > 0:
            self._tasks_here[job] = left
        else:
            self._tasks_here.pop(job, None)
            self.specs.pop(job, None)

    def _cancel_queued(self, job: str, message: str) -> None:
        """Every queued task of ``job`` is CANCELED: its iterations in one message of ranges."""
        single, ranges = self.scheduler.cancel_job(job)
        if single:
            self._event(job, None, JobState.CANCELED, {"message": message})
        if ranges:
            self._ended(job, ranges, JobState.CANCELED, message)

    def _ended(self, job: str, ranges: List[Tuple[int, int]], state: JobState, message: str) -> None:
        self._flush()  # (the events before it go first)
        self.send(TasksEndedMsg(job, ranges, int(state), time.time(), message))
        self._gone(job, sum(b - a for a, b in ranges))

    def _flush(self) -> None:
        self._flush_pending = False
        if self._events:
            events, self._events = self._events, []
            self.send(TaskEventsMsg(events, self.pool.used_cores))

    async def _shutdown(self, reason: str) -> None:
        if self._stopping:
            return
        self._stopping = True
        for name in list(self.specs):
            spec = self.specs[name]
            message = (self.scheduler.time_reason(spec) if self.scheduler.is_time_blocked(name)
                       else "the service finished before the task started")
            self._cancel_queued(name, message)
        self.executor.stop_all(STOP_SHUTDOWN)
        await self.executor.wait_idle()
        self.executor.close()
        self._flush()
        self.send(StoppedMsg())
