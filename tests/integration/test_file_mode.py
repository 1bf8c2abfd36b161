"""File mode end to end: the spec's batch example, variables, dependencies, shutdown,
bad input and what the service writes in its auxiliary directory."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess

import pytest

from tests.conftest import FINISH, service_cmd, submit

pytestmark = pytest.mark.integration


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _date(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def _hist(entry: dict, state: str) -> datetime.datetime:
    dates = [_date(h["date"]) for h in entry["history"] if h["state"] == state]
    assert dates, f"{entry['name']} never was {state}: {entry['history']}"
    return dates[0]


# The batch example of the documentation ("Example batch usage"), verbatim.
SPEC_EXAMPLE = [
    {
        "request": "submit",
        "jobs": [
            {
                "name": "example",
                "iteration": {"stop": 4},
                "execution": {
                    "script": "echo \"job ${it} executed at `date` @ `hostname`\"",
                    "stdout": "job.out.${it}",
                },
            }
        ],
    },
    {"request": "control", "command": "finishAfterAllTasksDone"},
]


# ---- the spec's batch example ---------------------------------------------------------------
def test_spec_batch_example(run_service, tmp_path):
    res = run_service(SPEC_EXAMPLE, "--nodes", "4")
    assert res.rc == 0, res.stderr
    host = socket.gethostname()
    for it in range(4):
        text = _read(str(tmp_path / f"job.out.{it}"))
        assert re.fullmatch(rf"job {it} executed at .+ @ {re.escape(host)}\n", text), text
    assert not (tmp_path / "job.out.4").exists()
    report = res.report()
    assert sorted(report) == ["example", "example:0", "example:1", "example:2", "example:3"]
    assert all(e["state"] == "SUCCEED" for e in report.values())
    assert report["example"]["iterations"]["total"] == 4
    for it in range(4):
        assert report[f"example:{it}"]["runtime"]["exit_code"] == "0"
    assert res.final_status["JobStats"]["FinishedJobs"] == 1
    assert res.final_status["IterationStats"]["FinishedIterations"] == 4


def test_spec_batch_example_text_report_is_default(tmp_path):
    """Without --report-format the report is text, with 'name (STATE)' headers."""
    reqs = tmp_path / "jobs.json"
    reqs.write_text(json.dumps(SPEC_EXAMPLE))
    proc = subprocess.run(service_cmd("--file-path", str(reqs), "--nodes", "2", "--wd", str(tmp_path)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    aux = [d for d in os.listdir(tmp_path) if d.startswith(".qcgpjm-service-")]
    assert len(aux) == 1
    report = _read(str(tmp_path / aux[0] / "jobs.report"))
    assert "example (SUCCEED)" in report
    for it in range(4):
        assert f"example:{it} (SUCCEED)" in report
    assert "\texit_code: 0" in report
    with pytest.raises(ValueError):
        json.loads(report.splitlines()[0])


def test_text_report_format_explicit(run_service):
    res = run_service(SPEC_EXAMPLE, "--nodes", "4", report_format="text")
    assert res.rc == 0
    report = res.read("jobs.report")
    assert report.count("(SUCCEED)") == 5
    assert re.search(r"^example \(SUCCEED\)$", report, re.M)
    assert "iterations: 4 total, 4 finished, 0 failed" in report


# ---- variables --------------------------------------------------------------------------------
def test_iterations_write_one_file_each(run_service, tmp_path):
    job = {"name": "it", "iteration": {"start": 2, "stop": 7},
           "execution": {"exec": "/bin/sh", "args": ["-c", "echo value-${it} > file_${it}.txt"]}}
    res = run_service([submit(job), FINISH], "--nodes", "3")
    assert res.rc == 0
    files = sorted(f for f in os.listdir(tmp_path) if f.startswith("file_"))
    assert files == [f"file_{i}.txt" for i in range(2, 7)]
    for i in range(2, 7):
        assert _read(str(tmp_path / f"file_{i}.txt")) == f"value-{i}\n"
    assert sorted(res.report()) == ["it"] + [f"it:{i}" for i in range(2, 7)]


def test_iteration_values_itval(run_service, tmp_path):
    job = {"name": "vals", "iteration": {"values": ["alpha", "beta", "gamma"]},
           "execution": {"script": "echo ${it}=${itval}", "stdout": "out_${itval}.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "2")
    assert res.rc == 0
    assert _read(str(tmp_path / "out_alpha.txt")) == "0=alpha\n"
    assert _read(str(tmp_path / "out_beta.txt")) == "1=beta\n"
    assert _read(str(tmp_path / "out_gamma.txt")) == "2=gamma\n"
    report = res.report()
    assert report["vals"]["state"] == "SUCCEED"
    assert {f"vals:{i}" for i in range(3)} <= set(report)


def test_escaped_iteration_variable_in_wd(run_service, tmp_path):
    job = {"name": "esc", "iteration": {"stop": 3},
           "execution": {"script": "pwd > where.txt", "wd": "x_$${it}"}}
    res = run_service([submit(job), FINISH], "--nodes", "3")
    assert res.rc == 0
    for it in range(3):
        wd = tmp_path / f"x_{it}"
        assert _read(str(wd / "where.txt")).strip() == str(wd)
        assert res.report()[f"esc:{it}"]["runtime"]["wd"] == str(wd)
    assert not any("$" in name or "{" in name for name in os.listdir(tmp_path))


def test_resource_variables_in_args(run_service, tmp_path):
    job = {"name": "vars", "resources": {"numCores": {"exact": 3}},
           "execution": {"exec": "echo", "args": ["${ncores}", "${nnodes}", "${nlist}", "${root_wd}"],
                         "stdout": "vars.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "a:2,b:2")
    assert res.rc == 0
    assert _read(str(tmp_path / "vars.txt")) == f"3 2 a,b {tmp_path}\n"


def test_submit_time_variables_jname_rcnt(run_service, tmp_path):
    first = {"name": "j${rcnt}", "execution": {"exec": "echo", "args": ["${jname}", "${rcnt}"],
                                                 "stdout": "${jname}.txt"}}
    second = {"name": "k${rcnt}", "execution": {"exec": "echo", "args": ["${jname}"],
                                                  "stdout": "${jname}.txt"}}
    res = run_service([submit(first), submit(second), FINISH], "--nodes", "2")
    assert res.rc == 0
    report = res.report()
    names = sorted(report)
    assert len(names) == 2
    jname = next(n for n in names if n.startswith("j"))
    kname = next(n for n in names if n.startswith("k"))
    rcnt1, rcnt2 = int(jname[1:]), int(kname[1:])
    assert rcnt2 == rcnt1 + 1  # a request counter, one more per request
    assert _read(str(tmp_path / f"{jname}.txt")) == f"{jname} {rcnt1}\n"
    assert _read(str(tmp_path / f"{kname}.txt")) == f"{kname}\n"
    assert all(e["state"] == "SUCCEED" for e in report.values())


def test_submit_time_variables_uniq_sname_date(run_service, tmp_path):
    jobs = [{"name": f"u{i}", "execution": {"exec": "echo", "args": ["${uniq}", "${sname}", "${date}"],
                                            "stdout": f"u{i}.txt"}} for i in range(2)]
    before = datetime.date.today().isoformat()
    res = run_service([submit(*jobs), FINISH], "--nodes", "2")
    after = datetime.date.today().isoformat()
    assert res.rc == 0
    out = [_read(str(tmp_path / f"u{i}.txt")).split() for i in range(2)]
    uniq = [o[0] for o in out]
    assert uniq[0] != uniq[1]
    assert all(re.fullmatch(r"[0-9a-f]{8,}", u) for u in uniq)
    assert [o[1] for o in out] == ["local", "local"]
    assert all(o[2] in (before, after) for o in out)


# ---- dependencies ------------------------------------------------------------------------------
def _stamp_job(name, after=None):
    job = {"name": name,
           "execution": {"script": f"date +%s.%N > {name}.start; sleep 0.1; date +%s.%N > {name}.end"}}
    if after:
        job["dependencies"] = {"after": after}
    return job


def test_dag_chain_runs_in_order(run_service, tmp_path):
    # listed in reverse order in one request, with plenty of cores: only the dependencies order them
    res = run_service([submit(_stamp_job("c", ["b"]), _stamp_job("b", ["a"]), _stamp_job("a")), FINISH],
                      "--nodes", "4")
    assert res.rc == 0
    report = res.report()
    assert [report[n]["state"] for n in "abc"] == ["SUCCEED"] * 3
    stamps = {n: (float(_read(str(tmp_path / f"{n}.start"))), float(_read(str(tmp_path / f"{n}.end"))))
              for n in "abc"}
    assert stamps["b"][0] >= stamps["a"][1]
    assert stamps["c"][0] >= stamps["b"][1]
    assert _hist(report["b"], "EXECUTING") >= _hist(report["a"], "SUCCEED")
    assert _hist(report["c"], "EXECUTING") >= _hist(report["b"], "SUCCEED")


def test_dag_across_requests(run_service, tmp_path):
    res = run_service([submit(_stamp_job("a")), submit(_stamp_job("b", ["a"])), submit(_stamp_job("c", ["a", "b"])),
                       FINISH], "--nodes", "4")
    assert res.rc == 0
    report = res.report()
    assert [report[n]["state"] for n in "abc"] == ["SUCCEED"] * 3
    assert float(_read(str(tmp_path / "b.start"))) >= float(_read(str(tmp_path / "a.end")))
    assert float(_read(str(tmp_path / "c.start"))) >= float(_read(str(tmp_path / "b.end")))


def test_failed_dependency_omits_and_missing_dependency_omits(run_service, tmp_path):
    jobs = [
        {"name": "bad", "execution": {"exec": "/bin/false"}},
        {"name": "after_bad", "execution": {"script": "touch after_bad.txt"}, "dependencies": {"after": ["bad"]}},
        {"name": "after_after", "execution": {"script": "touch after_after.txt"},
         "dependencies": {"after": ["after_bad"]}},
        {"name": "after_ghost", "execution": {"script": "touch after_ghost.txt"},
         "dependencies": {"after": ["ghost"]}},
        {"name": "ok", "execution": {"script": "touch ok.txt"}},
    ]
    res = run_service([submit(*jobs), FINISH], "--nodes", "2")
    assert res.rc == 0
    report = res.report()
    assert report["bad"]["state"] == "FAILED"
    assert report["after_bad"]["state"] == "OMITTED"
    assert report["after_after"]["state"] == "OMITTED"
    assert report["after_ghost"]["state"] == "OMITTED"
    assert "ghost" in report["after_ghost"]["messages"]
    assert "bad" in report["after_bad"]["messages"]
    assert report["ok"]["state"] == "SUCCEED"
    assert (tmp_path / "ok.txt").exists()
    for name in ("after_bad", "after_after", "after_ghost"):
        assert not (tmp_path / f"{name}.txt").exists()
        assert "EXECUTING" not in [h["state"] for h in report[name]["history"]]
    assert res.final_status["JobStats"]["OmittedJobs"] == 3


def test_dependency_on_single_iteration(run_service, tmp_path):
    jobs = [
        {"name": "a", "iteration": {"stop": 3}, "execution": {"script": "date +%s.%N > a_${it}.end"}},
        {"name": "b", "execution": {"script": "date +%s.%N > b.start"}, "dependencies": {"after": ["a:2"]}},
    ]
    res = run_service([submit(*jobs), FINISH], "--nodes", "4")
    assert res.rc == 0
    report = res.report()
    assert report["b"]["state"] == "SUCCEED"
    assert _hist(report["b"], "EXECUTING") >= _hist(report["a:2"], "SUCCEED")
    assert float(_read(str(tmp_path / "b.start"))) >= float(_read(str(tmp_path / "a_2.end")))


# ---- shutdown ----------------------------------------------------------------------------------
def test_regression_file_without_finish_runs_its_jobs_to_the_end(run_service, tmp_path):
    """A request file without finishAfterAllTasksDone stopped its unfinished jobs when it
    ended; QCG-PilotJob 0.14 runs them all, and users' files rely on it."""
    jobs = [{"name": "first", "execution": {"script": "sleep 0.5; touch first.txt"}},
            {"name": "dep", "execution": {"script": "touch dep.txt"}, "dependencies": {"after": ["first"]}},
            {"name": "many", "iteration": {"stop": 6}, "execution": {"script": "touch many.${it}"}}]
    res = run_service([submit(*jobs)], "--nodes", "2", timeout=60)
    assert res.rc == 0, res.stderr
    assert res.stderr == ""
    report = res.report()
    assert {name: report[name]["state"] for name in ("first", "dep", "many")} == \
        {"first": "SUCCEED", "dep": "SUCCEED", "many": "SUCCEED"}
    assert (tmp_path / "dep.txt").exists() and len(list(tmp_path.glob("many.*"))) == 6
    assert "run to the end" in res.log


