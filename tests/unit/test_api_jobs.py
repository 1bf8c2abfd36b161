"""The client API without a service: ``Jobs``, ``JobInfo``, the wire encoding and addresses."""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta

import msgpack
import pytest

from qcg_pilotjob.api.errors import (
    FileError,
    InternalError,
    InvalidJobDescriptionError,
    JobNotDefinedError,
    QCGPJMAError,
    TimeoutElapsed,
)
from qcg_pilotjob.api.job import MAX_ITERATIONS, Jobs
from qcg_pilotjob.api.jobinfo import JobInfo
from qcg_pilotjob.protocol.transport import DEFAULT_PORT, parse_address
from qcg_pilotjob.protocol.wire import WireError, decode_reply, decode_request, encode_reply, encode_request


def one(jobs: Jobs) -> dict:
    (job,) = jobs.ordered_jobs()
    return job


# ---- Jobs.add: simple format -------------------------------------------------------------------
def test_add_exec_with_args_string_becomes_list():
    job = one(Jobs().add(name="a", exec="/bin/echo", args="hello"))
    assert job == {"name": "a", "execution": {"exec": "/bin/echo", "args": ["hello"]}}


def test_add_exec_with_args_list_kept():
    job = one(Jobs().add(name="a", exec="/bin/echo", args=["x", "y z"]))
    assert job["execution"] == {"exec": "/bin/echo", "args": ["x", "y z"]}
    assert "resources" not in job and "iteration" not in job and "dependencies" not in job


def test_add_script_and_execution_attributes():
    job = one(Jobs().add(name="s", script="echo hi", stdin="in.txt", stdout="out.txt", stderr="err.txt",
                         wd="work", modules=["python/3", "gcc"], venv="/venv", model="threads"))
    assert job["execution"] == {"script": "echo hi", "stdin": "in.txt", "stdout": "out.txt", "stderr": "err.txt",
                                "wd": "work", "modules": ["python/3", "gcc"], "venv": "/venv", "model": "threads"}


def test_add_modules_as_string_passes_through():
    job = one(Jobs().add(name="m", exec="date", modules="python/3"))
    assert job["execution"]["modules"] == "python/3"


def test_add_num_cores_and_nodes_int_become_exact():
    job = one(Jobs().add(name="r", exec="date", numCores=2, numNodes=1))
    assert job["resources"] == {"numCores": {"exact": 2}, "numNodes": {"exact": 1}}


def test_add_resource_dicts_pass_through_with_scheduler():
    cores = {"min": 1, "max": 4, "scheduler": "split-into"}
    nodes = {"exact": 2, "scheduler": {"name": "maximum-iters", "params": {}}}
    job = one(Jobs().add(name="r", exec="date", numCores=cores, numNodes=nodes, wt="10m"))
    assert job["resources"] == {"numCores": cores, "numNodes": nodes, "wt": "10m"}


def test_add_wall_time_int_accepted():
    assert one(Jobs().add(name="w", exec="date", wt=30))["resources"] == {"wt": 30}


def test_add_iteration_int_becomes_start_stop():
    assert one(Jobs().add(name="i", exec="date", iteration=4))["iteration"] == {"start": 0, "stop": 4}


def test_add_iteration_dict_pass_through():
    job = one(Jobs().add(name="i", exec="date", iteration={"start": 2, "stop": 5}))
    assert job["iteration"] == {"start": 2, "stop": 5}
    assert one(Jobs().add(name="j", exec="date", iteration={"stop": 3}))["iteration"] == {"stop": 3}


def test_add_iteration_list_becomes_values():
    job = one(Jobs().add(name="i", exec="date", iteration=["a", "b", "c"]))
    assert job["iteration"] == {"values": ["a", "b", "c"]}


def test_add_after_string_becomes_list():
    assert one(Jobs().add(name="d", exec="date", after="first"))["dependencies"] == {"after": ["first"]}
    job = one(Jobs().add(name="e", exec="date", after=["a", "b:1"]))
    assert job["dependencies"] == {"after": ["a", "b:1"]}


