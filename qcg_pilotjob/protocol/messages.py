"""Messages between the front (governor) and partition managers.

Every message is a frozen dataclass with a class-level ``TYPE`` tag; :mod:`.codec` is the
only place that turns them into bytes, and decoding checks every field against the rules
in :mod:`.checks` (one check per field, in this field order), so logic may trust what it
receives. In single-manager mode the objects are handed over in process without encoding.

>>> TaskEventsMsg([TaskEvent("a", None, 4, 0.0)], used_cores=0).TYPE
2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from ..jobdesc import JobDescription

__all__ = [
    "PROTOCOL_VERSION",
    "AgentHelloMsg",
    "AgentStopMsg",
    "CancelMsg",
    "DispatchMsg",
    "ExitMsg",
    "ForgetMsg",
    "HeartbeatMsg",
    "Message",
    "NodeLostMsg",
    "RegisterMsg",
    "RegisteredMsg",
    "RunMsg",
    "ShutdownMsg",
    "SignalMsg",
    "StartedMsg",
    "StoppedMsg",
    "TaskEvent",
    "TaskEventsMsg",
    "TasksEndedMsg",
]

#: Bumped on every incompatible change; checked when a partition registers.
PROTOCOL_VERSION = 2


class Message:
    TYPE: ClassVar[int] = 0


@dataclass(frozen=True)
class TaskEvent:
    """A state change of one task (``iteration`` None: a job without iterations).

    ``data`` holds ``allocation``, ``wd``, ``pid`` when it starts and ``exit_code``,
    ``rtime`` (seconds), ``message`` when it ends; decoding drops any other key.
    """

    job: str
    iteration: Optional[int]
    state: int
    time: float
    data: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class DispatchMsg(Message):
    """Front -> partition: run these iterations (``None``: the job has none). Their
    dependencies are already satisfied. ``iter_total`` is what the iteration resource
    schedulers divide the partition by."""

    TYPE: ClassVar[int] = 1
    desc: JobDescription
    iter_total: int
    iterations: Optional[List[Tuple[int, int]]] = None


@dataclass(frozen=True)
class TaskEventsMsg(Message):
    """Partition -> front: a batch of task state changes and the partition's usage."""

    TYPE: ClassVar[int] = 2
    events: List[TaskEvent] = field(default_factory=list)
    used_cores: int = 0


@dataclass(frozen=True)
class CancelMsg(Message):
    """Front -> partition: cancel queued or running tasks of a job (``iterations`` None: all)."""

    TYPE: ClassVar[int] = 3
    job: str
    iterations: Optional[List[Optional[int]]] = None


@dataclass(frozen=True)
class ForgetMsg(Message):
    """Front -> partition: these jobs were removed; drop what is kept about them."""

    TYPE: ClassVar[int] = 4
    jobs: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class ShutdownMsg(Message):
    """Front -> partition: stop every task (SIGTERM, then SIGKILL) and stop."""

    TYPE: ClassVar[int] = 5
    reason: str = "finish"


@dataclass(frozen=True)
class StoppedMsg(Message):
    """Partition -> front: every task has ended and the partition stopped."""

    TYPE: ClassVar[int] = 6


@dataclass(frozen=True)
class RegisterMsg(Message):
    """Partition -> governor, first message: who it is and what it has. ``version`` must be
    the governor's :data:`PROTOCOL_VERSION`."""

    TYPE: ClassVar[int] = 7
    id: str
    version: int
    nodes: List[Dict[str, Any]]
    host: str = ""
    pid: int = 0


@dataclass(frozen=True)
class RegisteredMsg(Message):
    """Governor -> partition: registration accepted, or refused with a reason (fatal)."""

    TYPE: ClassVar[int] = 8
    ok: bool
    message: str = ""
    heartbeat: float = 1.0


@dataclass(frozen=True)
class HeartbeatMsg(Message):
    """Both ways, every ``heartbeat`` seconds; a peer silent for several beats is lost."""

    TYPE: ClassVar[int] = 9
    used_cores: int = 0
    #: partition -> governor: cores in use per node (the live view's; empty the other way)
    node_used: Dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeLostMsg(Message):
    """Partition -> front: a node went out of use (its agent is gone)."""

    TYPE: ClassVar[int] = 10
    node: str


@dataclass(frozen=True)
class TasksEndedMsg(Message):
    """Partition -> front: iterations of ``job`` that never started ended together in
    ``state`` (canceled in the queue, or at the service's end): ranges, not an event per
    iteration, so ending 10,000,000 queued iterations is one message."""

    TYPE: ClassVar[int] = 11
    job: str
    iterations: List[Tuple[int, int]]
    state: int
    time: float
    message: str = ""


# --- partition <-> node agent ------------------------------------------------------------------

@dataclass(frozen=True)
class AgentHelloMsg(Message):
    """Agent -> partition, first message: its node, the CPUs it may use, its GPUs."""

    TYPE: ClassVar[int] = 20
    node: str
    version: int
    cpus: List[int]
    gpus: List[str]
    pid: int = 0


@dataclass(frozen=True)
class RunMsg(Message):
    """Partition -> agent: start a task. ``env`` holds only what differs from the agent's
    own environment; ``cores`` are the allocated core positions on the node (the agent
    maps them onto the CPUs it may use)."""

    TYPE: ClassVar[int] = 21
    key: List[Any]
    argv: List[str]
    wd: str
    env: Dict[str, str]
    stdin: Optional[str] = None
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    cores: Optional[List[int]] = None


@dataclass(frozen=True)
class StartedMsg(Message):
    """Agent -> partition: a task started (``pid``), or could not start (``error``)."""

    TYPE: ClassVar[int] = 22
    key: List[Any]
    pid: int = 0
    error: Optional[str] = None
    cpus: Optional[List[int]] = None


@dataclass(frozen=True)
class ExitMsg(Message):
    """Agent -> partition: a task ended with ``code`` (negative: killed by that signal)."""

    TYPE: ClassVar[int] = 23
    key: List[Any]
    code: int
    time: float


@dataclass(frozen=True)
class SignalMsg(Message):
    """Partition -> agent: send ``sig`` to a task's process group."""

    TYPE: ClassVar[int] = 24
    key: List[Any]
    sig: int


@dataclass(frozen=True)
class AgentStopMsg(Message):
    """Partition -> agent: kill every task and exit."""

    TYPE: ClassVar[int] = 25
