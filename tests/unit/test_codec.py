"""Unit tests of qcg_pilotjob.protocol.codec: every message type survives encode/decode
(alone and batched); the envelope, the version and the field count are checked.

The per-field rules and the fuzzing are in test_codec_validation.py (which uses SAMPLES)."""

from __future__ import annotations

from typing import Any, List

import msgpack
import pytest

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.protocol import messages
from qcg_pilotjob.protocol.checks import FIELDS
from qcg_pilotjob.protocol.codec import DecodeError, decode, decode_batch, encode, encode_batch
from qcg_pilotjob.protocol.messages import (
    PROTOCOL_VERSION,
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

RAW = {
    "name": "job",
    "iteration": {"start": 1, "stop": 9},
    "execution": {"exec": "/bin/echo", "args": ["${it}", "x"], "env": {"A": "1"}},
    "resources": {"numCores": {"min": 1, "scheduler": "maximum-iters"}, "wt": "1m"},
    "dependencies": {"after": ["a", "b:${it}"]},
}


ITERATED = JobDescription.from_dict(RAW)  # iterations 1..8
PLAIN = JobDescription.from_dict({"name": "x", "execution": {"script": "echo"}})

#: At least one valid message of every type (used by test_codec_validation too).
SAMPLES: List[Message] = [
    DispatchMsg(ITERATED, 8, [(1, 3), (5, 9)]),
    TasksEndedMsg("a", [(0, 10_000_000), (10_000_001, 10_000_005)], 6, 1.5, "canceled before it started"),
    DispatchMsg(PLAIN, 1, None),
    TaskEventsMsg([
        TaskEvent("a", None, 3, 1.5, {"allocation": "n0[0]", "wd": "/w", "pid": 42}),
        TaskEvent("b", 7, 4, 2, {"exit_code": -9, "rtime": 0.5, "message": "killed by signal 9"}),
        TaskEvent("c", -2, 5, 3.0, None),
        TaskEvent("d", 0, 1, 0.0, {}),
    ], used_cores=3),
    TaskEventsMsg([], 0),
    CancelMsg("a", None),
    CancelMsg("a", [1, None, 3]),
    ForgetMsg(["a", "b"]),
    ForgetMsg([]),
    ShutdownMsg("finish"),
    StoppedMsg(),
    RegisterMsg("p1", PROTOCOL_VERSION, [{"name": "n0", "cores": 4, "gpus": ["0"]}], "host", 123),
    RegisterMsg("p2", PROTOCOL_VERSION + 1, [], "", 0),  # the hub refuses a wrong version, with a reason
    RegisteredMsg(True, "", 1.0),
    RegisteredMsg(False, "refused", 2),
    HeartbeatMsg(0),
    HeartbeatMsg(17),
    HeartbeatMsg(3, {"n0": 2, "n1": 1}),
    NodeLostMsg("n0"),
    AgentHelloMsg("n0", PROTOCOL_VERSION, [0, 1, 2, 3], ["0", "1"], 77),
    AgentHelloMsg("n1", PROTOCOL_VERSION, [], [], 0),
    RunMsg(["a", 3], ["/bin/echo", "x"], "/w", {"A": "1"}, "/w/in", "/w/out", "/w/err", [0, 1]),
    RunMsg(["b", None], ["true"], "/w", {}),
    StartedMsg(["a", 3], 1234, None, [4, 5]),
    StartedMsg(["a", None], 0, "cannot start", None),
    ExitMsg(["a", 3], 0, 1700000000.5),
    ExitMsg(["a", None], -9, 0),
    SignalMsg(["a", 3], 15),
    SignalMsg(["a", None], 64),
    AgentStopMsg(),
]


def name_of(msg: Message) -> str:
    return type(msg).__name__


def test_every_message_class_has_checks_samples_and_its_own_type() -> None:
    classes = {getattr(messages, n) for n in messages.__all__}
    classes = {c for c in classes if isinstance(c, type) and issubclass(c, Message) and c is not Message}
    assert set(FIELDS) == classes
    assert {type(m) for m in SAMPLES} == classes
    assert len({c.TYPE for c in classes}) == len(classes)
    assert 0 not in {c.TYPE for c in classes}


@pytest.mark.parametrize("msg", SAMPLES, ids=name_of)
def test_round_trip_of_every_type(msg: Message) -> None:
    back = decode(encode(msg))
    assert type(back) is type(msg)
    assert back == msg
    assert decode_batch(encode_batch([msg])) == [msg]


def test_batch_round_trip_of_every_type() -> None:
    back = decode_batch(encode_batch(SAMPLES))
    assert back == SAMPLES
    assert [type(m) for m in back] == [type(m) for m in SAMPLES]


@pytest.mark.parametrize("version", [PROTOCOL_VERSION + 1, 0, True, 1.0, "1", None, [1]])
def test_batch_of_another_version(version: Any) -> None:
    with pytest.raises(DecodeError, match="protocol version"):
        decode_batch(msgpack.packb([version, [[HeartbeatMsg.TYPE, 0]]]))
    with pytest.raises(DecodeError, match="protocol version"):
        decode(msgpack.packb([version, HeartbeatMsg.TYPE, 0]))


@pytest.mark.parametrize("msg", SAMPLES, ids=name_of)
def test_wrong_number_of_fields(msg: Message) -> None:
    fields = list(msgpack.unpackb(encode(msg), raw=False)[2:])
    n = len(fields)
    for bad in ([fields[:-1]] if fields else []) + [[*fields, None]]:
        with pytest.raises(DecodeError, match=rf"^{name_of(msg)}: {len(bad)} fields, expected {n}\b"):
            decode(msgpack.packb([PROTOCOL_VERSION, msg.TYPE, *bad]))
        with pytest.raises(DecodeError, match=rf"^{name_of(msg)}: {len(bad)} fields, expected {n}\b"):
            decode_batch(msgpack.packb([PROTOCOL_VERSION, [[msg.TYPE, *bad]]]))


def test_batch_error_names_the_message() -> None:
    data = msgpack.packb([PROTOCOL_VERSION, [[HeartbeatMsg.TYPE, 1, {}], [HeartbeatMsg.TYPE, -1, {}]]])
    with pytest.raises(DecodeError, match=r"^HeartbeatMsg\.used_cores: -1 is less than 0 \(message 1 of the batch\)$"):
        decode_batch(data)


@pytest.mark.parametrize("item", [5, [], "x"])
def test_batch_item_not_a_message(item: Any) -> None:
    with pytest.raises(DecodeError, match=r"a batched message is a list \[type, \.\.\.\] \(message 0"):
        decode_batch(msgpack.packb([PROTOCOL_VERSION, [item]]))


def test_unknown_event_data_keys_are_dropped() -> None:
    msg = TaskEventsMsg([TaskEvent("a", None, 4, 1.0, {"exit_code": 0, "future": [1, 2], "other": None})], 0)
    back = decode(encode(msg))
    assert isinstance(back, TaskEventsMsg)
    assert back.events[0].data == {"exit_code": 0}


def test_empty_iteration_ranges_are_none() -> None:
    # the encoder writes [] as None; a peer's [] reads the same
    data = msgpack.packb([PROTOCOL_VERSION, DispatchMsg.TYPE, PLAIN.raw, 1, []])
    assert decode(data) == DispatchMsg(PLAIN, 1, None)


def test_dispatch_round_trip() -> None:
    msg = DispatchMsg(JobDescription.from_dict(RAW), 8, [(1, 3), (5, 9)])
    back = decode(encode(msg))
    assert isinstance(back, DispatchMsg)
    assert back == msg
    assert back.desc.raw == RAW
    assert back.iterations == [(1, 3), (5, 9)]
    assert back.iter_total == 8


def test_dispatch_without_iterations_round_trip() -> None:
    msg = DispatchMsg(JobDescription.from_dict({"name": "x", "execution": {"script": "echo"}}), 1, None)
    back = decode(encode(msg))
    assert back == msg
    assert isinstance(back, DispatchMsg) and back.iterations is None


def test_task_events_round_trip() -> None:
    msg = TaskEventsMsg([
        TaskEvent("a", None, 3, 1.5, {"allocation": "n0[0]", "wd": "/w", "pid": 42}),
        TaskEvent("b", 7, 4, 2.25, {"exit_code": 0, "rtime": 0.5}),
        TaskEvent("c", 0, 5, 3.0, None),
    ], used_cores=3)
    back = decode(encode(msg))
    assert back == msg
    assert isinstance(back, TaskEventsMsg) and back.events[0].data == {"allocation": "n0[0]", "wd": "/w", "pid": 42}


def test_empty_task_events_round_trip() -> None:
    assert decode(encode(TaskEventsMsg([], 0))) == TaskEventsMsg([], 0)


@pytest.mark.parametrize("msg", [
    CancelMsg("a", None),
    CancelMsg("a", [1, None, 3]),
    ForgetMsg(["a", "b"]),
    ForgetMsg([]),
    ShutdownMsg("finish"),
    ShutdownMsg("signal"),
    StoppedMsg(),
])
def test_simple_round_trips(msg: Message) -> None:
    back = decode(encode(msg))
    assert type(back) is type(msg)
    assert back == msg


def test_envelope_holds_version_and_type() -> None:
    obj = msgpack.unpackb(encode(CancelMsg("a", None)), raw=False)
    assert obj[:2] == [PROTOCOL_VERSION, CancelMsg.TYPE]


def test_encode_rejects_non_message() -> None:
    with pytest.raises(TypeError):
        encode(Message())


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x93\x01", b"garbage bytes \xff\xfe"])
def test_garbage_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@pytest.mark.parametrize("obj", [5, "text", {"v": 1}, [], [PROTOCOL_VERSION]])
def test_not_an_envelope(obj: object) -> None:
    with pytest.raises(DecodeError, match=r"a message is a list \[version, type, \.\.\.\]"):
        decode(msgpack.packb(obj))


def test_wrong_version() -> None:
    data = msgpack.packb([PROTOCOL_VERSION + 1, CancelMsg.TYPE, "a", None])
    with pytest.raises(DecodeError, match=f"protocol version {PROTOCOL_VERSION + 1}"):
        decode(data)


def test_unknown_type() -> None:
    with pytest.raises(DecodeError, match="unknown message type 99"):
        decode(msgpack.packb([PROTOCOL_VERSION, 99]))


@pytest.mark.parametrize("mtype", [99, -1, "1", True, None, 1.0, [1]])
def test_unknown_type_in_a_batch(mtype: Any) -> None:
    with pytest.raises(DecodeError, match=r"^unknown message type"):
        decode_batch(msgpack.packb([PROTOCOL_VERSION, [[mtype]]]))


@pytest.mark.parametrize(("fields", "error"), [
    ([DispatchMsg.TYPE, RAW], r"DispatchMsg: 1 fields, expected 3 \(desc, iter_total, iterations\)"),
    ([DispatchMsg.TYPE, RAW, "many", None], r"DispatchMsg\.iter_total: 'many' is not an integer"),
    ([DispatchMsg.TYPE, RAW, 8, [[1]]], r"DispatchMsg\.iterations\[0\]: \[1\] is not a pair of integers"),
    ([TaskEventsMsg.TYPE, [["a"]], 0], r"TaskEventsMsg\.events\[0\]: 1 fields, expected 5"),
    ([TaskEventsMsg.TYPE, 5, 0], r"TaskEventsMsg\.events: 5 is not a list"),
    ([CancelMsg.TYPE, "a", None, "extra", "more"], r"CancelMsg: 4 fields, expected 2 \(job, iterations\)"),
])
def test_malformed_messages(fields: list, error: str) -> None:
    data = msgpack.packb([PROTOCOL_VERSION, *fields])
    with pytest.raises(DecodeError, match=error):
        decode(data)


@pytest.mark.parametrize("raw", [{"name": "x"}, ["not", "a", "dict"], {"name": "x", "execution": {}}])
def test_regression_dispatch_invalid_job_raises_decode_error(raw: object) -> None:
    # an invalid job description inside a DispatchMsg escaped as JobDescriptionError
    data = msgpack.packb([PROTOCOL_VERSION, DispatchMsg.TYPE, raw, 1, None])
    with pytest.raises(DecodeError, match=r"DispatchMsg\.desc: invalid job description"):
        decode(data)


def test_stopped_with_extra_fields_is_malformed() -> None:
    with pytest.raises(DecodeError):
        decode(msgpack.packb([PROTOCOL_VERSION, StoppedMsg.TYPE, 1, 2]))