def test_regression_all_iterations_canceled_job_canceled(run_service):
    """An iterative job whose iterations were all stopped by the end of the service ended
    FAILED ("5 of 5 iterations did not succeed") while a plain job ended CANCELED."""
    jobs = [{"name": "many", "iteration": {"stop": 5}, "execution": {"exec": "sleep", "args": ["30"]}},
            {"name": "plain", "execution": {"exec": "sleep", "args": ["30"]}}]
    res = run_service([submit(*jobs), {"request": "finish"}], "--nodes", "2", timeout=25)
    assert res.rc == 0
    report = res.report()
    assert all(report[f"many:{i}"]["state"] == "CANCELED" for i in range(5))
    assert report["many"]["state"] == "CANCELED"
    assert report["plain"]["state"] == "CANCELED"
    assert res.final_status["JobStats"]["CanceledJobs"] == 2
    assert res.final_status["JobStats"]["FailedJobs"] == 0


# ---- bad input ---------------------------------------------------------------------------------
def test_invalid_json_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"request": "submit", "jobs": [}')
    proc = subprocess.run(service_cmd("--file-path", str(path), "--nodes", "2", "--wd", str(tmp_path)),
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "broken.json" in lines[0] and "JSON" in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_request_file(tmp_path):
    path = tmp_path / "nope.json"
    proc = subprocess.run(service_cmd("--file-path", str(path), "--nodes", "2", "--wd", str(tmp_path)),
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0
    assert "nope.json" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_requests_are_logged_and_others_run(run_service, tmp_path):
    reqs = [
        {"request": "noSuchRequest"},
        submit({"name": "nox"}),  # no execution
        submit({"name": "good1", "execution": {"script": "touch good1.txt"}}),
        submit({"name": "good1", "execution": {"script": "touch dup.txt"}}),  # duplicate name
        {"jobs": []},  # no request key
        submit({"name": "good2", "execution": {"script": "touch good2.txt"}}),
        FINISH,
    ]
    res = run_service(reqs, "--nodes", "2")
    assert res.rc == 0
    log = res.log
    assert "Unknown request name: noSuchRequest" in log
    assert "Job good1 already exist" in log
    assert "nox" in log and "execution" in log
    assert "Invalid request" in log
    assert (tmp_path / "good1.txt").exists() and (tmp_path / "good2.txt").exists()
    assert not (tmp_path / "dup.txt").exists()
    report = res.report()
    assert sorted(report) == ["good1", "good2"]
    assert report["good1"]["state"] == report["good2"]["state"] == "SUCCEED"


def test_system_core_reserves_one_core(run_service, tmp_path):
    res = run_service([submit({"name": "wide", "resources": {"numCores": {"min": 1, "max": 10}},
                               "execution": {"exec": "true"}}), FINISH], "--nodes", "4", "--system-core")
    assert res.rc == 0
    assert res.final_status["Resources"]["TotalCores"] == 3
    alloc = res.report()["wide"]["runtime"]["allocation"]
    assert alloc == "n0[1:2:3]"  # core 0 of the first node is kept for the service

    (tmp_path / "plain").mkdir()
    res = run_service([FINISH], "--nodes", "4", wd=str(tmp_path / "plain"))
    assert res.final_status["Resources"]["TotalCores"] == 4


# ---- the aux dir --------------------------------------------------------------------------------
def test_no_environment_written_to_aux_dir(tmp_path):
    reqs = tmp_path / "reqs.json"
    reqs.write_text(json.dumps([
        submit({"name": "env", "resources": {"numCores": {"exact": 2}},
                "execution": {"script": "env > env.txt; cat $QCG_PM_HOSTFILE > hosts.txt"}},
               {"name": "fail", "execution": {"exec": "/bin/false"}}),
        FINISH,
    ]))
    env = dict(os.environ, QCG_TEST_SECRET="xyz123")
    proc = subprocess.run(service_cmd("--file-path", str(reqs), "--nodes", "2,2", "--wd", str(tmp_path),
                                      "--report-format", "json", "--log", "debug"),
                          capture_output=True, text=True, timeout=60, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    # the job does get the service's environment
    assert "QCG_TEST_SECRET=xyz123" in _read(str(tmp_path / "env.txt"))
    assert _read(str(tmp_path / "hosts.txt")) == "n0\nn0\n"
    aux = [d for d in os.listdir(tmp_path) if d.startswith(".qcgpjm-service-")]
    assert len(aux) == 1
    seen = 0
    for root, _dirs, files in os.walk(tmp_path / aux[0]):
        for name in files:
            assert name != "env.log"
            with open(os.path.join(root, name), "rb") as fh:
                assert b"xyz123" not in fh.read(), f"secret leaked into {name}"
            seen += 1
    assert seen >= 3  # service.log, jobs.report, final_status at least
    assert b"xyz123" not in proc.stdout.encode() + proc.stderr.encode()


_FIRST_LINE = re.compile(r"^service (\S+) version (\S+) started (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S*) @ (\S+)(.*)$")


def test_service_log_first_line(run_service):
    res = run_service([FINISH], "--nodes", "1")
    assert res.rc == 0
    first = res.log.splitlines()[0]
    m = _FIRST_LINE.match(first)
    assert m, first
    assert m.group(1) == os.path.basename(res.aux)[len(".qcgpjm-service-"):]
    assert m.group(4) == socket.gethostname()
    assert m.group(5) == ""
    import qcg_pilotjob
    assert m.group(2) == qcg_pilotjob.__version__


def test_service_log_tags_and_id(run_service, tmp_path):
    res = run_service([FINISH], "--nodes", "1", "--id", "my-run.7", "--tags", "a,b")
    assert res.rc == 0
    assert os.path.basename(res.aux) == ".qcgpjm-service-my-run.7"
    assert [d for d in os.listdir(tmp_path) if d.startswith(".qcgpjm")] == [".qcgpjm-service-my-run.7"]
    first = res.log.splitlines()[0]
    m = _FIRST_LINE.match(first)
    assert m, first
    assert m.group(1) == "my-run.7"
    assert "with tags a,b" in m.group(5)
    assert res.final_status["System"]["InstanceId"] == "my-run.7"
