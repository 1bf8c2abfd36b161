"""The rules every decoded partition message must pass before any logic sees it.

:func:`build` turns the decoded fields of one message into the message object, checking
each field's type, range and enum value on the way; a value that breaks a rule raises
:class:`Invalid`, whose text names the message type, the field and the problem. The
codec (:mod:`.codec`) is the only caller: it turns :class:`Invalid` into ``DecodeError``.

Each message class is given one check per field in :data:`FIELDS`, in the dataclass's
field order (the wire order); an import-time check keeps the two in step. A check takes
the decoded value and returns the value to store (mostly the same object; a job
description dictionary becomes a :class:`JobDescription`, iteration ranges become
tuples). Values come from msgpack, so exact ``type(v) is int`` tests suffice (and keep
``True`` out of integer fields).

Unknown keys in :attr:`TaskEvent.data` are dropped, not rejected: the front reads only
the known ones, and a newer peer's extra detail should not cost a whole batch of events.

>>> build(CancelMsg.TYPE, ["a", [1, None]])
CancelMsg(job='a', iterations=[1, None])
>>> build(TaskEventsMsg.TYPE, [[["a", None, 99, 0.0, None]], 0])
Traceback (most recent call last):
...
qcg_pilotjob.protocol.checks.Invalid: TaskEventsMsg.events[0].state: 99 is not a task state
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Type

from ..errors import JobDescriptionError
from ..jobdesc import JobDescription
from ..states import JobState
from .messages import (
    AgentHelloMsg,
    AgentStopMsg,
    CancelMsg,
    DispatchMsg,
    ExitMsg,
    ForgetMsg,
    HeartbeatMsg,
    Message,
    NodeLostMsg,
    RegisteredMsg,
    RegisterMsg,
    RunMsg,
    ShutdownMsg,
    SignalMsg,
    StartedMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
    TasksEndedMsg,
)

__all__ = ["FIELDS", "Check", "Invalid", "build"]

#: Takes a decoded value; returns the value to store or raises :class:`Invalid`.
Check = Callable[[Any], Any]

#: Largest value of a pid_t; also the bound of CPU ids and core positions.
MAX_INT32 = 2**31 - 1
#: The range of a msgpack int64: what decode returns can be encoded again.
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
#: Largest signal number on Linux (SIGRTMAX).
MAX_SIGNAL = 64

_repr = reprlib.Repr()
_repr.maxlevel = 2
_repr.maxlist = _repr.maxdict = 4
_repr.maxstring = _repr.maxother = _repr.maxlong = 40


def show(value: Any) -> str:
    """A short repr for error texts (bounded in length and depth, whatever the value)."""
    return _repr.repr(value)


class Invalid(ValueError):
    """A decoded value that breaks a rule; ``path`` (built on the way out) locates it."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = ""

    def under(self, part: str) -> Invalid:
        self.path = part + self.path
        return self

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


# --- scalars ---------------------------------------------------------------------------

def text(value: Any) -> str:
    if type(value) is str:
        return value
    raise Invalid(f"{show(value)} is not a string")


def name(value: Any) -> str:
    if type(value) is str and value:
        return value
    raise Invalid(f"{show(value)} is not a non-empty string")


def opt_text(value: Any) -> Optional[str]:
    if value is None or type(value) is str:
        return value
    raise Invalid(f"{show(value)} is not a string or None")


