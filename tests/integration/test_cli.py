"""The service's command line: options, entry points, validation, progress, signals."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tty
from typing import Any, List

import pytest

from tests.conftest import FINISH, read_terminal, service_cmd, submit, wait_for

pytestmark = pytest.mark.integration

AUX_PREFIX = ".qcgpjm-service-"

SPEC_OPTIONS = [
    "--net", "--net-port", "--net-port-min", "--net-port-max", "--file", "--file-path", "--wd", "--envschema",
    "--resources", "--report-format", "--report-file", "--nodes", "--log", "--system-core", "--disable-nl",
    "--show-progress", "--governor", "--parent", "--id", "--tags", "--slurm-partition-nodes",
    "--slurm-limit-nodes-range-begin", "--slurm-limit-nodes-range-end", "--resume",
]

TOUCH_JOB = [submit({"name": "a", "execution": {"script": "echo ran > ran.a"}}), FINISH]


def _write(wd: str, requests: List[Any], name: str = "reqs.json") -> str:
    os.makedirs(wd, exist_ok=True)
    path = os.path.join(wd, name)
    with open(path, "w") as fh:
        json.dump(requests, fh)
    return path


def _run(cmd: List[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _aux_dirs(wd: str) -> List[str]:
    if not os.path.isdir(wd):
        return []
    return sorted(d for d in os.listdir(wd) if d.startswith(AUX_PREFIX))


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _read_line(path: str) -> str:
    """The first line of ``path`` once it is complete (ends with a newline), else ''."""
    try:
        with open(path) as fh:
            text = fh.read()
    except FileNotFoundError:
        return ""
    return text.split("\n", 1)[0] if "\n" in text else ""


# ---- --help ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_spec_option(flag: str) -> None:
    res = _run(service_cmd(flag))
    assert res.returncode == 0, res.stderr
    listed = set(re.findall(r"^\s+(--[a-z][a-z-]*)", res.stdout, flags=re.M))
    missing = [opt for opt in SPEC_OPTIONS if opt not in listed]
    assert not missing, f"options missing from --help: {missing}"
    assert res.stdout.lower().startswith("usage: qcg-pm-service")
    log_line = re.search(r"--log \[([a-z|]+)\]", res.stdout)
    assert log_line and log_line.group(1).split("|") == ["critical", "error", "warning", "info", "debug",
                                                         "notset"]


# ---- entry points -----------------------------------------------------------------------------
ENTRY_POINTS = {
    "console-script": None,
    "python-m-qcg_pilotjob.service": [sys.executable, "-m", "qcg_pilotjob.service"],
    "python-m-qcg.pilotjob.service": [sys.executable, "-m", "qcg.pilotjob.service"],
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_entry_points_run_a_file(tmp_path: Any, entry: str) -> None:
    prefix = ENTRY_POINTS[entry]
    if prefix is None:
        exe = shutil.which("qcg-pm-service")
        if exe is None:
            pytest.skip("qcg-pm-service console script is not on PATH")
        prefix = [exe]
    wd = str(tmp_path)
    path = _write(wd, TOUCH_JOB)
    res = _run([*prefix, "--file-path", path, "--wd", wd, "--nodes", "1", "--id", "ep",
                "--report-format", "json"])
    assert res.returncode == 0, res.stderr
    with open(os.path.join(wd, "ran.a")) as fh:
        assert fh.read() == "ran\n"
    aux = os.path.join(wd, AUX_PREFIX + "ep")
    with open(os.path.join(aux, "jobs.report")) as fh:
        entry_ = json.loads(fh.readline())
    assert (entry_["name"], entry_["state"]) == ("a", "SUCCEED")
    with open(os.path.join(aux, "final_status")) as fh:
        assert json.load(fh)["JobStats"]["FinishedJobs"] == 1


# ---- options that need a Slurm allocation --------------------------------------------------------
@pytest.mark.parametrize("args,named", [
    (["--resources", "slurm"], "--resources slurm"),
    (["--disable-nl"], "--disable-nl"),
    (["--slurm-limit-nodes-range-begin", "0", "--slurm-limit-nodes-range-end", "1"],
     "--slurm-limit-nodes-range-begin"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_slurm_only_options_refused_outside_slurm(tmp_path: Any, args: List[str], named: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
        monkeypatch.delenv(var, raising=False)
    wd = str(tmp_path / "wd")
    path = _write(str(tmp_path), TOUCH_JOB)
    res = _run(service_cmd("--file-path", path, "--wd", wd, *args))
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Slurm allocation" in lines[0]
    assert named in lines[0]
    assert res.stdout == ""
    assert not os.path.exists(os.path.join(tmp_path, "ran.a"))
    assert not os.path.exists(os.path.join(wd, "ran.a"))
    assert _aux_dirs(wd) == []


# ---- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args,option", [
    (["--nodes", "x"], "--nodes"),
    (["--nodes", "0"], "--nodes"),
    (["--nodes", "a:1,a:2"], "--nodes"),
    (["--nodes", "n1:4,,n2:4"], "--nodes"),
    (["--report-format", "xml"], "--report-format"),
    (["--envschema", "foo"], "--envschema"),
    (["--resources", "foo"], "--resources"),
    (["--slurm-limit-nodes-range-begin", "3", "--slurm-limit-nodes-range-end", "1", "--nodes", "2"],
     "--slurm-limit-nodes-range-begin"),
    (["--log", "loud"], "--log"),
    (["--net-port-min", "70000"], "--net-port-min"),
    (["--id", "a/b"], "--id"),
    (["--report-file", ""], "--report-file"),
    (["--nodes", "2", "--resources", "slurm"], "--nodes"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_validation_errors_name_the_option(tmp_path: Any, args: List[str], option: str) -> None:
    wd = str(tmp_path / "wd")
    path = _write(str(tmp_path), TOUCH_JOB)
    res = _run(service_cmd("--file-path", path, "--wd", wd, *args))
    assert res.returncode != 0
    assert option in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not os.path.exists(os.path.join(wd, "ran.a"))
    assert _aux_dirs(wd) == []


def test_version() -> None:
    import qcg_pilotjob

    res = _run(service_cmd("--version"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"qcg-pm-service, version {qcg_pilotjob.__version__}"


def test_file_flag_reads_the_default_request_file(tmp_path: Any) -> None:
    """``--file`` without ``--file-path`` reads qcg_pm_reqs.json (from the current directory)."""
    wd = str(tmp_path)
    _write(wd, TOUCH_JOB, name="qcg_pm_reqs.json")
    res = subprocess.run(service_cmd("--file", "--wd", wd, "--nodes", "1", "--id", "ff"), cwd=wd,
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr
    with open(os.path.join(wd, "ran.a")) as fh:
        assert fh.read() == "ran\n"
    assert _aux_dirs(wd) == [AUX_PREFIX + "ff"]


def test_id_and_tags(run_service: Any) -> None:
    run = run_service([submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH], "--nodes", "1",
                      "--id", "my-id", "--tags", "a, b")
    assert run.rc == 0, run.stderr
    assert os.path.basename(run.aux) == AUX_PREFIX + "my-id"
    first = run.log.splitlines()[0]
    assert first.startswith("service my-id version ")
    assert first.endswith(" (with tags a,b)")
    assert run.final_status["System"]["InstanceId"] == "my-id"


def test_no_interface_is_an_error(tmp_path: Any) -> None:
    wd = str(tmp_path)
    res = _run(service_cmd("--wd", wd, "--nodes", "2"))
    assert res.returncode != 0
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert "no interface" in msg and "--file-path" in msg and "--resume" in msg
    assert _aux_dirs(wd) == []


def test_missing_request_file_is_an_error(tmp_path: Any) -> None:
    wd = str(tmp_path)
    res = _run(service_cmd("--wd", wd, "--nodes", "2", "--file-path", str(tmp_path / "nope.json")))
    assert res.returncode != 0
    assert "nope.json" in res.stderr and "Traceback" not in res.stderr
    assert _aux_dirs(wd) == []


# ---- resources ----------------------------------------------------------------------------------
@pytest.mark.parametrize("nodes,extra,total_nodes,total_cores", [
    ("4", [], 1, 4),
    ("n1:2", [], 1, 2),
    ("4,2,2", [], 3, 8),
    ("n1:4, n2:4, n3:4", [], 3, 12),
    ("4,2,2", ["--system-core"], 3, 7),
    ("n1:4, n2:4, n3:4", ["--system-core"], 3, 11),
])
def test_nodes_forms(run_service: Any, nodes: str, extra: List[str], total_nodes: int, total_cores: int) -> None:
    run = run_service([submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH], "--nodes", nodes,
                      *extra)
    assert run.rc == 0, run.stderr
    res = run.final_status["Resources"]
    assert (res["TotalNodes"], res["TotalCores"]) == (total_nodes, total_cores)
    assert res["UsedCores"] == 0 and res["FreeCores"] == total_cores
    assert run.report()["a"]["state"] == "SUCCEED"


def test_nodes_spread_a_job_over_nodes(run_service: Any) -> None:
    """The three nodes of '4,2,2' are really there: an 8-core job fits and gets all of them."""
    run = run_service([submit({"name": "big", "resources": {"numCores": {"exact": 8}},
                               "execution": {"exec": "/bin/true"}}), FINISH], "--nodes", "4,2,2")
    assert run.rc == 0, run.stderr
    entry = run.report()["big"]
    assert entry["state"] == "SUCCEED"
    alloc = entry["runtime"]["allocation"]
    assert all(name in alloc for name in ("n0", "n1", "n2")), alloc


# ---- report and log options -----------------------------------------------------------------------
def test_report_file_custom_name(run_service: Any) -> None:
    run = run_service([submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH], "--nodes", "1",
                      "--report-file", "my.report")
    assert run.rc == 0, run.stderr
    assert not os.path.exists(os.path.join(run.aux, "jobs.report"))
    entry = json.loads(run.read("my.report").splitlines()[0])
    assert (entry["name"], entry["state"]) == ("a", "SUCCEED")


def test_report_file_absolute_path(run_service: Any, tmp_path: Any) -> None:
    target = str(tmp_path / "elsewhere" / "out.report")
    os.makedirs(os.path.dirname(target))
    run = run_service([submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH], "--nodes", "1",
                      "--report-file", target)
    assert run.rc == 0, run.stderr
    assert not os.path.exists(os.path.join(run.aux, "jobs.report"))
    with open(target) as fh:
        entry = json.loads(fh.readline())
    assert (entry["name"], entry["state"]) == ("a", "SUCCEED")


def test_report_format_text(run_service: Any) -> None:
    run = run_service([submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH], "--nodes", "1",
                      report_format="text")
    assert run.rc == 0, run.stderr
    lines = run.read("jobs.report").splitlines()
    assert lines[0] == "a (SUCCEED)"
    assert any(line.startswith("\t") and line.endswith(": SUCCEED") for line in lines[1:])


def test_report_format_none_writes_no_report(run_service: Any) -> None:
    run = run_service([submit({"name": "a", "execution": {"script": "echo ran > ran.a"}}), FINISH],
                      "--nodes", "1", report_format="none")
    assert run.rc == 0, run.stderr
    assert os.path.exists(os.path.join(run.wd, "ran.a"))
    files = os.listdir(run.aux)
    assert "jobs.report" not in files
    assert not any("report" in f for f in files), files
    assert run.final_status["JobStats"]["FinishedJobs"] == 1


@pytest.mark.parametrize("level", ["debug", "error", "DEBUG"])
def test_log_levels_accepted(run_service: Any, level: str) -> None:
    run = run_service([submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH], "--nodes", "1",
                      "--log", level, "--id", "lg")
    assert run.rc == 0, run.stderr
    assert run.report()["a"]["state"] == "SUCCEED"
    log = run.log.splitlines()
    assert log[0].startswith("service lg version ")
    if level.lower() == "debug":
        assert any(" INFO " in line for line in log[1:])
    else:
        assert not any(" INFO " in line or " WARNING " in line for line in log[1:]), log


# ---- --show-progress ----------------------------------------------------------------------------
PROGRESS_JOBS = [
    submit({"name": "ok", "iteration": {"stop": 3}, "execution": {"exec": "/bin/true"}},
           {"name": "bad", "execution": {"exec": "/bin/false"}}),
    FINISH,
]
PROGRESS_WORDS = ("done", "failed", "running", "queued", "tasks/s", "ETA")


def test_show_progress_plain_when_not_a_terminal(run_service: Any) -> None:
    run = run_service(PROGRESS_JOBS, "--nodes", "2", "--show-progress")
    assert run.rc == 0, run.stderr
    assert run.stdout, "no progress output"
    assert "\r" not in run.stdout and "\x1b" not in run.stdout
    lines = run.stdout.splitlines()
    for word in PROGRESS_WORDS:
        assert any(word in line for line in lines), word
    final = lines[-1]
    assert re.search(r"done 3\b", final) and re.search(r"\bfailed 1\b", final), final
    assert re.search(r"\brunning 0\b", final) and re.search(r"\bqueued 0\b", final), final


def test_show_progress_live_line_on_a_terminal(tmp_path: Any) -> None:
    wd = str(tmp_path)
    path = _write(wd, PROGRESS_JOBS)
    master, slave = pty.openpty()
    tty.setraw(slave)  # no output post-processing: a '\r' in the output was written by the service
    try:
        proc = subprocess.Popen(service_cmd("--file-path", path, "--wd", wd, "--nodes", "2", "--show-progress"),
                                stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = -1
        out = read_terminal(master, proc, 20).decode()
        rc = proc.wait(timeout=10)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert rc == 0, stderr
    assert "\r" in out
    assert "\r\x1b[2K" in out
    for word in PROGRESS_WORDS:
        assert word in out, word
    last = out.rsplit("\r", 1)[1]
    assert re.search(r"done 3\b", last) and re.search(r"\bfailed 1\b", last), repr(last)
    assert last.endswith("\n")


# ---- signals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_service_and_its_tasks(tmp_path: Any, sig: int) -> None:
    wd = str(tmp_path)
    path = _write(wd, [submit({"name": "long", "execution": {"script": "sleep 60 & echo $! > long.pid; wait"}}),
                       FINISH])
    proc = subprocess.Popen(service_cmd("--file-path", path, "--wd", wd, "--nodes", "1", "--id", "sig",
                                        "--report-format", "json"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pid_file = os.path.join(wd, "long.pid")
    try:
        pid = int(wait_for(lambda: _read_line(pid_file), timeout=15, what="the task's pid file"))
        assert _alive(pid)
        proc.send_signal(sig)
        wait_for(lambda: proc.poll() is not None, timeout=15, what="the service to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == 128 + sig, stderr
    wait_for(lambda: not _alive(pid), timeout=5, what="the task to be gone")
    aux = os.path.join(wd, AUX_PREFIX + "sig")
    with open(os.path.join(aux, "final_status")) as fh:
        status = json.load(fh)
    assert status["JobStats"]["ExecutingJobs"] == 0
    assert status["JobStats"]["FinishedJobs"] == 0
    with open(os.path.join(aux, "jobs.report")) as fh:
        entries = [json.loads(line) for line in fh]
    assert [e["name"] for e in entries] == ["long"]
    assert entries[0]["state"] == "CANCELED", entries[0]
    assert not _alive(int(entries[0]["runtime"]["pid"]))
    with open(os.path.join(aux, "service.log")) as fh:
        assert f"signal {int(sig)} received" in fh.read()