def test_add_dict_and_keywords_are_merged():
    job = one(Jobs().add({"name": "x", "exec": "date", "numCores": 1}, numCores=3, args="-u"))
    assert job == {"name": "x", "execution": {"exec": "date", "args": ["-u"]},
                   "resources": {"numCores": {"exact": 3}}}


def test_add_returns_self_for_chaining():
    jobs = Jobs()
    assert jobs.add(name="a", exec="date") is jobs
    chained = Jobs().add(name="a", exec="date").add(name="b", script="true").add_std(
        name="c", execution={"exec": "date"})
    assert chained.ordered_job_names() == ["a", "b", "c"]


def test_add_generates_unique_names_when_none_given():
    jobs = Jobs().add(exec="date").add(script="true")
    names = jobs.ordered_job_names()
    assert len(names) == 2 and names[0] != names[1]
    for name in names:
        assert str(uuid.UUID(name)) == name
    assert [j["name"] for j in jobs.ordered_jobs()] == names


def test_add_duplicate_name_rejected():
    jobs = Jobs().add(name="a", exec="date")
    with pytest.raises(InvalidJobDescriptionError, match="Job a already in list"):
        jobs.add(name="a", script="true")
    with pytest.raises(InvalidJobDescriptionError, match="already in list"):
        jobs.add_std(name="a", execution={"exec": "date"})
    assert jobs.job_names() == ["a"]


def test_add_unknown_attribute_rejected():
    with pytest.raises(InvalidJobDescriptionError, match="Unknown attribute foo"):
        Jobs().add(name="a", exec="date", foo=1)


def test_add_exec_and_script_exclusive():
    with pytest.raises(InvalidJobDescriptionError, match="Both 'exec' and 'script'"):
        Jobs().add(name="a", exec="date", script="true")


def test_add_needs_exec_or_script():
    jobs = Jobs()
    with pytest.raises(InvalidJobDescriptionError, match="No 'exec' nor 'script'"):
        jobs.add(name="a", args=["x"])
    assert jobs.job_names() == []


@pytest.mark.parametrize("attrs", [
    {"exec": 5},
    {"exec": "date", "args": 3},
    {"exec": "date", "stdout": ["x"]},
    {"exec": "date", "modules": {"m": 1}},
    {"exec": "date", "numCores": "2"},
    {"exec": "date", "numCores": True},
    {"exec": "date", "numNodes": 1.5},
    {"exec": "date", "wt": 1.5},
    {"exec": "date", "iteration": "3"},
    {"exec": "date", "after": 7},
    {"exec": "date", "name": 12},
])
def test_add_wrong_types_rejected(attrs):
    attrs.setdefault("name", "a")
    with pytest.raises(InvalidJobDescriptionError, match="Invalid attribute"):
        Jobs().add(**attrs)


@pytest.mark.parametrize("res, text", [
    ({"exact": "2"}, "Invalid numCores attribute exact"),
    ({"min": True}, "Invalid numCores attribute min"),
    ({"scheduler": 3}, "Invalid numCores attribute scheduler"),
    ({"most": 2}, "Unknown numCores attribute most"),
])
def test_add_wrong_resource_dict_rejected(res, text):
    with pytest.raises(InvalidJobDescriptionError, match=text):
        Jobs().add(name="a", exec="date", numCores=res)


def test_add_iteration_count_limits():
    assert one(Jobs().add(name="a", exec="date", iteration=MAX_ITERATIONS))["iteration"]["stop"] == 65536
    for bad in (0, -1, MAX_ITERATIONS + 1, {"start": 5, "stop": 5}, {"start": 5, "stop": 2}, [],
                {"start": 0, "stop": MAX_ITERATIONS + 1}, {"values": list(range(MAX_ITERATIONS + 1))}):
        with pytest.raises(InvalidJobDescriptionError, match="Wrong number of iterations"):
            Jobs().add(name="a", exec="date", iteration=bad)


def test_add_iteration_dict_errors():
    with pytest.raises(InvalidJobDescriptionError, match="Unknown iteration attribute step"):
        Jobs().add(name="a", exec="date", iteration={"stop": 3, "step": 1})
    with pytest.raises(InvalidJobDescriptionError, match="Required attribute stop"):
        Jobs().add(name="a", exec="date", iteration={"start": 3})


