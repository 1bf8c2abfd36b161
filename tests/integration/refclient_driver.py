"""Driver run by test_reference_client.py with the python of a venv holding the REAL
QCG-PilotJob 0.14.2 client from PyPI (not our ``qcg`` shim): it talks to our service at
``argv[1]`` through ``qcg.pilotjob.api.manager.Manager`` and prints a JSON summary.

Not a test module; it must stay importable on the reference client's supported Pythons.
"""

import json
import os
import sys
import time


def main() -> None:
    address = sys.argv[1]
    import qcg.pilotjob.api.manager as manager_module
    from qcg.pilotjob.api.job import Jobs
    from qcg.pilotjob.api.manager import Manager

    out = {"client_file": manager_module.__file__}
    # pub_timeout bounds each wait on status events, so a missing event fails fast, not in 5 minutes
    m = Manager(address, {"poll_delay": 1, "pub_timeout": 30})
    out["publisher"] = m._publisher_address
    out["resources"] = m.resources()

    jobs = Jobs()
    jobs.add(name="first", exec="/bin/echo", args=["hello"], stdout="first.out", numCores=1)
    jobs.add(name="iter", script="echo it ${it}", stdout="iter_${it}.out", iteration=3, numCores=1,
             after="first")
    jobs.add(name="last", exec="/bin/true", after=["iter"], numCores={"exact": 2})
    out["submitted"] = m.submit(jobs)
    out["submitted_long"] = m.submit(Jobs().add(name="long", exec="/bin/sleep", args=["30"]))

    out["wait4"] = m.wait4(["first", "iter", "last"], timeout=60)
    out["wait4_iteration"] = m.wait4("iter:1", timeout=30)
    status = m.status(["first", "iter", "last", "iter:2"])
    out["status"] = {name: entry["data"]["status"] for name, entry in status["jobs"].items()}
    info = m.info(["iter"], withChilds=True)["jobs"]["iter"]["data"]
    out["info_iter"] = {"status": info["status"], "iterations": info.get("iterations"),
                        "childs": sorted((c["iteration"], c["state"]) for c in info.get("childs", []))}
    parsed = m.info_parsed("first")["first"]
    out["info_parsed_first"] = {"name": parsed.name, "status": parsed.status, "nodes": parsed.nodes,
                                "total_cores": parsed.total_cores, "wdir": parsed.wdir,
                                "time": None if parsed.time is None else parsed.time.total_seconds()}

    # the long job: wait until it runs, cancel it, wait for its end
    deadline = time.monotonic() + 30
    while m.status("long")["jobs"]["long"]["data"]["status"] != "EXECUTING":
        if time.monotonic() > deadline:
            raise SystemExit("long never started")
        time.sleep(0.05)
    out["resources_busy"] = m.resources()
    m.cancel("long")
    out["wait4_long"] = m.wait4("long", timeout=30)
    out["list"] = {name: entry["status"] for name, entry in m.list().items()}
    m.wait4all(timeout_secs=30)
    out["wait4all"] = "ok"
    system = m.system_status()
    out["system"] = {"InstanceId": system["System"].get("InstanceId"),
                     "StatusPublisher": system["System"].get("StatusPublisher")}
    out["all_finished"] = m.send_request({"request": "status", "options": {"allJobsFinished": True}})["data"]
    out["resources_after"] = m.resources()
    m.finish()
    out["finish"] = "ok"
    # proof that wait4/wait4all went through the PUB status events, not only status polls
    with open(os.path.join(".qcgpjm-client", "api.log")) as fh:
        out["events_seen"] = sum("got status event" in line for line in fh)
    print(json.dumps(out, default=str))


def probe() -> None:
    """Connect and submit one job that leaves a file; print ``answered`` if the service answers
    (against a service with authentication it must not: the client waits)."""
    from qcg.pilotjob.api.job import Jobs
    from qcg.pilotjob.api.manager import Manager

    m = Manager(sys.argv[1])
    m.submit(Jobs().add(name="probe", exec="/bin/touch", args=["probed"]))
    print("answered")


if __name__ == "__main__":
    probe() if sys.argv[2:] == ["probe"] else main()
