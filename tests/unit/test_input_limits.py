"""Limits on what a request may hold (issue 9): bounded decoding (``protocol.wire``), values a
job may hold (``jobdesc``), tasks per submit (``front.requests``), request files."""

from __future__ import annotations

import json
import math

import msgpack
import pytest

from qcg_pilotjob.errors import ConfigError, JobDescriptionError
from qcg_pilotjob.jobdesc import MAX_JOBS_PER_SUBMIT, MAX_TASKS_PER_SUBMIT, MAX_WALLTIME, JobDescription
from qcg_pilotjob.protocol import checks, wire
from qcg_pilotjob.protocol.wire import (
    MAX_DEPTH,
    MAX_INT,
    MAX_ITEMS,
    MAX_STRING,
    WireError,
    decode_request,
    encode_reply,
    value_problem,
)
from qcg_pilotjob.service.requestfile import load_requests
from tests.unit.front_harness import Harness, harness, job  # noqa: F401  (harness is the h fixture)


def _nested(depth: int, encoding: str) -> bytes:
    if encoding == "json":
        return b"[" * depth + b"]" * depth
    return b"\x91" * (depth - 1) + b"\x90"


# ---- decoding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_depth_limit(encoding):
    obj, enc = decode_request(_nested(MAX_DEPTH, encoding))
    assert enc == encoding and isinstance(obj, list)
    for depth in (MAX_DEPTH + 1, 100_000):
        with pytest.raises(WireError) as info:
            decode_request(_nested(depth, encoding))
        assert str(info.value) == f"request exceeds a limit: nested deeper than {MAX_DEPTH} levels"
        assert info.value.encoding == encoding


def test_regression_deep_json_frame():
    with pytest.raises(WireError, match="nested deeper than 64 levels"):
        decode_request(b"[" * 100_000)
    with pytest.raises(WireError, match="nested deeper than 64 levels"):  # a string does not count
        decode_request(b'["[[[", ' + b"[" * 1000 + b"]" * 1000 + b"]")
    assert decode_request(b'["' + b"[" * 1000 + b'"]')[0] == ["[" * 1000]


def test_limits_are_generous():
    assert (MAX_DEPTH, MAX_STRING, MAX_ITEMS, MAX_INT) == (64, 1 << 20, 1_000_000, 2 ** 53)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_string_and_size_limits(encoding, monkeypatch):
    monkeypatch.setattr(wire, "MAX_STRING", 100)  # (read at each call: small sizes keep the test fast)
    monkeypatch.setattr(wire, "MAX_ITEMS", 50)
    fine = {"request": "x", "s": "a" * 100, "l": [0] * 50, "m": {str(i): 0 for i in range(49)}}
    assert decode_request(encode_reply(fine, encoding))[0] == fine
    for bad, what in (({"s": "a" * 101}, "max_str_len" if encoding == "msgpack" else "string"),
                      ({"l": [0] * 51}, "max_array_len" if encoding == "msgpack" else "list"),
                      ({str(i): 0 for i in range(51)}, "max_map_len" if encoding == "msgpack" else "map"),
                      ({"l": [["a" * 101]]}, "max_str_len" if encoding == "msgpack" else "string")):
        with pytest.raises(WireError) as info:
            decode_request(encode_reply(bad, encoding))
        assert str(info.value).startswith("request exceeds a limit: ") and what in str(info.value)


def test_msgpack_binary_is_bounded(monkeypatch):
    monkeypatch.setattr(wire, "MAX_STRING", 100)
    with pytest.raises(WireError, match="max_bin_len"):
        decode_request(msgpack.packb({"b": b"x" * 101}, use_bin_type=True))


# ---- values --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, path, problem", [
    ({"a": ["x", "s\ud800"]}, "a[1]", "not valid UTF-8"),
    ({"a": {"k\ud800": 1}}, "a", "key 'k\\ud800' is not valid UTF-8"),
    ({"a": MAX_INT + 1}, "a", "out of range"),
    ({"a": -MAX_INT - 1}, "a", "out of range"),
    ({"a": 10 ** 5000}, "a", "an integer of 16610 bits is out of range"),
    ({"a": [math.nan]}, "a[0]", "not a finite number"),
    ({"a": {"b": math.inf}}, "a.b", "not a finite number"),
    ({"a": {1: 2}}, "a", "keys must be strings"),
    ({"a": b"x"}, "a", "type bytes"),
])
def test_value_problem(value, path, problem):
    found = value_problem(value)
    assert found is not None and found[0] == path and problem in found[1], found


