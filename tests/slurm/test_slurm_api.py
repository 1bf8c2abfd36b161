"""The Python API inside a real allocation: a governor driven through its address file, and the
address written only once the service is ready (helpers: :mod:`tests.slurm.slurm_helpers`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .slurm_helpers import SERVICE, nodes_of, run_batch, write_driver

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


GOVERNOR_DRIVER = '''
def main():
    with open(os.path.join(WD, ".qcgpjm-service-gov", "address")) as fh:
        address = fh.read().strip()
    summary["address"] = address
    m = Manager(address, {"poll_delay": 0.5})
    summary["resources"] = m.resources()  # at once: the address is there once the partitions registered
    jobs = Jobs()
    jobs.add(name="a", script="echo $(hostname) > a.$it", numCores=1, iteration=16, wd="a")
    jobs.add(name="mpi", exec="hostname", model="srunmpi", numNodes={"exact": 2}, numCores={"exact": 2},
             stdout="mpi.out")
    jobs.add(name="c", exec="/bin/true", after=["a"])
    summary["submitted"] = m.submit(jobs)
    summary["states"] = m.wait4(["a", "mpi", "c"], timeout=60)
    summary["status"] = m.system_status()
    summary["a"] = info(m, ["a"], withChilds=True)["a"]
    m.finish()
    summary["finished"] = True
'''


def test_api_governor_in_allocation(cluster: None, tmp_path: Path) -> None:
    """The Python API drives a governor (two partitions) through the address in its aux dir."""
    addr = tmp_path / ".qcgpjm-service-gov" / "address"
    b = run_batch(tmp_path, f"""
        {SERVICE} --slurm-partition-nodes 2 --net --wd {tmp_path} --id gov --report-format json &
        SERVICE_PID=$!
        for i in $(seq 600); do [ -s {addr} ] && break; sleep 0.1; done
        {write_driver(tmp_path, GOVERNOR_DRIVER)} || kill $SERVICE_PID
        wait $SERVICE_PID
        echo "service exit code $?"
        """, "-N", "4", "--ntasks-per-node", "4")
    s = b.summary()
    assert "service exit code 0" in b.out, b.out
    assert s["address"].startswith("tcp://")
    assert s["resources"] == {"total_nodes": 4, "total_cores": 16, "used_cores": 0, "free_cores": 16}
    assert s["submitted"] == ["a", "mpi", "c"]
    assert s["states"] == {"a": "SUCCEED", "mpi": "SUCCEED", "c": "SUCCEED"}
    assert s["status"]["System"]["Partitions"] == 2
    assert s["status"]["Resources"]["TotalCores"] == 16
    hosts = {f.read_text().strip() for f in (tmp_path / "a").glob("a.*")}
    childs = s["a"]["childs"]
    assert len(childs) == 16 and all(c["state"] == "SUCCEED" for c in childs)
    assert hosts == {n for c in childs for n in nodes_of(c["runtime"]["allocation"])}
    assert len((tmp_path / "mpi.out").read_text().split()) == 4
    assert len(set((tmp_path / "mpi.out").read_text().split())) == 2
    assert s["finished"]
    assert not addr.exists()  # removed when the service ended


READY_DRIVER = '''
def main():
    for ident in ("single", "gov"):
        path = os.path.join(WD, f".qcgpjm-service-{ident}", "address")
        address = until(lambda: os.path.isfile(path) and open(path).read().strip(), 60, f"{path}")
        m = Manager(address, {"poll_delay": 0.5})
        summary[ident] = {"resources": m.resources()}
        # a submit right away fits
        summary[ident]["submitted"] = m.submit(Jobs().add(name="x", exec="/bin/true", numCores=2))
        summary[ident]["states"] = m.wait4(["x"], timeout=30)
        m.finish()
'''


def test_regression_address_written_when_ready(cluster: None, tmp_path: Path) -> None:
    """The address file appeared before the node agents (single manager) or the partition
    managers (governor) were up, so a client that found it and submitted at once got
    "no resources available (no partition has registered yet)"."""
    b = run_batch(tmp_path, f"""
        {SERVICE} --net --wd {tmp_path} --id single --report-format json &
        P1=$!
        {SERVICE} --slurm-partition-nodes 1 --net --wd {tmp_path} --id gov --report-format json &
        P2=$!
        {write_driver(tmp_path, READY_DRIVER)} || kill $P1 $P2
        wait $P1; echo "single exit code $?"
        wait $P2; echo "gov exit code $?"
        """, "-N", "2", "--ntasks-per-node", "2")
    s = b.summary()
    for ident in ("single", "gov"):
        assert s[ident]["resources"] == {"total_nodes": 2, "total_cores": 4, "used_cores": 0, "free_cores": 4}
        assert s[ident]["states"] == {"x": "SUCCEED"}
        assert f"{ident} exit code 0" in b.out
