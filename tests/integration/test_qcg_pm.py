"""The qcg-pm command-line client against a running service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Iterator

import pytest

from qcg_pilotjob.api import Jobs, LocalManager
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def qcg_pm(*args: str, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from qcg_pilotjob.api.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


@pytest.fixture
def service(tmp_path) -> Iterator[LocalManager]:
    manager = LocalManager(["--wd", str(tmp_path), "--nodes", "2", "--kill-grace", "1"])
    try:
        manager.submit(Jobs().add(name="ok", exec="/bin/true")
                       .add(name="bad", exec="/bin/false")
                       .add(name="long", script="sleep 30", iteration=3))
        manager.wait4(["ok", "bad"])
        wait_for(lambda: manager.status("long:0")["jobs"]["long:0"]["data"]["status"] == "EXECUTING",
                 what="long:0 to run")
        yield manager
    finally:
        manager.finish()  # (also after a qcg-pm finish: then it only waits and closes)


def test_list_table_and_json(service, tmp_path) -> None:
    res = qcg_pm("list", cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "MESSAGES"]
    rows = {ln.split()[0]: ln.split()[1] for ln in lines[2:-1]}
    assert rows == {"ok": "SUCCEED", "bad": "FAILED", "long": "EXECUTING"}
    assert lines[-1] == "3 jobs"
    data = json.loads(qcg_pm("--json", "list", cwd=str(tmp_path)).stdout)
    assert data["bad"]["status"] == "FAILED" and "exit code 1" in data["bad"]["messages"]


def test_status_unknown_name_exits_1(service, tmp_path) -> None:
    res = qcg_pm("--wd", str(tmp_path), "status", "ok", "long:0", "nope", cwd="/")
    assert res.returncode == 1
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines()[2:]}
    assert rows["ok"].split()[1] == "SUCCEED"
    assert rows["long:0"].split()[1] == "EXECUTING"
    assert "doesn't exist" in rows["nope"]


def test_info_with_childs(service, tmp_path) -> None:
    res = qcg_pm("info", "long", "--childs", cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("long: EXECUTING")
    assert "iterations: 0..2, 0 of 3 finished, 0 failed" in res.stdout
    assert "ITER" in res.stdout and "n0[" in res.stdout


def test_resources_cancel_remove_finish(service, tmp_path) -> None:
    aux = service.aux_dir
    assert aux is not None
    res = qcg_pm("--aux", aux, "--json", "resources", cwd="/")
    assert json.loads(res.stdout) == {"total_nodes": 1, "total_cores": 2, "used_cores": 2, "free_cores": 0}
    res = qcg_pm("--aux", aux, "cancel", "long", cwd="/")
    assert res.returncode == 0 and res.stdout.strip() == "1 canceled"
    assert service.wait4("long") == {"long": "CANCELED"}
    res = qcg_pm("--aux", aux, "remove", "ok", "long", "nope", cwd="/")
    assert res.returncode == 1
    assert res.stdout.splitlines()[0] == "2 removed" and "nope" in res.stdout
    with open(os.path.join(aux, "address")) as fh:
        address = fh.read().strip()
    res = qcg_pm("--address", address, "finish", cwd="/")
    assert res.returncode == 0, res.stderr
    service.qcgpm_process.wait(timeout=30)
    assert not os.path.exists(os.path.join(aux, "address"))  # removed at shutdown


def test_no_service_found_is_a_usage_error(tmp_path) -> None:
    res = qcg_pm("--wd", str(tmp_path), "list", cwd=str(tmp_path))
    assert res.returncode == 2
    assert "no running service found" in res.stderr


def test_dead_address_is_told_at_once_with_a_message(tmp_path) -> None:
    """Nothing listens: said as soon as the connection is refused, not after the request
    timeout (600 s here: the test's limit is shorter). Also ``python -m qcg_pilotjob.api.cli``."""
    res = subprocess.run([sys.executable, "-m", "qcg_pilotjob.api.cli", "--address", "tcp://127.0.0.1:1",
                          "--timeout", "600", "list"], capture_output=True, text=True, timeout=50, check=False,
                         cwd=str(tmp_path))
    assert res.returncode == 1
    assert res.stderr == ("qcg-pm: error: no service listens at tcp://127.0.0.1:1 (the connection was refused) "
                          "(is the service still running?)\n")


def test_reference_options_and_service_status(service, tmp_path) -> None:
    """QCG-PilotJob 0.14's qcg-pm: -p/--path (or QCG_PJM_DIR), -a/--address (or
    QCG_PJM_ADDRESS), -d, and ``status`` without names printing ``[Section]`` and
    ``key=value`` lines; once the service has ended, its final_status."""
    env = {**os.environ, "QCG_PJM_ADDRESS": "tcp://127.0.0.1:1"}  # (a directory given wins over it)
    res = subprocess.run([sys.executable, "-c", "from qcg_pilotjob.api.cli import main; main()", "-p", str(tmp_path),
                          "status"], capture_output=True, text=True, timeout=60, cwd="/", env=env, check=False)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "[System]" and "[Resources]" in lines and "[JobStats]" in lines
    system = dict(ln.split("=", 1) for ln in lines[1:lines.index("[Resources]")])
    assert system["InstanceId"] == service.system_status()["System"]["InstanceId"]
    aux = service.aux_dir
    assert aux is not None
    with open(os.path.join(aux, "address")) as fh:
        address = fh.read()
    env = {**os.environ, "QCG_PJM_ADDRESS": address.replace("tcp://", "")}
    res = subprocess.run([sys.executable, "-c", "from qcg_pilotjob.api.cli import main; main()", "-d", "--json",
                          "resources"], capture_output=True, text=True, timeout=60, cwd=str(tmp_path), env=env,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["total_cores"] == 2
    with open(os.path.join(aux, "qcgpjmclient.log")) as fh:  # -d: the client's log, each request in it
        assert "request: {'request': 'resourcesInfo'}" in fh.read()
    qcg_pm("-a", address, "finish", cwd="/")
    service.qcgpm_process.wait(timeout=30)
    env = {**os.environ, "QCG_PJM_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", "from qcg_pilotjob.api.cli import main; main()", "status"],
                         capture_output=True, text=True, timeout=60, cwd="/", env=env, check=False)
    assert res.returncode == 0, res.stderr
    final = res.stdout.splitlines()
    assert final[0] == "[System]" and f"InstanceId={system['InstanceId']}" in final
    assert "TotalJobs=3" in final  # from final_status.json: the service is gone


def test_regression_status_without_service_or_final_status_is_a_usage_error(tmp_path) -> None:
    """``qcg-pm status`` below an aux dir with neither an address nor a final status (a
    service without --net, a left-over dir) ended in an AssertionError traceback."""
    (tmp_path / ".qcgpjm-service-x").mkdir()
    res = qcg_pm("-p", str(tmp_path), "status", cwd="/")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "no running service found" in res.stderr