def test_value_problem_accepts_good_values():
    assert value_problem({"a": ["\U0001f600", MAX_INT, -MAX_INT, 1e300, None, True, {"b": []}]}) is None


def _desc(**fields):
    return JobDescription.from_dict({"name": "j", "execution": {"exec": "x"}, **fields})


@pytest.mark.parametrize("fields, message", [
    ({"name": "s\ud800"}, "job 's\\ud800': name: 's\\ud800' is not valid UTF-8"),
    ({"execution": {"exec": "x", "args": ["\udc00"]}}, "job 'j': execution.args[0]: "),
    ({"execution": {"exec": "x", "env": {"A": "\ud800"}}}, "job 'j': execution.env.A: "),
    ({"execution": {"exec": "x", "stdout": "\ud800"}}, "job 'j': execution.stdout: "),
    ({"resources": {"numCores": 10 ** 30}}, "job 'j': resources.numCores: 10000"),
    ({"resources": {"numCores": 1e30}}, "job 'j': resources.numCores: must be an integer"),
    ({"resources": {"wt": 10 ** 400}}, "job 'j': resources.wt: an integer of"),
    ({"resources": {"wt": math.inf}}, "job 'j': resources.wt: inf is not a finite number"),
    ({"resources": {"wt": 1e300}}, f"job 'j': resources.wt: wall time 1e+300 is longer than {MAX_WALLTIME}"),
    ({"resources": {"wt": "9" * 5000 + "h"}}, "job 'j': resources.wt: invalid wall time"),
    ({"iteration": {"stop": 10 ** 30}}, "job 'j': iteration.stop: "),
    ({"attributes": {"x": math.nan}}, "job 'j': attributes.x: nan is not a finite number"),
])
def test_job_values_rejected_naming_job_and_field(fields, message):
    with pytest.raises(JobDescriptionError) as info:
        _desc(**fields)
    assert str(info.value).startswith(message), str(info.value)
    str(info.value).encode("utf-8")  # the message itself can be sent back


def test_governor_decode_shares_the_checks():
    with pytest.raises(checks.Invalid, match=r"execution\.args"):
        checks.job_description({"name": "j", "execution": {"exec": "x", "args": ["\ud800"]}})


# ---- submit --------------------------------------------------------------------------------------
def test_regression_lone_surrogate_submit_keeps_list_jobs_encodable(h):
    resp = h.submit(job("s\ud800"))
    assert resp["code"] == 1 and "name: 's\\ud800' is not valid UTF-8" in resp["message"]
    resp = h.submit(job("a", execution={"exec": "x", "args": ["\ud800"]}))
    assert resp["code"] == 1 and resp["message"].startswith("job 'a': execution.args[0]: ")
    json.dumps(h.req("listJobs"), ensure_ascii=False).encode("utf-8")
    assert h.front.jobs == {}


@pytest.mark.parametrize("execution,field", [
    ({"exec": "a\x00b"}, "execution.exec"),
    ({"exec": "x", "args": ["ok", "a\x00"]}, "execution.args[1]"),
    ({"script": "true\x00"}, "execution.script"),
    ({"exec": "x", "env": {"A": "1\x00"}}, "execution.env.A"),
    ({"exec": "x", "wd": "d\x00"}, "execution.wd"),
    ({"exec": "x", "stdout": "\x00"}, "execution.stdout"),
    ({"exec": "x", "modules": ["m\x00"]}, "execution.modules[0]"),
])
def test_regression_nul_in_a_job_string_is_rejected_at_submit(h, execution, field):
    """Found by the network-interface fuzz: a NUL passed the submit, and the partition's
    Popen raised 'embedded null byte' with a traceback when the task was to start."""
    resp = h.submit(job("z", execution=execution))
    assert resp == {"code": 1, "message": f"job 'z': {field}: must not contain a NUL character"}, resp
    assert h.front.jobs == {}
    with pytest.raises(checks.Invalid, match=field.replace(".", r"\.").replace("[", r"\[")):
        checks.job_description({"name": "z", "execution": execution})


