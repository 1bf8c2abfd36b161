"""Unit tests of qcg_pilotjob.protocol.codec: every message survives encode/decode."""

from __future__ import annotations

import msgpack
import pytest

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.protocol.codec import DecodeError, decode, encode
from qcg_pilotjob.protocol.messages import (
    PROTOCOL_VERSION,
    CancelMsg,
    DispatchMsg,
    ForgetMsg,
    Message,
    ShutdownMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
)

RAW = {
    "name": "job",
    "iteration": {"start": 1, "stop": 9},
    "execution": {"exec": "/bin/echo", "args": ["${it}", "x"], "env": {"A": "1"}},
    "resources": {"numCores": {"min": 1, "scheduler": "maximum-iters"}, "wt": "1m"},
    "dependencies": {"after": ["a", "b:${it}"]},
}


def test_message_types_are_distinct() -> None:
    types = [cls.TYPE for cls in (DispatchMsg, TaskEventsMsg, CancelMsg, ForgetMsg, ShutdownMsg, StoppedMsg)]
    assert len(set(types)) == 6
    assert 0 not in types


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


@pytest.mark.parametrize("fields", [
    [DispatchMsg.TYPE, RAW],                                 # missing fields
    [DispatchMsg.TYPE, RAW, "many", None],                   # iter_total not a number
    [DispatchMsg.TYPE, RAW, 8, [[1]]],                       # a range is a pair
    [TaskEventsMsg.TYPE, [["a"]], 0],                        # event too short
    [TaskEventsMsg.TYPE, 5, 0],                              # events not a list
    [CancelMsg.TYPE, "a", None, "extra", "more"],            # too many fields
])
def test_malformed_messages(fields: list) -> None:
    data = msgpack.packb([PROTOCOL_VERSION, *fields])
    with pytest.raises(DecodeError, match=f"malformed message of type {fields[0]}"):
        decode(data)


@pytest.mark.parametrize("raw", [{"name": "x"}, ["not", "a", "dict"], {"name": "x", "execution": {}}])
def test_regression_dispatch_invalid_job_raises_decode_error(raw: object) -> None:
    # an invalid job description inside a DispatchMsg escaped as JobDescriptionError
    data = msgpack.packb([PROTOCOL_VERSION, DispatchMsg.TYPE, raw, 1, None])
    with pytest.raises(DecodeError, match=f"malformed message of type {DispatchMsg.TYPE}"):
        decode(data)


def test_stopped_with_extra_fields_is_malformed() -> None:
    with pytest.raises(DecodeError):
        decode(msgpack.packb([PROTOCOL_VERSION, StoppedMsg.TYPE, 1, 2]))