@pytest.mark.parametrize("it", [{"stop": "3"}, {"start": "a", "stop": 3}, {"values": 5}, {"stop": 2.5},
                                {"start": True, "stop": 3}])
def test_regression_iteration_dict_wrong_value_types(it):
    """A wrongly typed value inside an iteration dict used to escape as a bare TypeError."""
    jobs = Jobs()
    with pytest.raises(InvalidJobDescriptionError, match="iteration"):
        jobs.add(name="a", exec="date", iteration=it)
    assert jobs.job_names() == []


# ---- Jobs: standard format and group operations ---------------------------------------------------
def test_add_std_kept_as_given():
    desc = {"name": "std", "execution": {"exec": "date", "env": {"A": "1"}},
            "resources": {"numCores": {"exact": 1}, "nodeCrs": {"gpu": 1}}, "attributes": {"k": "v"}}
    jobs = Jobs().add_std(desc)
    assert jobs.ordered_jobs() == [desc]


def test_add_std_generates_name_and_checks_execution():
    jobs = Jobs().add_std(execution={"script": "true"})
    (name,) = jobs.job_names()
    assert jobs.ordered_jobs()[0] == {"name": name, "execution": {"script": "true"}}
    for bad in ({"name": "x"}, {"name": "x", "execution": "date"}, {"name": "x", "execution": {"args": []}}):
        with pytest.raises(InvalidJobDescriptionError, match="execution"):
            Jobs().add_std(bad)


def test_remove_and_job_not_defined():
    jobs = Jobs().add(name="a", exec="date").add(name="b", exec="date")
    jobs.remove("a")
    assert jobs.job_names() == ["b"]
    with pytest.raises(JobNotDefinedError):
        jobs.remove("a")
    assert issubclass(JobNotDefinedError, QCGPJMAError)


def test_clear_returns_count():
    jobs = Jobs().add(name="a", exec="date").add(name="b", exec="date").add(name="c", exec="date")
    assert jobs.clear() == 3
    assert jobs.job_names() == [] and jobs.jobs() == [] and jobs.ordered_jobs() == []
    assert jobs.clear() == 0
    jobs.add(name="a", exec="date")  # the name is free again
    assert jobs.job_names() == ["a"]


def test_order_of_names_and_jobs():
    jobs = Jobs()
    for name in ("z", "a", "m", "b"):
        jobs.add(name=name, exec="date")
    jobs.remove("m")
    jobs.add(name="m", script="true")
    assert jobs.ordered_job_names() == ["z", "a", "b", "m"]
    assert [j["name"] for j in jobs.ordered_jobs()] == ["z", "a", "b", "m"]
    assert sorted(jobs.job_names()) == ["a", "b", "m", "z"]
    assert sorted(j["name"] for j in jobs.jobs()) == ["a", "b", "m", "z"]
    assert jobs.ordered_jobs()[-1]["execution"] == {"script": "true"}


def test_save_and_load_round_trip(tmp_path):
    jobs = Jobs().add(name="a", exec="date", args="-u", numCores=2, iteration=3) \
        .add(name="b", script="echo ${it}", after="a", wt="1m") \
        .add_std(name="c", execution={"exec": "true", "env": {"X": "1"}})
    path = tmp_path / "jobs.json"
    jobs.save_to_file(str(path))
    assert json.loads(path.read_text()) == jobs.ordered_jobs()
    loaded = Jobs()
    loaded.load_from_file(str(path))
    assert loaded.ordered_job_names() == ["a", "b", "c"]
    assert loaded.ordered_jobs() == jobs.ordered_jobs()
    with pytest.raises(InvalidJobDescriptionError, match="already in list"):
        loaded.load_from_file(str(path))


def test_save_to_unwritable_path_is_file_error(tmp_path):
    with pytest.raises(FileError):
        Jobs().add(name="a", exec="date").save_to_file(str(tmp_path / "no" / "such" / "dir" / "j.json"))
    with pytest.raises(FileError):
        Jobs().save_to_file(str(tmp_path))  # a directory


