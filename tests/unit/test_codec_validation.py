"""Unit tests of the decode-time checks (qcg_pilotjob.protocol.checks via the codec).

Every field rule rejects a bad value with a text naming the message type and the field;
fuzzed input (values replaced, dropped or added; truncated, flipped or random bytes)
either decodes to well-formed messages or raises DecodeError, nothing else. The round
trips of every message type are in test_codec.py.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Iterator, List, Sequence, Tuple, Union

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.protocol.checks import FIELDS
from qcg_pilotjob.protocol.codec import DecodeError, _build, decode, decode_batch, encode, encode_batch
from qcg_pilotjob.protocol.messages import (
    PROTOCOL_VERSION,
    AgentHelloMsg,
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
    TaskEvent,
    TaskEventsMsg,
)
from qcg_pilotjob.states import JobState
from tests.unit.test_codec import ITERATED, PLAIN, SAMPLES, name_of

# --- an oracle independent of the checks: the dataclass annotations ---------------------

def _conforms(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is Union:
        return any(_conforms(value, a) for a in args)
    if origin is list:
        return type(value) is list and all(_conforms(x, args[0]) for x in value)
    if origin is dict:
        return type(value) is dict and all(type(k) is str and _conforms(v, args[1]) for k, v in value.items())
    if origin is tuple:
        return type(value) is tuple and len(value) == len(args) and all(map(_conforms, value, args))
    if hint is float:
        return type(value) in (int, float) and math.isfinite(value)
    if hint is int:
        return type(value) is int
    if dataclasses.is_dataclass(hint) and hint is not JobDescription:
        return type(value) is hint and _well_formed(value)
    return isinstance(value, hint)


def _well_formed(obj: Any) -> bool:
    hints = typing.get_type_hints(type(obj))
    if not all(_conforms(getattr(obj, f.name), hints[f.name]) for f in dataclasses.fields(obj)):
        return False
    return not isinstance(obj, TaskEvent) or obj.state in {s.value for s in JobState}


def _assert_valid(msgs: Sequence[Message], again: bool = True) -> None:
    for msg in msgs:
        assert type(msg) in FIELDS
        assert _well_formed(msg), msg
        if again:  # what decode returns passes decode again, unchanged (compared as bytes: a NaN
            # inside a job description's free-form content is not equal to itself)
            data = encode(msg)
            assert encode(decode(data)) == data


# --- one rule per case: the bad value is rejected with a text naming the field ----------

def _wire(msg: Message) -> List[Any]:
    return list(msgpack.unpackb(encode(msg), raw=False, strict_map_key=False)[2:])


def _put(obj: Any, path: Sequence[Any], value: Any) -> None:
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


EV = TaskEventsMsg([TaskEvent("a", 3, 3, 1.5, {"allocation": "n0[0]", "wd": "/w", "pid": 42, "exit_code": 0,
                                                "rtime": 0.5, "message": "m"})], 1)
DISPATCH = DispatchMsg(ITERATED, 8, [(1, 3)])
REGISTER = RegisterMsg("p1", 1, [{"name": "n0"}], "h", 1)
HELLO = AgentHelloMsg("n0", 1, [0, 1], ["0"], 1)
RUN = RunMsg(["a", 1], ["ls"], "/w", {"A": "1"}, None, None, None, [0])
STARTED = StartedMsg(["a", 1], 5, None, [0])
EXIT = ExitMsg(["a", 1], 0, 1.0)
SIGNAL = SignalMsg(["a", 1], 15)

NOT_STR = "is not a non-empty string"
RULES: List[Tuple[Message, Tuple[Any, ...], Any, str]] = [
    # task events
    (EV, (0,), 5, r"TaskEventsMsg\.events: 5 is not a list"),
    (EV, (0, 0), "x", r"TaskEventsMsg\.events\[0\]: 'x' is not a list \[job, iteration, state, time, data\]"),
    (EV, (0, 0, 0), "", rf"TaskEventsMsg\.events\[0\]\.job: '' {NOT_STR}"),
    (EV, (0, 0, 0), 5, rf"TaskEventsMsg\.events\[0\]\.job: 5 {NOT_STR}"),
    (EV, (0, 0, 1), "3", r"TaskEventsMsg\.events\[0\]\.iteration: '3' is not an integer or None"),
    (EV, (0, 0, 1), True, r"TaskEventsMsg\.events\[0\]\.iteration: True is not an integer or None"),
    (EV, (0, 0, 2), 99, r"TaskEventsMsg\.events\[0\]\.state: 99 is not a task state"),
    (EV, (0, 0, 2), 0, r"TaskEventsMsg\.events\[0\]\.state: 0 is not a task state"),
    (EV, (0, 0, 2), True, r"TaskEventsMsg\.events\[0\]\.state: True is not a task state"),
    (EV, (0, 0, 2), 4.0, r"TaskEventsMsg\.events\[0\]\.state: 4\.0 is not a task state"),
    (EV, (0, 0, 3), "now", r"TaskEventsMsg\.events\[0\]\.time: 'now' is not a number"),
    (EV, (0, 0, 3), True, r"TaskEventsMsg\.events\[0\]\.time: True is not a number"),
    (EV, (0, 0, 3), math.nan, r"TaskEventsMsg\.events\[0\]\.time: nan is not a finite number"),
    (EV, (0, 0, 3), math.inf, r"TaskEventsMsg\.events\[0\]\.time: inf is not a finite number"),
    (EV, (0, 0, 3), -1.0, r"TaskEventsMsg\.events\[0\]\.time: -1\.0 is not >= 0"),
    (EV, (0, 0, 4), [], r"TaskEventsMsg\.events\[0\]\.data: \[\] is not a dictionary or None"),
    (EV, (0, 0, 4), {1: "x"}, r"TaskEventsMsg\.events\[0\]\.data: key 1 is not a string"),
    (EV, (0, 0, 4, "allocation"), 5, r"TaskEventsMsg\.events\[0\]\.data\['allocation'\]: 5 is not a string"),
    (EV, (0, 0, 4, "wd"), None, r"TaskEventsMsg\.events\[0\]\.data\['wd'\]: None is not a string"),
    (EV, (0, 0, 4, "pid"), -1, r"TaskEventsMsg\.events\[0\]\.data\['pid'\]: -1 is less than 0"),
    (EV, (0, 0, 4, "pid"), "42", r"TaskEventsMsg\.events\[0\]\.data\['pid'\]: '42' is not an integer"),
    (EV, (0, 0, 4, "exit_code"), "0", r"TaskEventsMsg\.events\[0\]\.data\['exit_code'\]: '0' is not an integer"),
    (EV, (0, 0, 4, "exit_code"), 1.5, r"TaskEventsMsg\.events\[0\]\.data\['exit_code'\]: 1\.5 is not an integer"),
    (EV, (0, 0, 4, "rtime"), -0.5, r"TaskEventsMsg\.events\[0\]\.data\['rtime'\]: -0\.5 is not >= 0"),
    (EV, (0, 0, 4, "rtime"), math.nan, r"TaskEventsMsg\.events\[0\]\.data\['rtime'\]: nan is not a finite number"),
    (EV, (0, 0, 4, "rtime"), "1", r"TaskEventsMsg\.events\[0\]\.data\['rtime'\]: '1' is not a number"),
    (EV, (0, 0, 4, "message"), 5, r"TaskEventsMsg\.events\[0\]\.data\['message'\]: 5 is not a string"),
    (EV, (1,), -1, r"TaskEventsMsg\.used_cores: -1 is less than 0"),
    (EV, (1,), True, r"TaskEventsMsg\.used_cores: True is not an integer"),
    # dispatch
    (DISPATCH, (0,), ["not", "a", "dict"], r"DispatchMsg\.desc: invalid job description"),
    (DISPATCH, (0, "iteration"), {0: 1, "start": 0}, r"DispatchMsg\.desc: (invalid|unreadable) job description"),
    (DISPATCH, (1,), 0, r"DispatchMsg\.iter_total: 0 is less than 1"),
    (DISPATCH, (1,), "8", r"DispatchMsg\.iter_total: '8' is not an integer"),
    (DISPATCH, (2,), "1-3", r"DispatchMsg\.iterations: '1-3' is not a list of \[start, stop\] pairs or None"),
    (DISPATCH, (2,), [[5, 2]], r"DispatchMsg\.iterations\[0\]: \[5, 2\] is an empty range"),
    (DISPATCH, (2,), [[1, 3], [4, 4]], r"DispatchMsg\.iterations\[1\]: \[4, 4\] is an empty range"),
    (DISPATCH, (2,), [["a", 1]], r"DispatchMsg\.iterations\[0\]: \['a', 1\] is not a pair of integers"),
    (DISPATCH, (2,), [[1, 2, 3]], r"DispatchMsg\.iterations\[0\]: \[1, 2, 3\] is not a pair of integers"),
    (DISPATCH, (2,), [[True, 2]], r"DispatchMsg\.iterations\[0\]: \[True, 2\] is not a pair of integers"),
    (DISPATCH, (2,), [5], r"DispatchMsg\.iterations\[0\]: 5 is not a pair of integers"),
    (DISPATCH, (2,), [[0, 3]], r"DispatchMsg\.iterations\[0\]: \[0, 3\] is outside the job's iterations 1\.\.8"),
    (DISPATCH, (2,), [[1, 3], [8, 10]], r"DispatchMsg\.iterations\[1\]: \[8, 10\] is outside the job's iterations"),
    (DISPATCH, (2,), None, r"DispatchMsg\.iterations: None for a job with iterations"),
    (DispatchMsg(PLAIN, 1), (2,), [[0, 1]], r"DispatchMsg\.iterations: \[\(0, 1\)\] given for a job without"),
    # cancel, forget, shutdown
    (CancelMsg("a"), (0,), "", rf"CancelMsg\.job: '' {NOT_STR}"),
    (CancelMsg("a"), (1,), "x", r"CancelMsg\.iterations: 'x' is not a list"),
    (CancelMsg("a"), (1,), [1, "2"], r"CancelMsg\.iterations\[1\]: '2' is not an integer or None"),
    (CancelMsg("a"), (1,), [False], r"CancelMsg\.iterations\[0\]: False is not an integer or None"),
    (ForgetMsg(["a"]), (0,), "a", r"ForgetMsg\.jobs: 'a' is not a list"),
    (ForgetMsg(["a"]), (0,), ["a", 1], rf"ForgetMsg\.jobs\[1\]: 1 {NOT_STR}"),
    (ShutdownMsg(), (0,), None, r"ShutdownMsg\.reason: None is not a string"),
    # registration
    (REGISTER, (0,), ["p", 1], rf"RegisterMsg\.id: \['p', 1\] {NOT_STR}"),
    (REGISTER, (0,), "", rf"RegisterMsg\.id: '' {NOT_STR}"),
    (REGISTER, (1,), "1", r"RegisterMsg\.version: '1' is not an integer"),
    (REGISTER, (1,), True, r"RegisterMsg\.version: True is not an integer"),
    (REGISTER, (2,), {"n0": {}}, r"RegisterMsg\.nodes: \{'n0': \{\}\} is not a list"),
    (REGISTER, (2,), ["n0"], r"RegisterMsg\.nodes\[0\]: 'n0' is not a dictionary"),
    (REGISTER, (2,), [{"name": "n0"}, {1: 2}], r"RegisterMsg\.nodes\[1\]: key 1 is not a string"),
    (REGISTER, (3,), None, r"RegisterMsg\.host: None is not a string"),
    (REGISTER, (4,), -1, r"RegisterMsg\.pid: -1 is less than 0"),
    (REGISTER, (4,), 2**40, r"RegisterMsg\.pid: 1099511627776 is more than 2147483647"),
    (RegisteredMsg(True), (0,), 1, r"RegisteredMsg\.ok: 1 is not a boolean"),
    (RegisteredMsg(True), (1,), None, r"RegisteredMsg\.message: None is not a string"),
    (RegisteredMsg(True), (2,), 0, r"RegisteredMsg\.heartbeat: 0 is not > 0"),
    (RegisteredMsg(True), (2,), -1.0, r"RegisteredMsg\.heartbeat: -1\.0 is not > 0"),
    (RegisteredMsg(True), (2,), math.inf, r"RegisteredMsg\.heartbeat: inf is not a finite number"),
    (RegisteredMsg(True), (2,), "1", r"RegisteredMsg\.heartbeat: '1' is not a number"),
    (HeartbeatMsg(), (0,), -1, r"HeartbeatMsg\.used_cores: -1 is less than 0"),
    (HeartbeatMsg(), (0,), 1.0, r"HeartbeatMsg\.used_cores: 1\.0 is not an integer"),
    (HeartbeatMsg(), (1,), [], r"HeartbeatMsg\.node_used: \[\] is not a dictionary"),
    (HeartbeatMsg(), (1,), {"n0": -2}, r"HeartbeatMsg\.node_used\['n0'\]: -2 is less than 0"),
    (NodeLostMsg("n0"), (0,), "", rf"NodeLostMsg\.node: '' {NOT_STR}"),
    # node agents
    (HELLO, (0,), None, rf"AgentHelloMsg\.node: None {NOT_STR}"),
    (HELLO, (1,), "1", r"AgentHelloMsg\.version: '1' is not an integer"),
    (HELLO, (2,), "0-3", r"AgentHelloMsg\.cpus: '0-3' is not a list"),
    (HELLO, (2,), [0, "1"], r"AgentHelloMsg\.cpus\[1\]: '1' is not an integer"),
    (HELLO, (2,), [-1], r"AgentHelloMsg\.cpus\[0\]: -1 is less than 0"),
    (HELLO, (3,), [0], r"AgentHelloMsg\.gpus\[0\]: 0 is not a string"),
    (HELLO, (3,), "0", r"AgentHelloMsg\.gpus: '0' is not a list"),
    (HELLO, (4,), -5, r"AgentHelloMsg\.pid: -5 is less than 0"),
    (RUN, (0,), "a", r"RunMsg\.key: 'a' is not a list \[job, iteration\]"),
    (RUN, (0,), ["a"], r"RunMsg\.key: \['a'\] is not a list \[job, iteration\]"),
    (RUN, (0,), ["a", 1, 2], r"RunMsg\.key: \['a', 1, 2\] is not a list \[job, iteration\]"),
    (RUN, (0, 0), "", rf"RunMsg\.key\[0\]: '' {NOT_STR}"),
    (RUN, (0, 1), "1", r"RunMsg\.key\[1\]: '1' is not an integer or None"),
    (RUN, (1,), [], r"RunMsg\.argv: \[\] is empty"),
    (RUN, (1,), "ls", r"RunMsg\.argv: 'ls' is not a list"),
    (RUN, (1,), ["ls", 1], r"RunMsg\.argv\[1\]: 1 is not a string"),
    (RUN, (2,), "", rf"RunMsg\.wd: '' {NOT_STR}"),
    (RUN, (3,), [], r"RunMsg\.env: \[\] is not a dictionary"),
    (RUN, (3,), {"A": 1}, r"RunMsg\.env\['A'\]: 1 is not a string"),
    (RUN, (3,), {1: "x"}, r"RunMsg\.env: key 1 is not a string"),
    (RUN, (4,), 5, r"RunMsg\.stdin: 5 is not a string or None"),
    (RUN, (5,), [], r"RunMsg\.stdout: \[\] is not a string or None"),
    (RUN, (6,), b"x", r"RunMsg\.stderr: b'x' is not a string or None"),
    (RUN, (7,), "0", r"RunMsg\.cores: '0' is not a list"),
    (RUN, (7,), [-1], r"RunMsg\.cores\[0\]: -1 is less than 0"),
    (STARTED, (0,), None, r"StartedMsg\.key: None is not a list \[job, iteration\]"),
    (STARTED, (1,), -1, r"StartedMsg\.pid: -1 is less than 0"),
    (STARTED, (2,), 5, r"StartedMsg\.error: 5 is not a string or None"),
    (STARTED, (3,), [0, -2], r"StartedMsg\.cpus\[1\]: -2 is less than 0"),
    (EXIT, (0, 1), 1.0, r"ExitMsg\.key\[1\]: 1\.0 is not an integer or None"),
    (EXIT, (1,), "0", r"ExitMsg\.code: '0' is not an integer"),
    (EXIT, (1,), True, r"ExitMsg\.code: True is not an integer"),
    (EXIT, (2,), math.nan, r"ExitMsg\.time: nan is not a finite number"),
    (SIGNAL, (0,), [], r"SignalMsg\.key: \[\] is not a list \[job, iteration\]"),
    (SIGNAL, (1,), 0, r"SignalMsg\.sig: 0 is less than 1"),
    (SIGNAL, (1,), 65, r"SignalMsg\.sig: 65 is more than 64"),
    (SIGNAL, (1,), "9", r"SignalMsg\.sig: '9' is not an integer"),
]


def _rule_id(rule: Tuple[Message, Tuple[Any, ...], Any, str]) -> str:
    msg, path, value, _ = rule
    return f"{name_of(msg)}{list(path)}={value!r}"


@pytest.mark.parametrize("rule", RULES, ids=[_rule_id(r) for r in RULES])
def test_rule(rule: Tuple[Message, Tuple[Any, ...], Any, str]) -> None:
    msg, path, value, error = rule
    fields = _wire(msg)
    assert decode(msgpack.packb([PROTOCOL_VERSION, msg.TYPE, *fields])) == msg  # the base is valid
    _put(fields, path, value)
    with pytest.raises(DecodeError, match=f"^{error}"):
        decode(msgpack.packb([PROTOCOL_VERSION, msg.TYPE, *fields]))
    with pytest.raises(DecodeError, match=f"^{error}"):
        decode_batch(msgpack.packb([PROTOCOL_VERSION, [[msg.TYPE, *fields]]]))


@pytest.mark.parametrize("value", ["x" * 100_000, list(range(100_000)), {str(i): i for i in range(1000)}])
def test_error_texts_stay_short(value: Any) -> None:
    deep: Any = value
    for _ in range(200):
        deep = [deep]
    for bad in (value, deep):
        fields = _wire(HELLO)
        fields[4] = bad
        with pytest.raises(DecodeError, match=r"^AgentHelloMsg\.pid: ") as info:
            decode(msgpack.packb([PROTOCOL_VERSION, AgentHelloMsg.TYPE, *fields]))
        assert len(str(info.value)) < 200


@pytest.mark.parametrize(("msg", "path", "value"), [
    (EV, (0, 0, 1), -5),                  # iterations may start below zero
    (EV, (0, 0, 3), 7),                   # a time in whole seconds
    (EV, (0, 0, 4, "exit_code"), -9),     # killed by a signal
    (EV, (0, 0, 4), None),
    (EXIT, (1,), -15),
    (EXIT, (1,), 2**40),                  # a code is any int
    (RegisteredMsg(True), (2,), 3),
    (SIGNAL, (1,), 64),
    (SIGNAL, (0, 1), None),
    (CancelMsg("a"), (1,), [None, -1]),
    (RUN, (7,), None),
    (RUN, (7,), []),
    (RUN, (3,), {}),
    (REGISTER, (2,), []),
])
def test_edge_values_accepted(msg: Message, path: Tuple[Any, ...], value: Any) -> None:
    fields = _wire(msg)
    _put(fields, path, value)
    back = decode(msgpack.packb([PROTOCOL_VERSION, msg.TYPE, *fields]))
    _assert_valid([back])


# --- fuzzing ------------------------------------------------------------------------------

REPLACEMENTS: List[Any] = [None, -1, 0, 2**70, -(2**70), "x", "", [], {}, 1.5, math.nan, -math.inf, True, False,
                           b"\x00", [[1, "a"], [None, [2.5]]], [[1, 2]], {"k": [1]}, {1: 2}, ["a", None]]


def _item(msg: Message) -> List[Any]:
    return [msg.TYPE, *_wire(msg)]


def _positions(obj: Any, path: Tuple[Any, ...] = ()) -> Iterator[Tuple[Any, ...]]:
    """Paths of every value inside ``obj`` (not ``obj`` itself)."""
    children = enumerate(obj) if isinstance(obj, list) else obj.items() if isinstance(obj, dict) else ()
    for key, child in children:
        yield (*path, key)
        yield from _positions(child, (*path, key))


def _containers(obj: Any, path: Tuple[Any, ...] = ()) -> Iterator[Tuple[Any, ...]]:
    """Paths of every list or dict in ``obj``, ``obj`` itself included."""
    if isinstance(obj, (list, dict)):
        yield path
        for key in (range(len(obj)) if isinstance(obj, list) else list(obj)):
            yield from _containers(obj[key], (*path, key))


def _copy(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_copy(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    return obj


def _at(obj: Any, path: Tuple[Any, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


def _replaced(item: List[Any], path: Tuple[Any, ...], value: Any) -> List[Any]:
    out = _copy(item)
    _put(out, path, value)
    return out


def _check_outcome(item: Any) -> None:
    """Decoding ``item`` (a batched message) gives valid messages or DecodeError, nothing else."""
    try:
        batch = msgpack.packb([PROTOCOL_VERSION, [item]])
        single = msgpack.packb([PROTOCOL_VERSION, *item]) if isinstance(item, list) else batch
    except (OverflowError, TypeError, ValueError):  # msgpack cannot carry it (2**70): check the fields
        try:
            msg = _build(item[0], item[1:])
        except DecodeError:
            return
        # a huge int inside free-form content (a job description, a node) is not checked
        # here and cannot come off the wire: no encoding round trip for these
        _assert_valid([msg], again=False)
        return
    for data, dec in ((batch, decode_batch), (single, decode)):
        try:
            out = dec(data)
        except DecodeError:
            continue
        _assert_valid(out if isinstance(out, list) else [out])


@pytest.mark.parametrize("msg", SAMPLES, ids=name_of)
def test_fuzz_every_value_replaced(msg: Message) -> None:
    item = _item(msg)
    for path in _positions(item):
        for value in REPLACEMENTS:
            _check_outcome(_replaced(item, path, value))


@pytest.mark.parametrize("msg", SAMPLES, ids=name_of)
def test_fuzz_values_dropped_and_added(msg: Message) -> None:
    item = _item(msg)
    for path in _containers(item):
        container = _at(item, path)
        keys = range(len(container)) if isinstance(container, list) else list(container)
        for key in keys:
            out = _copy(item)
            del _at(out, path)[key]
            _check_outcome(out)
        for extra in (None, 1, "x", []):
            out = _copy(item)
            target = _at(out, path)
            if isinstance(target, list):
                target.append(extra)
            else:
                target["extra"] = extra
            _check_outcome(out)


def _truncate_bytes(data: bytes) -> Iterator[bytes]:
    for n in range(len(data)):
        yield data[:n]


@pytest.mark.parametrize("msg", SAMPLES, ids=name_of)
def test_fuzz_truncated_frames(msg: Message) -> None:
    for data in (encode(msg), encode_batch([msg])):
        for cut in _truncate_bytes(data):
            for dec in (decode, decode_batch):
                try:
                    out = dec(cut)
                except DecodeError:
                    continue
                _assert_valid(out if isinstance(out, list) else [out])


FUZZ = settings(max_examples=300, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = (st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=8)
            | st.binary(max_size=4) | st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 64, 65, -1]))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=6) | st.integers(-3, 3), inner, max_size=4),
                       max_leaves=12)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    for dec in (decode, decode_batch):
        try:
            out = dec(data)
        except DecodeError:
            continue
        _assert_valid(out if isinstance(out, list) else [out])


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_fuzz_structured_mutations(msg: Message, data: st.DataObject) -> None:
    item = _item(msg)
    for _ in range(data.draw(st.integers(1, 3))):
        positions = list(_positions(item))
        if not positions:
            break
        path = data.draw(st.sampled_from(positions))
        item = _replaced(item, path, data.draw(_values))
    _check_outcome(item)


@FUZZ
@given(st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=4), st.data())
def test_fuzz_flipped_bytes(msgs: List[Message], data: st.DataObject) -> None:
    frame = bytearray(encode_batch(msgs))
    for _ in range(data.draw(st.integers(1, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    try:
        out = decode_batch(bytes(frame))
    except DecodeError:
        return
    _assert_valid(out)
