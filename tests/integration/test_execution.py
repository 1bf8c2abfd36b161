"""What a task gets when the real service starts it: environment, files, resources,
and the failures a user can cause."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import FINISH, submit

# every test twice: exits seen through a pidfd and through SIGCHLD (the SIGCHLD path once
# reported a task that exited at once before its start and stalled the run: bug of 2026-12-02)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("exit_watch")]


def _read(path) -> str:
    with open(path) as fh:
        return fh.read()


def _env_file(path) -> dict:
    out = {}
    for line in _read(path).splitlines():
        key, sep, val = line.partition("=")
        if sep:
            out[key] = val
    return out


def _alloc_cores(alloc: str) -> int:
    """Cores in an allocation string such as ``n0[0:1],n1[0]``."""
    total = 0
    for part in alloc.split("],"):
        inner = part[part.index("[") + 1:].rstrip("]")
        total += len(inner.split(":"))
    return total


# ---- the execution environment ------------------------------------------------------------------
def test_qcg_environment(run_service, tmp_path):
    job = {"name": "env", "resources": {"numCores": {"exact": 2}},
           "execution": {"exec": "env", "stdout": "env.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "n1:4")
    assert res.rc == 0
    env = _env_file(tmp_path / "env.txt")
    assert env["QCG_PM_NNODES"] == "1"
    assert env["QCG_PM_NODELIST"] == "n1"
    assert env["QCG_PM_NPROCS"] == "2"
    assert env["QCG_PM_NTASKS"] == "2"
    assert env["QCG_PM_STEP_ID"].strip() != ""
    assert env["QCG_PM_TASKS_PER_NODE"] == "2"
    assert env["QCG_PM_CPU_SET"] == "0,1"
    assert not any(k.startswith("SLURM_") for k in env if k not in os.environ)
    assert res.report()["env"]["runtime"]["allocation"] == "n1[0:1]"


def test_step_ids_are_unique(run_service, tmp_path):
    job = {"name": "s", "iteration": {"stop": 4},
           "execution": {"script": "echo $QCG_PM_STEP_ID", "stdout": "step_${it}.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "2")
    assert res.rc == 0
    ids = [_read(tmp_path / f"step_{i}.txt").strip() for i in range(4)]
    assert all(ids) and len(set(ids)) == 4


def test_slurm_environment_schema(run_service, tmp_path):
    job = {"name": "senv", "resources": {"numCores": {"exact": 3}},
           "execution": {"exec": "env", "stdout": "env.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "a:2,b:2", "--envschema", "slurm")
    assert res.rc == 0
    env = _env_file(tmp_path / "env.txt")
    expected = {
        "SLURM_NNODES": "2", "SLURM_NODELIST": "a,b", "SLURM_NPROCS": "3", "SLURM_NTASKS": "3",
        "SLURM_JOB_NODELIST": "a,b", "SLURM_JOB_NUM_NODES": "2", "SLURM_STEP_NODELIST": "a,b",
        "SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_NUM_TASKS": "3", "SLURM_NTASKS_PER_NODE": "2,1",
        "SLURM_STEP_TASKS_PER_NODE": "2,1", "SLURM_TASKS_PER_NODE": "2,1", "SLURM_JOB_CPUS_PER_NODE": "2,1",
        "SLURM_OVERLAP": "1",
    }
    for key, val in expected.items():
        assert env.get(key) == val, key
    assert env["QCG_PM_NODELIST"] == "a,b"


def test_no_slurm_variables_without_schema(run_service, tmp_path):
    job = {"name": "nenv", "execution": {"exec": "env", "stdout": "env.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "2")
    assert res.rc == 0
    env = _env_file(tmp_path / "env.txt")
    assert env.get("SLURM_NTASKS_PER_NODE") == os.environ.get("SLURM_NTASKS_PER_NODE")
    assert env.get("SLURM_NODELIST") == os.environ.get("SLURM_NODELIST")
    assert env["QCG_PM_NPROCS"] == "1"


def test_multicore_job_hostfile(run_service, tmp_path):
    job = {"name": "mc", "resources": {"numCores": {"exact": 3}},
           "execution": {"script": "echo $QCG_PM_HOSTFILE > hf.txt; cat $QCG_PM_HOSTFILE > hosts.txt; "
                                   "echo $QCG_PM_NODELIST $QCG_PM_TASKS_PER_NODE $QCG_PM_CPU_SET > set.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "a:2,b:2")
    assert res.rc == 0
    assert _read(tmp_path / "hosts.txt").split() == ["a", "a", "b"]
    assert _read(tmp_path / "hf.txt").strip().startswith("/")
    assert _read(tmp_path / "set.txt").split() == ["a,b", "2,1", "0,1,0"]
    assert res.report()["mc"]["runtime"]["allocation"] == "a[0:1],b[0]"


def test_threads_model_sets_omp_num_threads(run_service, tmp_path):
    jobs = [{"name": "omp", "resources": {"numCores": {"exact": 3}},
             "execution": {"model": "threads", "script": "echo $OMP_NUM_THREADS > omp.txt"}},
            {"name": "plain", "resources": {"numCores": {"exact": 2}},
             "execution": {"script": "echo \"[${OMP_NUM_THREADS:-unset}]\" > plain.txt"},
             "dependencies": {"after": ["omp"]}}]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    res = _run_with_env(run_service, env, [submit(*jobs), FINISH], "--nodes", "4")
    assert res.rc == 0
    assert _read(tmp_path / "omp.txt").strip() == "3"
    assert _read(tmp_path / "plain.txt").strip() == "[unset]"


def _run_with_env(run_service, env, requests, *args, **kw):
    """``run_service`` with the service started in environment ``env``."""
    old = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return run_service(requests, *args, **kw)
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_job_env_and_variables(run_service, tmp_path):
    job = {"name": "je", "iteration": {"stop": 2},
           "execution": {"script": "echo $MY_VAR $OTHER > env_${it}.txt",
                         "env": {"MY_VAR": "hello", "OTHER": "it-${it}"}}}
    res = run_service([submit(job), FINISH], "--nodes", "2")
    assert res.rc == 0
    assert _read(tmp_path / "env_0.txt") == "hello it-0\n"
    assert _read(tmp_path / "env_1.txt") == "hello it-1\n"


# ---- working directory and standard streams ------------------------------------------------------
def test_wd_and_streams_relative(run_service, tmp_path):
    (tmp_path / "work" / "sub").mkdir(parents=True)
    (tmp_path / "work" / "sub" / "in.txt").write_text("line one\nline two\n")
    jobs = [
        {"name": "io", "execution": {"exec": "/bin/sh", "args": ["-c", "pwd; cat; echo oops >&2; exit 0"],
                                     "wd": "work/sub", "stdin": "in.txt", "stdout": "out.txt",
                                     "stderr": "err.txt"}},
        {"name": "newdir", "execution": {"script": "pwd", "wd": "brand/new/dir", "stdout": "o.txt"}},
        {"name": "absout", "execution": {"script": "echo abs", "wd": "w3",
                                         "stdout": str(tmp_path / "abs.txt")}},
    ]
    res = run_service([submit(*jobs), FINISH], "--nodes", "3")
    assert res.rc == 0
    sub = tmp_path / "work" / "sub"
    assert _read(sub / "out.txt") == f"{sub}\nline one\nline two\n"
    assert _read(sub / "err.txt") == "oops\n"
    assert _read(tmp_path / "brand" / "new" / "dir" / "o.txt") == f"{tmp_path / 'brand/new/dir'}\n"
    assert _read(tmp_path / "abs.txt") == "abs\n"
    assert (tmp_path / "w3").is_dir()
    report = res.report()
    assert report["io"]["runtime"]["wd"] == str(sub)
    assert all(report[n]["state"] == "SUCCEED" for n in ("io", "newdir", "absout"))


def test_missing_stdin_fails_clearly(run_service, tmp_path):
    job = {"name": "nostdin", "execution": {"exec": "cat", "stdin": "absent.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "1")
    assert res.rc == 0
    entry = res.report()["nostdin"]
    assert entry["state"] == "FAILED"
    assert "absent.txt" in entry["messages"]


# ---- failures ---------------------------------------------------------------------------------------
def test_nonzero_exit_code_fails(run_service):
    jobs = [{"name": "ec", "execution": {"exec": "/bin/sh", "args": ["-c", "exit 7"]}},
            {"name": "ok", "execution": {"exec": "true"}}]
    res = run_service([submit(*jobs), FINISH], "--nodes", "2")
    assert res.rc == 0
    report = res.report()
    assert report["ec"]["state"] == "FAILED"
    assert "exit code 7" in report["ec"]["messages"]
    assert report["ec"]["runtime"]["exit_code"] == "7"
    assert report["ok"]["state"] == "SUCCEED"
    assert res.final_status["JobStats"]["FailedJobs"] == 1


def test_iteration_failures_fail_the_job(run_service):
    job = {"name": "half", "iteration": {"stop": 4}, "execution": {"script": "exit $(( ${it} % 2 ))"}}
    res = run_service([submit(job), FINISH], "--nodes", "4")
    assert res.rc == 0
    report = res.report()
    assert [report[f"half:{i}"]["state"] for i in range(4)] == ["SUCCEED", "FAILED", "SUCCEED", "FAILED"]
    assert report["half"]["state"] == "FAILED"
    assert report["half"]["iterations"]["failed"] == 2


def test_missing_executable_fails_clearly(run_service):
    jobs = [{"name": "ghost", "execution": {"exec": "/no/such/program-xyz"}},
            {"name": "ghost2", "execution": {"exec": "no-such-program-xyz"}},
            {"name": "after", "execution": {"exec": "true"}}]
    res = run_service([submit(*jobs), FINISH], "--nodes", "1")
    assert res.rc == 0
    report = res.report()
    for name, prog in (("ghost", "/no/such/program-xyz"), ("ghost2", "no-such-program-xyz")):
        assert report[name]["state"] == "FAILED"
        assert prog in report[name]["messages"]
        assert "No such file" in report[name]["messages"]
    assert report["after"]["state"] == "SUCCEED"


def _module_available() -> bool:
    proc = subprocess.run(["bash", "-l", "-c", "type module"], capture_output=True, timeout=30, check=False)
    return proc.returncode == 0


@pytest.mark.skipif(_module_available(), reason="this host has a module command")
def test_modules_without_module_command(run_service, tmp_path):
    jobs = [{"name": "mod", "execution": {"script": "touch ran.txt", "modules": ["gcc/12"]}},
            {"name": "next", "execution": {"script": "touch next.txt"}}]
    res = run_service([submit(*jobs), FINISH], "--nodes", "1")
    assert res.rc == 0
    report = res.report()
    assert report["mod"]["state"] == "FAILED"
    assert "module" in report["mod"]["messages"]
    assert not (tmp_path / "ran.txt").exists()
    assert report["next"]["state"] == "SUCCEED"


def test_venv_is_activated(run_service, tmp_path):
    venv = tmp_path / "myvenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    jobs = [{"name": "v", "execution": {"script": "echo $VIRTUAL_ENV; command -v python", "venv": str(venv),
                                        "stdout": "v.txt"}},
            {"name": "vexec", "execution": {"exec": "python", "args": ["-c", "import sys; print(sys.prefix)"],
                                            "venv": "myvenv", "stdout": "vexec.txt"}}]
    res = run_service([submit(*jobs), FINISH], "--nodes", "2")
    assert res.rc == 0, res.stderr
    report = res.report()
    assert report["v"]["state"] == "SUCCEED", report["v"]
    lines = _read(tmp_path / "v.txt").split()
    assert lines[0] == str(venv)
    assert lines[1] == str(venv / "bin" / "python")
    assert report["vexec"]["state"] == "SUCCEED", report["vexec"]
    assert _read(tmp_path / "vexec.txt").strip() == str(venv)


def test_fake_venv_activate_is_sourced(run_service, tmp_path):
    fake = tmp_path / "fake" / "bin"
    fake.mkdir(parents=True)
    (fake / "activate").write_text("export FAKE_VENV_MARK=activated-ok\n")
    job = {"name": "fv", "execution": {"exec": "printenv", "args": ["FAKE_VENV_MARK"], "venv": "fake",
                                       "stdout": "fv.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "1")
    assert res.rc == 0
    assert _read(tmp_path / "fv.txt") == "activated-ok\n"


def test_missing_venv_fails_clearly(run_service, tmp_path):
    jobs = [{"name": "nov", "execution": {"script": "touch ran.txt", "venv": str(tmp_path / "nope")}},
            {"name": "next", "execution": {"exec": "true"}}]
    res = run_service([submit(*jobs), FINISH], "--nodes", "1")
    assert res.rc == 0
    report = res.report()
    assert report["nov"]["state"] == "FAILED"
    assert "nope" in report["nov"]["messages"] and "virtual environment" in report["nov"]["messages"]
    assert not (tmp_path / "ran.txt").exists()
    assert report["next"]["state"] == "SUCCEED"


def test_regression_unstartable_task_no_stall(run_service, tmp_path):
    """A task whose start raised anything but OSError (here: a NUL byte in an argument)
    killed the scheduling callback: it and every later job stayed QUEUED forever. A NUL is
    now refused at submit (the executor still fails such a task with a message)."""
    jobs = [{"name": "nul", "execution": {"exec": "echo", "args": ["a\u0000b"]}}]
    res = run_service([submit(*jobs), submit({"name": "after", "execution": {"script": "touch after.txt"}}),
                       FINISH], "--nodes", "1", timeout=30)
    assert res.rc == 0
    report = res.report()
    assert "nul" not in report
    assert "job 'nul': execution.args[0]: must not contain a NUL character" in res.log
    assert report["after"]["state"] == "SUCCEED"
    assert (tmp_path / "after.txt").exists()


def test_regression_hostfile_job_name_with_slash(run_service, tmp_path):
    """A multi-core job named 'a/b' had its hostfile in a directory that does not exist:
    the start raised, the scheduler stopped and the service never finished."""
    jobs = [{"name": "a/b", "resources": {"numCores": {"exact": 2}},
             "execution": {"script": "cat $QCG_PM_HOSTFILE > hosts.txt"}},
            {"name": "next", "execution": {"script": "touch next.txt"}}]
    started = time.monotonic()
    res = run_service([submit(*jobs), FINISH], "--nodes", "2", timeout=30)
    assert time.monotonic() - started < 10
    assert res.rc == 0
    report = res.report()
    assert report["a/b"]["state"] == "SUCCEED", report["a/b"]
    assert _read(tmp_path / "hosts.txt") == "n0\nn0\n"
    assert report["next"]["state"] == "SUCCEED"


# ---- resources ---------------------------------------------------------------------------------------
def test_core_range_takes_what_is_free(run_service, tmp_path):
    jobs = [{"name": "wide", "resources": {"numCores": {"min": 2, "max": 10}},
             "execution": {"script": "echo ${ncores} > wide.txt"}},
            {"name": "capped", "resources": {"numCores": {"min": 1, "max": 2}},
             "execution": {"script": "echo ${ncores} > capped.txt"}, "dependencies": {"after": ["wide"]}}]
    res = run_service([submit(*jobs), FINISH], "--nodes", "3,2")
    assert res.rc == 0
    assert _read(tmp_path / "wide.txt").strip() == "5"
    assert _read(tmp_path / "capped.txt").strip() == "2"
    report = res.report()
    assert report["wide"]["runtime"]["allocation"] == "n0[0:1:2],n1[0:1]"
    assert _alloc_cores(report["capped"]["runtime"]["allocation"]) == 2


def test_core_range_when_partly_busy(run_service, tmp_path):
    # 'hold' keeps 3 of the 4 cores until 'wide' has started: wide gets the one core left
    jobs = [{"name": "hold", "resources": {"numCores": {"exact": 3}},
             "execution": {"script": "while [ ! -e wide.started ]; do sleep 0.01; done"}},
            {"name": "wide", "resources": {"numCores": {"min": 1, "max": 4}},
             "execution": {"script": "echo ${ncores} > wide.txt; touch wide.started"}}]
    res = run_service([submit(*jobs), FINISH], "--nodes", "4", timeout=30)
    assert res.rc == 0
    assert _read(tmp_path / "wide.txt").strip() == "1"
    assert res.report()["wide"]["runtime"]["allocation"] == "n0[3]"


def test_maximum_iters_allocation(run_service):
    job = {"name": "mi", "iteration": {"stop": 3},
           "resources": {"numCores": {"min": 1, "scheduler": {"name": "maximum-iters"}}},
           "execution": {"exec": "true"}}
    res = run_service([submit(job), FINISH], "--nodes", "10")
    assert res.rc == 0
    report = res.report()
    sizes = [_alloc_cores(report[f"mi:{i}"]["runtime"]["allocation"]) for i in range(3)]
    assert sizes == [3, 3, 4]
    assert report["mi"]["state"] == "SUCCEED"


def test_split_into_allocation(run_service):
    job = {"name": "si", "iteration": {"stop": 4},
           "resources": {"numCores": {"min": 1, "scheduler": {"name": "split-into", "params": {"parts": 2}}}},
           "execution": {"exec": "true"}}
    res = run_service([submit(job), FINISH], "--nodes", "10")
    assert res.rc == 0
    report = res.report()
    assert [_alloc_cores(report[f"si:{i}"]["runtime"]["allocation"]) for i in range(4)] == [5, 5, 5, 5]


def test_gpu_request_without_gpus_does_not_stall(run_service, tmp_path):
    reqs = [
        submit({"name": "gpu", "resources": {"numNodes": {"exact": 1}, "nodeCrs": {"gpu": 1}},
                "execution": {"script": "touch gpu.txt"}},
               {"name": "later", "execution": {"script": "touch later.txt"}}),
        FINISH,
    ]
    started = time.monotonic()
    res = run_service(reqs, "--nodes", "2,2", timeout=30)
    assert time.monotonic() - started < 15
    assert res.rc == 0
    # the job is accepted and FAILED by the scheduler with the reason; its request-mate runs
    assert not (tmp_path / "gpu.txt").exists()
    report = res.report()
    assert report["gpu"]["state"] == "FAILED"
    assert "gpu" in report["gpu"]["messages"] and "Not enough resources" in report["gpu"]["messages"]
    assert report["later"]["state"] == "SUCCEED"
    assert (tmp_path / "later.txt").exists()


def test_concurrent_gpu_jobs_get_distinct_devices(run_service, tmp_path):
    # g1 waits until g2 has written its file: both hold one GPU of n1 at the same time
    jobs = [{"name": "g1", "resources": {"numNodes": {"exact": 1}, "numCores": {"exact": 1}, "nodeCrs": {"gpu": 1}},
             "execution": {"script": "echo $CUDA_VISIBLE_DEVICES > g1.txt; "
                                     "while [ ! -e g2.txt ]; do sleep 0.01; done"}},
            {"name": "g2", "resources": {"numNodes": {"exact": 1}, "numCores": {"exact": 1}, "nodeCrs": {"gpu": 1}},
             "execution": {"script": "echo $CUDA_VISIBLE_DEVICES > g2.txt"}},
            {"name": "cpu", "execution": {"script": "echo \"[${CUDA_VISIBLE_DEVICES:-none}]\" > cpu.txt"}}]
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    res = _run_with_env(run_service, env, [submit(*jobs), FINISH], "--nodes", "n1:4:2", timeout=30)
    assert res.rc == 0, res.log
    report = res.report()
    assert report["g1"]["state"] == report["g2"]["state"] == "SUCCEED", res.log
    assert sorted([_read(tmp_path / "g1.txt").strip(), _read(tmp_path / "g2.txt").strip()]) == ["0", "1"]
    assert _read(tmp_path / "cpu.txt").strip() == "[none]"


def test_gpu_job_single_node_cuda_visible_devices(run_service, tmp_path):
    job = {"name": "g", "resources": {"numNodes": {"exact": 1}, "nodeCrs": {"gpu": 1}},
           "execution": {"script": "echo $CUDA_VISIBLE_DEVICES > g.txt"}}
    res = run_service([submit(job), FINISH], "--nodes", "n1:2:2")
    assert res.rc == 0
    assert _read(tmp_path / "g.txt").strip() == "0"
    assert res.report()["g"]["state"] == "SUCCEED"