def test_load_unreadable_or_bad_file(tmp_path):
    with pytest.raises(FileError):
        Jobs().load_from_file(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FileError):
        Jobs().load_from_file(str(bad))
    notlist = tmp_path / "obj.json"
    notlist.write_text('{"name": "a"}')
    with pytest.raises(InvalidJobDescriptionError):
        Jobs().load_from_file(str(notlist))
    noexec = tmp_path / "noexec.json"
    noexec.write_text('[{"name": "a"}]')
    with pytest.raises(InvalidJobDescriptionError):
        Jobs().load_from_file(str(noexec))
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.json"
        locked.write_text("[]")
        locked.chmod(0)
        with pytest.raises(FileError):
            Jobs().load_from_file(str(locked))


def test_error_hierarchy():
    for exc in (FileError, InternalError, InvalidJobDescriptionError, JobNotDefinedError, TimeoutElapsed):
        assert issubclass(exc, QCGPJMAError)


def test_compat_import_path_is_the_same_objects():
    from qcg.pilotjob.api import errors as compat_errors
    from qcg.pilotjob.api.job import Jobs as CompatJobs
    from qcg.pilotjob.api.jobinfo import JobInfo as CompatJobInfo

    assert CompatJobs is Jobs and CompatJobInfo is JobInfo
    assert compat_errors.TimeoutElapsed is TimeoutElapsed
    assert compat_errors.QCGPJMAError is QCGPJMAError


# ---- JobInfo ------------------------------------------------------------------------------------
JOB_DATA = {
    "jobName": "sweep",
    "status": "FAILED",
    "messages": "1 iteration failed",
    "iterations": {"start": 0, "stop": 2, "total": 2, "finished": 2, "failed": 1},
    "history": "\n2024-01-01 10:00:00.000001: QUEUED\n2024-01-01 10:00:00.5: EXECUTING\n"
               "2024-01-01 10:00:03.25: FAILED",
    "childs": [
        {"iteration": 0, "state": "SUCCEED",
         "runtime": {"allocation": "n1[0:1],n2[4]", "wd": "/w/0", "rtime": "0:00:02.5", "exit_code": "0"}},
        {"iteration": 1, "state": "FAILED", "messages": "exit code 3",
         "runtime": {"allocation": "n3[7]", "wd": "/w/1", "rtime": "1 day, 2:03:04.000250", "exit_code": 3}},
    ],
}


def test_jobinfo_from_job():
    info = JobInfo.from_job(JOB_DATA)
    assert info.name == "sweep"
    assert info.status == "FAILED"
    assert info.messages == "1 iteration failed"
    assert info.iterations == {"start": 0, "stop": 2, "total": 2, "finished": 2, "failed": 1}
    assert info.history == ["2024-01-01 10:00:00.000001: QUEUED", "2024-01-01 10:00:00.5: EXECUTING",
                            "2024-01-01 10:00:03.25: FAILED"]
    assert info.nodes == {} and info.total_cores == 0 and info.time is None  # (QCG-PilotJob 0.14's defaults)
    assert [c.name for c in info.childs] == ["sweep:0", "sweep:1"]
    first, second = info.childs
    assert first.iteration == 0 and first.status == "SUCCEED"
    assert first.nodes == {"n1": ["0", "1"], "n2": ["4"]}
    assert first.total_cores == 3
    assert first.time == timedelta(seconds=2.5)
    assert first.exit_code == 0
    assert first.wdir == "/w/0"
    assert first.messages is None
    assert second.status == "FAILED" and second.messages == "exit code 3"
    assert second.nodes == {"n3": ["7"]} and second.total_cores == 1
    assert second.time == timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=250)
    assert second.exit_code == 3
    assert "sweep" in repr(info) and "FAILED" in repr(info)


def test_jobinfo_from_job_with_runtime_and_no_childs():
    info = JobInfo.from_job({"jobName": "one", "status": "SUCCEED", "history": "",
                             "runtime": {"allocation": "vm[0:1:2:3]", "wd": "/tmp", "rtime": "0:01:00.000000",
                                         "exit_code": "", "pid": "123"}})
    assert info.nodes == {"vm": ["0", "1", "2", "3"]}
    assert info.total_cores == 4
    assert info.time == timedelta(minutes=1)
    assert info.exit_code is None
    assert info.childs is None and info.iterations == {} and info.iteration is None
    assert info.history == []


