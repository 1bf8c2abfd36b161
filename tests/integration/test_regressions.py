"""Regression tests for bugs found in review, each named after the bug it pins."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import psutil
import pytest

from tests.conftest import FINISH, service_cmd, submit, wait_for

pytestmark = pytest.mark.integration


def _journal(aux: str) -> list:
    with open(os.path.join(aux, "journal.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_regression_resume_after_sigterm_reruns_stopped_tasks(tmp_path):
    """A SIGTERM (as Slurm sends at the time limit) stops tasks; they are not final for a resume."""
    script = "if [ -e second ]; then echo quick >> runs; else echo started >> runs; sleep 30; fi"
    reqs = [submit({"name": "long", "execution": {"script": script}},
                   {"name": "after", "execution": {"script": "touch after.done"},
                    "dependencies": {"after": ["long"]}}), FINISH]
    (tmp_path / "reqs.json").write_text(json.dumps(reqs))
    proc = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--file-path", str(tmp_path / "reqs.json"),
                                        "--nodes", "2", "--id", "sig", "--report-format", "json"))
    try:
        wait_for(lambda: (tmp_path / "runs").exists(), what="the task to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    aux = str(tmp_path / ".qcgpjm-service-sig")
    assert not [r for r in _journal(aux) if r["t"] == "final"]  # CANCELED/OMITTED by the stop: not final
    (tmp_path / "second").touch()
    res = subprocess.run(service_cmd("--wd", str(tmp_path), "--resume", aux, "--report-format", "json",
                                     "--nodes", "2"), capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "runs").read_text().split() == ["started", "quick"]
    assert (tmp_path / "after.done").exists()


def test_regression_resume_kills_tasks_left_by_a_killed_service(tmp_path):
    reqs = [submit({"name": "long", "execution": {"exec": "sleep", "args": ["60"]}}), FINISH]
    (tmp_path / "reqs.json").write_text(json.dumps(reqs))
    aux = tmp_path / ".qcgpjm-service-k"
    proc = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--file-path", str(tmp_path / "reqs.json"),
                                        "--nodes", "1", "--id", "k"))
    try:
        runs = wait_for(lambda: aux.exists() and [r for r in _journal(str(aux)) if r["t"] == "run"],
                        what="the journal to record the start")
        old_pid = int(runs[0]["p"])
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert psutil.pid_exists(old_pid)  # the orphan survived the SIGKILL of the service
    resumed = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--resume", str(aux), "--nodes", "1"))
    try:
        wait_for(lambda: not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie",
                 what="the resume to kill the leftover task")
    finally:
        resumed.send_signal(signal.SIGTERM)
        resumed.wait(timeout=30)


def test_regression_unwritable_report_file_is_a_clean_error(run_service, tmp_path):
    res = run_service([submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH],
                      "--nodes", "1", "--report-file", str(tmp_path / "missing" / "dir" / "r.txt"))
    assert res.rc == 2
    assert "Traceback" not in res.stderr
    assert "--report-file" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_regression_bad_nodes_exit_code_is_2(run_service):
    res = run_service([FINISH], "--nodes", "0")
    assert res.rc == 2
    assert "--nodes" in res.stderr


def test_regression_explicit_default_port_min_implies_net(run_service):
    res = run_service([FINISH], "--nodes", "1", "--net-port-min", "2222")
    assert res.rc == 0, res.stderr
    assert "ZMQ" in res.final_status["System"]["Ifaces"]  # (QCG-PilotJob's names)
    assert res.final_status["System"]["Zmqaddress"].startswith("tcp://")


def test_regression_existing_id_is_refused_without_resume(run_service, tmp_path):
    first = run_service([FINISH], "--nodes", "1", "--id", "same")
    assert first.rc == 0
    second = run_service([FINISH], "--nodes", "1", "--id", "same")
    assert second.rc == 2
    assert "already exists" in second.stderr and "--resume" in second.stderr


def test_regression_resume_with_a_new_file_runs_all_its_requests(tmp_path):
    """--resume with --file-path reads the new file from its start, not from the old file's position."""
    first = [submit({"name": f"a{i}", "execution": {"exec": "/bin/true"}}) for i in range(3)] + [FINISH]
    (tmp_path / "first.json").write_text(json.dumps(first))
    res = subprocess.run(service_cmd("--wd", str(tmp_path), "--file-path", str(tmp_path / "first.json"),
                                     "--nodes", "1", "--id", "r", "--report-format", "json"),
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    second = [submit({"name": "b", "execution": {"script": "touch b.done"}}), FINISH]
    (tmp_path / "second.json").write_text(json.dumps(second))
    res = subprocess.run(service_cmd("--wd", str(tmp_path), "--resume", str(tmp_path / ".qcgpjm-service-r"),
                                     "--file-path", str(tmp_path / "second.json"), "--nodes", "1",
                                     "--report-format", "json"),
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "b.done").exists()


def test_regression_last_partition_lost_fails_waiting_work(tmp_path):
    """When the only partition dies, work waiting for one fails and the run ends (it hung)."""
    reqs = [submit({"name": "w", "iteration": {"stop": 12}, "execution": {"script": "echo x > started.$it; sleep 30"}}),
            FINISH]
    (tmp_path / "reqs.json").write_text(json.dumps(reqs))
    gov = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--file-path", str(tmp_path / "reqs.json"),
                                       "--nodes", "2,2", "--slurm-partition-nodes", "2", "--id", "g",
                                       "--report-format", "json", "--kill-grace", "1"))
    try:
        wait_for(lambda: len(list(tmp_path.glob("started.*"))) >= 4, what="4 tasks running")
        parts = [p for p in psutil.Process(gov.pid).children()
                 if "partition-0" in " ".join(p.cmdline())]
        assert len(parts) == 1
        parts[0].kill()
        assert gov.wait(timeout=60) == 0
    finally:
        if gov.poll() is None:
            gov.kill()
    final = json.loads((tmp_path / ".qcgpjm-service-g" / "final_status").read_text())
    assert final["IterationStats"]["InScheduleIterations"] == 0
    assert final["IterationStats"]["ExecutingIterations"] == 0
    assert final["IterationStats"]["FailedIterations"] == 12
    report = [json.loads(line) for line in (tmp_path / ".qcgpjm-service-g" / "jobs.report").read_text().splitlines()]
    messages = {e["name"]: e.get("messages", "") for e in report}
    assert sum("partition partition-0 lost" in m for m in messages.values()) == 4
    assert sum("no live partition is left" in m for m in messages.values()) == 8