def flag(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise Invalid(f"{show(value)} is not a boolean")


def int_in(low: int, high: int) -> Check:
    """An int (not a bool) in ``low`` .. ``high``."""
    def check(value: Any) -> int:
        if type(value) is not int:
            raise Invalid(f"{show(value)} is not an integer")
        if value < low:
            raise Invalid(f"{value} is less than {low}")
        if value > high:
            raise Invalid(f"{value} is more than {high}")
        return value
    return check


#: Any int a peer can send back (what msgpack writes as int64).
integer = int_in(MIN_INT64, MAX_INT64)


def opt_integer(value: Any) -> Optional[int]:
    if value is None:
        return None
    if type(value) is not int:
        raise Invalid(f"{show(value)} is not an integer or None")
    if not MIN_INT64 <= value <= MAX_INT64:
        raise Invalid(f"{value} is out of the 64-bit range")
    return value


def number(low: float, *, above: bool = False) -> Check:
    """A finite int or float, ``>= low`` (``> low`` if ``above``)."""
    def check(value: Any) -> Any:
        if type(value) is float:
            if not math.isfinite(value):
                raise Invalid(f"{show(value)} is not a finite number")
        elif type(value) is not int:
            raise Invalid(f"{show(value)} is not a number")
        elif not MIN_INT64 <= value <= MAX_INT64:
            raise Invalid(f"{value} is out of the 64-bit range")
        if value < low or (above and value == low):
            raise Invalid(f"{show(value)} is not {'>' if above else '>='} {low:g}")
        return value
    return check


count = int_in(0, MAX_INT64)
pid = int_in(0, MAX_INT32)
cpu = int_in(0, MAX_INT32)


def state(value: Any) -> int:
    if type(value) is int and value in _STATES:
        return value
    raise Invalid(f"{show(value)} is not a task state")


_STATES = frozenset(int(s) for s in JobState)


# --- containers ------------------------------------------------------------------------

def optional(check: Check) -> Check:
    def opt(value: Any) -> Any:
        return None if value is None else check(value)
    return opt


def list_of(item: Check) -> Check:
    """A list whose items pass ``item`` (which must return its argument: the list is kept)."""
    def check(value: Any) -> List[Any]:
        if type(value) is not list:
            raise Invalid(f"{show(value)} is not a list")
        for i, x in enumerate(value):
            try:
                item(x)
            except Invalid as exc:
                raise exc.under(f"[{i}]") from None
        return value
    return check


def nonempty(check: Check) -> Check:
    def non(value: Any) -> Any:
        value = check(value)
        if not value:
            raise Invalid(f"{show(value)} is empty")
        return value
    return non


def _key_part(key: Any) -> str:
    return f"[{show(key)}]"


def dict_of(values: Optional[Check]) -> Check:
    """A dict with str keys whose values pass ``values`` (None: any value)."""
    def check(value: Any) -> Dict[str, Any]:
        if type(value) is not dict:
            raise Invalid(f"{show(value)} is not a dictionary")
        for k, v in value.items():
            if type(k) is not str:
                raise Invalid(f"key {show(k)} is not a string")
            if values is not None:
                try:
                    values(v)
                except Invalid as exc:
                    raise exc.under(_key_part(k)) from None
        return value
    return check


def task_key(value: Any) -> List[Any]:
    """``[job, iteration]``: a non-empty string and an int or None."""
    if type(value) is not list or len(value) != 2:
        raise Invalid(f"{show(value)} is not a list [job, iteration]")
    try:
        name(value[0])
    except Invalid as exc:
        raise exc.under("[0]") from None
    try:
        opt_integer(value[1])
    except Invalid as exc:
        raise exc.under("[1]") from None
    return value


def _record(names: Sequence[str], checks: Sequence[Check], values: Sequence[Any]) -> List[Any]:
    """``values`` checked position by position (same lengths); a failure names the field."""
    out: List[Any] = []
    try:
        for check, value in zip(checks, values):
            out.append(check(value))
    except Invalid as exc:
        raise exc.under("." + names[len(out)]) from None
    return out


# --- task events -----------------------------------------------------------------------

#: The keys of :attr:`TaskEvent.data` the front reads; any other key is dropped.
DATA_KEYS: Dict[str, Check] = {
    "allocation": text,
    "wd": text,
    "pid": pid,
    "exit_code": integer,
    "rtime": number(0),
    "message": text,
}


def event_data(value: Any) -> Optional[Dict[str, Any]]:
    if value is None:
        return None
    if type(value) is not dict:
        raise Invalid(f"{show(value)} is not a dictionary or None")
    out: Dict[str, Any] = {}
    for k, v in value.items():
        if type(k) is not str:
            raise Invalid(f"key {show(k)} is not a string")
        check = DATA_KEYS.get(k)
        if check is not None:
            try:
                out[k] = check(v)
            except Invalid as exc:
                raise exc.under(_key_part(k)) from None
    return out


event_time = number(0)
_EVENT_NAMES = tuple(f.name for f in dataclasses.fields(TaskEvent))
_EVENT_CHECKS: Tuple[Check, ...] = (name, opt_integer, state, event_time, event_data)


def task_event(value: Any) -> TaskEvent:
    if type(value) is not list:
        raise Invalid(f"{show(value)} is not a list [{', '.join(_EVENT_NAMES)}]")
    if len(value) != len(_EVENT_CHECKS):
        raise Invalid(f"{len(value)} fields, expected {len(_EVENT_CHECKS)} ({', '.join(_EVENT_NAMES)})")
    try:  # the _EVENT_CHECKS unrolled: events come by the thousand
        return TaskEvent(name(value[0]), opt_integer(value[1]), state(value[2]), event_time(value[3]),
                         event_data(value[4]))
    except Invalid:
        _record(_EVENT_NAMES, _EVENT_CHECKS, value)  # the same checks again, to name the field
        raise


def task_events(value: Any) -> List[TaskEvent]:
    if type(value) is not list:
        raise Invalid(f"{show(value)} is not a list")
    out: List[TaskEvent] = []
    try:
        for x in value:
            out.append(task_event(x))
    except Invalid as exc:
        raise exc.under(f"[{len(out)}]") from None
    return out


# --- dispatch ----------------------------------------------------------------------------

def job_description(value: Any) -> JobDescription:
    try:
        return JobDescription.from_dict(value)
    except JobDescriptionError as exc:
        raise Invalid(f"invalid job description: {exc}") from None
    except Exception as exc:  # a parser slip on odd input (e.g. int keys) must not escape decode
        raise Invalid(f"unreadable job description ({type(exc).__name__}: {exc})") from None


def iteration_ranges(value: Any) -> Optional[List[Tuple[int, int]]]:
    """None, or ``[[a, b], ...]`` int pairs with ``a < b`` (as tuples; an empty list is None,
    as the encoder writes it)."""
    if value is None:
        return None
    if type(value) is not list:
        raise Invalid(f"{show(value)} is not a list of [start, stop] pairs or None")
    out: List[Tuple[int, int]] = []
    for r in value:
        if type(r) is not list or len(r) != 2 or type(r[0]) is not int or type(r[1]) is not int:
            raise Invalid(f"{show(r)} is not a pair of integers [start, stop]").under(f"[{len(out)}]")
        if r[0] >= r[1]:
            raise Invalid(f"{show(r)} is an empty range (start >= stop)").under(f"[{len(out)}]")
        out.append((r[0], r[1]))
    return out or None


def _dispatch_iterations(values: List[Any]) -> None:
    """The ranges are iterations of the job: none for a job without, inside its own otherwise."""
    desc, _total, ranges = values
    it = desc.iteration
    if it is None:
        if ranges is not None:
            raise Invalid(f"{show(ranges)} given for a job without iterations").under(".iterations")
        return
    if ranges is None:
        raise Invalid("None for a job with iterations").under(".iterations")
    for i, (a, b) in enumerate(ranges):
        if a < it.start or b > it.stop:
            raise Invalid(f"[{a}, {b}] is outside the job's iterations {it.start}..{it.stop - 1}") \
                .under(f".iterations[{i}]")


# --- the messages ------------------------------------------------------------------------

#: Per message class: (field name, check) in the dataclass's field order.
FIELDS: Dict[Type[Message], Tuple[Tuple[str, Check], ...]] = {
    DispatchMsg: (("desc", job_description), ("iter_total", int_in(1, MAX_INT64)),
                  ("iterations", iteration_ranges)),
    TaskEventsMsg: (("events", task_events), ("used_cores", count)),
    CancelMsg: (("job", name), ("iterations", optional(list_of(opt_integer)))),
    TasksEndedMsg: (("job", name), ("iterations", nonempty(iteration_ranges)), ("state", state),
                    ("time", number(0)), ("message", text)),
    ForgetMsg: (("jobs", list_of(name)),),
    ShutdownMsg: (("reason", text),),
    StoppedMsg: (),
    RegisterMsg: (("id", name), ("version", integer), ("nodes", list_of(dict_of(None))), ("host", text),
                  ("pid", pid)),
    RegisteredMsg: (("ok", flag), ("message", text), ("heartbeat", number(0, above=True))),
    HeartbeatMsg: (("used_cores", count), ("node_used", dict_of(count))),
    NodeLostMsg: (("node", name),),
    AgentHelloMsg: (("node", name), ("version", integer), ("cpus", list_of(cpu)), ("gpus", list_of(text)),
                    ("pid", pid)),
    RunMsg: (("key", task_key), ("argv", nonempty(list_of(text))), ("wd", name), ("env", dict_of(text)),
             ("stdin", opt_text), ("stdout", opt_text), ("stderr", opt_text), ("cores", optional(list_of(cpu)))),
    StartedMsg: (("key", task_key), ("pid", pid), ("error", opt_text), ("cpus", optional(list_of(cpu)))),
    ExitMsg: (("key", task_key), ("code", integer), ("time", number(0))),
    SignalMsg: (("key", task_key), ("sig", int_in(1, MAX_SIGNAL))),
    AgentStopMsg: (),
}

#: Checks of the whole message, after the fields' own (field values in wire order).
_AFTER: Dict[Type[Message], Callable[[List[Any]], None]] = {DispatchMsg: _dispatch_iterations}


class _Spec(NamedTuple):
    label: str
    make: Callable[..., Message]
    names: Tuple[str, ...]
    checks: Tuple[Check, ...]
    after: Optional[Callable[[List[Any]], None]]
    expected: str


def _compile() -> Dict[int, _Spec]:
    specs: Dict[int, _Spec] = {}
    for cls, fields in FIELDS.items():
        names = tuple(n for n, _ in fields)
        declared = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        if names != declared:
            raise RuntimeError(f"checks of {cls.__name__} cover {names}, the class has {declared}")
        if cls.TYPE in specs:
            raise RuntimeError(f"{cls.__name__} and {specs[cls.TYPE].label} share type {cls.TYPE}")
        expected = f"{len(names)} ({', '.join(names)})" if names else "0"
        specs[cls.TYPE] = _Spec(cls.__name__, cls, names, tuple(c for _, c in fields), _AFTER.get(cls), expected)
    return specs


_SPECS = _compile()


def build(mtype: Any, fields: List[Any]) -> Message:
    """The message of type ``mtype`` from its decoded ``fields``, every field checked."""
    spec = _SPECS.get(mtype) if type(mtype) is int else None
    if spec is None:
        raise Invalid(f"unknown message type {show(mtype)}")
    if len(fields) != len(spec.checks):
        raise Invalid(f"{len(fields)} fields, expected {spec.expected}").under(spec.label)
    try:
        values = _record(spec.names, spec.checks, fields)
        if spec.after is not None:
            spec.after(values)
    except Invalid as exc:
        raise exc.under(spec.label) from None
    return spec.make(*values)