def test_jobinfo_from_child():
    child = JobInfo.from_child("job", {"iteration": 5, "state": "CANCELED", "messages": "canceled by user",
                                       "runtime": {"allocation": "a[1],b[2:3]", "rtime": "0:00:00.25"}})
    assert child.name == "job:5"
    assert child.iteration == 5
    assert child.status == "CANCELED"
    assert child.messages == "canceled by user"
    assert child.nodes == {"a": ["1"], "b": ["2", "3"]}
    assert child.total_cores == 3
    assert child.time == timedelta(seconds=0.25)
    assert child.wdir is None


def test_jobinfo_bad_input_is_internal_error():
    with pytest.raises(InternalError):
        JobInfo.from_job(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InternalError):
        JobInfo.from_job({"jobName": "x", "childs": [5]})


# ---- wire encoding ------------------------------------------------------------------------------
def test_wire_json_request_and_reply():
    req, enc = decode_request(b'  {"request": "jobStatus", "jobNames": ["a"]}')
    assert (req, enc) == ({"request": "jobStatus", "jobNames": ["a"]}, "json")
    raw = encode_reply({"code": 0, "data": {"x": [1, 2]}}, "json")
    assert json.loads(raw) == {"code": 0, "data": {"x": [1, 2]}}
    assert decode_reply(raw, "json") == {"code": 0, "data": {"x": [1, 2]}}
    assert decode_request(b"[1, 2]") == ([1, 2], "json")
    assert decode_request(encode_request({"request": "status"}, "json")) == ({"request": "status"}, "json")


def test_wire_msgpack_request_and_reply():
    packed = msgpack.packb({"request": "submit", "jobs": [{"name": "a"}]}, use_bin_type=True)
    assert decode_request(packed) == ({"request": "submit", "jobs": [{"name": "a"}]}, "msgpack")
    raw = encode_reply({"code": 1, "message": "bad"}, "msgpack")
    assert msgpack.unpackb(raw, raw=False) == {"code": 1, "message": "bad"}
    assert decode_reply(raw) == {"code": 1, "message": "bad"}
    assert decode_request(encode_request({"request": "status"})) == ({"request": "status"}, "msgpack")
    # values msgpack cannot carry are sent as text rather than failing the reply
    assert decode_reply(encode_reply({"when": timedelta(seconds=2)}, "msgpack")) == {"when": "0:00:02"}
    assert decode_reply(encode_reply({"when": timedelta(seconds=2)}, "json"), "json") == {"when": "0:00:02"}


@pytest.mark.parametrize("data, encoding", [
    (b"\xc1\xff\x00garbage", "json"),
    (b"", "json"),
    (b"{not json", "json"),
    (b"\xff\xfe{", "json"),
    (msgpack.packb({"request": "status"})[:-3], "msgpack"),
    (b"\xde\x00", "msgpack"),
])
def test_wire_garbage_is_wire_error(data, encoding):
    with pytest.raises(WireError) as info:
        decode_request(data)
    assert info.value.encoding == encoding
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"cannot decode {'JSON' if encoding == 'json' else 'msgpack'} request")


# ---- addresses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("given, expected", [
    ("host", f"tcp://host:{DEFAULT_PORT}"),
    ("127.0.0.1", "tcp://127.0.0.1:5555"),
    ("host:1234", "tcp://host:1234"),
    ("tcp://host", "tcp://host:5555"),
    ("tcp://10.0.0.1:7000", "tcp://10.0.0.1:7000"),
    ("ipc:///tmp/qcg.sock", "ipc:///tmp/qcg.sock"),
])
def test_parse_address(given, expected):
    assert parse_address(given) == expected


def test_regression_jobinfo_defaults_and_string_as_the_reference() -> None:
    """JobInfo of a job that never ran had None where QCG-PilotJob 0.14 has {}, 0, {}, []."""
    info = JobInfo.from_job({"jobName": "x", "status": "OMITTED"})
    assert (info.nodes, info.total_cores, info.iterations, info.history) == ({}, 0, {}, [])
    text = json.loads(str(info))
    assert text["name"] == "x" and text["nodes"] == "{}" and text["total_cores"] == "0"
    assert list(text) == sorted(text) and "childs" in text