def test_regression_nul_in_iteration_values_and_env_names(h):
    resp = h.submit(job("v", iteration={"values": ["a", "b\x00"]}))
    assert resp["code"] == 1 and "iteration.values[1]: must not contain a NUL character" in resp["message"]
    resp = h.submit(job("e", execution={"exec": "x", "env": {"A\x00B": "1"}}))
    assert resp["code"] == 1 and "execution.env: invalid variable name" in resp["message"]


def test_regression_wall_time_overflow_is_a_field_error(h):
    resp = h.submit(job("w", resources={"wt": 10 ** 400}))
    assert resp["code"] == 1 and resp["message"].startswith("job 'w': resources.wt: "), resp


def test_regression_tasks_per_submit(h, monkeypatch):
    resp = h.submit(job("many", iterations=6 * 10 ** 7), job("more", iterations=6 * 10 ** 7))
    assert resp == {"code": 1, "message": f"job 'more': iteration: one submit may hold at most "
                                          f"{MAX_TASKS_PER_SUBMIT} tasks (iterations of all its jobs); "
                                          f"with this job it holds {12 * 10 ** 7}"}
    assert MAX_TASKS_PER_SUBMIT == 100_000_000
    monkeypatch.setattr("qcg_pilotjob.front.requests.MAX_TASKS_PER_SUBMIT", 1000)
    half = 500
    resp = h.submit(job("a"), job("b", iterations=half), job("c", iterations=half))
    assert resp["code"] == 1 and resp["message"].startswith("job 'c': ")
    assert h.front.jobs == {} and h.dispatched() == []  # all or nothing
    assert h.submit(job("b", iterations=half), job("c", iterations=half))["code"] == 0
    assert h.front.task_counts[h.front.jobs["b"].state] == 2 * half
    monkeypatch.undo()
    assert h.submit(job("many", iterations=10 ** 8))["code"] == 0  # (a waiting job costs O(1))
    assert h.dispatched()[-1] == ("many", [(0, 10 ** 8)])


def test_regression_jobs_per_submit(h, monkeypatch):
    assert MAX_JOBS_PER_SUBMIT == 100_000
    resp = h.submit(*[job(f"j{i}") for i in range(MAX_JOBS_PER_SUBMIT + 1)])
    assert resp == {"code": 1, "message": f"Wrong submit request - one submit may hold at most "
                                          f"{MAX_JOBS_PER_SUBMIT} jobs, not {MAX_JOBS_PER_SUBMIT + 1}"}
    monkeypatch.setattr("qcg_pilotjob.front.requests.MAX_JOBS_PER_SUBMIT", 3)
    assert h.submit(job("a"), job("b"), job("c"), job("d"))["code"] == 1
    assert h.front.jobs == {}
    assert h.submit(job("a"), job("b"), job("c"))["code"] == 0


# ---- request files -------------------------------------------------------------------------------
@pytest.mark.parametrize("data, problem", [
    (bytes(range(256)), "is not UTF-8 text"),
    (b"[" * 100_000, "exceeds a limit: nested deeper than 64 levels"),
    (b'[{"request": "submit", "jobs": [{"name": "s\\ud800"}]}]', "lone surrogate \\ud800"),
    (b"42", "must hold a JSON list of requests, not int"),
    (b"[", "is not valid JSON"),
])
def test_regression_bad_request_file(tmp_path, data, problem):
    path = tmp_path / "reqs.json"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_requests(str(path))
    assert str(info.value).startswith(f"request file {path} ") and problem in str(info.value)


def test_request_file_good_pairs_and_object(tmp_path):
    path = tmp_path / "reqs.json"
    path.write_bytes(b'{"request": "status", "x": "\\ud83d\\ude00"}')
    assert load_requests(str(path)) == [{"request": "status", "x": "\U0001f600"}]


def test_regression_submit_failing_half_way_registers_nothing(h, monkeypatch):
    """8 huge submits used to leave 5 of their jobs registered after a MemoryError: every
    record is built before anything changes (and before the journal records the submit)."""
    from qcg_pilotjob.front import core

    built = []

    class Failing(core.JobRecord):
        __slots__ = ()

        def __init__(self, *args):
            if built:
                raise MemoryError
            built.append(1)
            super().__init__(*args)

    monkeypatch.setattr(core, "JobRecord", Failing)
    resp = h.submit(job("a"), job("b"))
    assert resp["code"] == 1 and "MemoryError" in resp["message"]
    assert h.front.jobs == {} and h.front.active_jobs == 0
