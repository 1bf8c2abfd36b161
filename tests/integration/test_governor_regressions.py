"""Governor regressions, each named after the failure it pins: real governor and partition
processes on loopback, waiting on conditions with deadlines (no sleeps, no timing asserts)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import time
from typing import Any, Dict, List, Optional, Set, Tuple

import msgpack
import psutil
import pytest
import zmq

from tests.conftest import FINISH, service_cmd, submit, wait_for

pytestmark = pytest.mark.integration

FINAL = {"SUCCEED", "FAILED", "CANCELED", "OMITTED"}


# ---- helpers -------------------------------------------------------------------------------------
def _aux(wd: str, ident: str) -> str:
    return os.path.join(wd, f".qcgpjm-service-{ident}")


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _report(aux: str) -> Dict[str, Dict[str, Any]]:
    """jobs.report (json lines) by name; a later line of the same name wins."""
    out = {}
    for line in _read(os.path.join(aux, "jobs.report")).splitlines():
        entry = json.loads(line)
        out[entry["name"]] = entry
    return out


def _ask(address: str, request: Dict[str, Any], ok: bool = True) -> Dict[str, Any]:
    """One JSON request on a fresh REQ socket; no answer within 10 s fails the test."""
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        sock.setsockopt(zmq.SNDTIMEO, 10_000)
        sock.connect(address)
        sock.send(json.dumps(request).encode())
        try:
            reply = json.loads(sock.recv())
        except zmq.Again:
            raise AssertionError(f"the governor at {address} did not answer {request} within 10 s") from None
        sock.close(linger=0)
    finally:
        ctx.term()
    if ok:
        assert reply["code"] == 0, reply
    return reply


def _status(address: str) -> Dict[str, Any]:
    return _ask(address, {"request": "status"})["data"]


def _job_states(address: str, names: List[str]) -> Dict[str, str]:
    data = _ask(address, {"request": "jobStatus", "jobNames": names})["data"]["jobs"]
    return {name: data[name]["data"]["status"] for name in names}


def _job_info(address: str, names: List[str]) -> Dict[str, Dict[str, Any]]:
    data = _ask(address, {"request": "jobInfo", "jobNames": names})["data"]["jobs"]
    return {name: data[name]["data"] for name in names}


def _nodes(allocation: str) -> List[str]:
    """Node names of an allocation text such as ``a[0:1],b[0]``."""
    return re.findall(r"([^,\[\]]+)\[", allocation)


def _gone(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_pids(pids: List[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            proc.send_signal(signal.SIGCONT)
            proc.kill()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def _partition_pids(gov_pid: int, count: int) -> List[int]:
    """The partition processes a governor started, once there are ``count`` of them."""
    def found() -> Optional[List[int]]:
        try:
            kids = [p.pid for p in psutil.Process(gov_pid).children() if "--parent" in p.cmdline()]
        except psutil.Error:
            return None
        return kids if len(kids) == count else None
    return wait_for(found, timeout=30, what=f"{count} partition processes")


def _marker_pids(marker: str) -> List[int]:
    out = []
    for proc in psutil.process_iter():
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if cmd[:1] == ["sleep"] and marker in cmd and not _gone(proc.pid):
            out.append(proc.pid)
    return out


def _address(aux: str) -> str:
    return wait_for(lambda: _read(os.path.join(aux, "address")).strip(), timeout=30,
                    what="the governor's address file")


def _registered(aux: str, ident: str) -> None:
    wait_for(lambda: f"partition {ident} registered" in _read(os.path.join(aux, "service.log")), timeout=30,
             what=f"partition {ident} to register")


# ---- 1. a partition registers while work waits in the governor's ready queue ---------------------
def test_regression_partition_registers_while_work_waits(tmp_path):
    """A partition that registered while released work waited in the governor's ready queue
    crashed the hub with an IndexError, and the governor stopped answering everyone. It
    must register, take waiting work (sent in the frame of its acceptance, after the
    acceptance), and the run must end with every job SUCCEED.

    Two 1-core partitions first: with one live partition the governor routes everything to
    it at once (no window), so nothing would wait. Their windows (64 cores' worth each) hold
    128 of the 300 gated jobs; the other 172 wait in the governor until the third comes."""
    from qcg_pilotjob.api import Manager
    from qcg_pilotjob.api.job import Jobs

    wd = str(tmp_path)
    gate = tmp_path / "go"
    gov = subprocess.Popen(service_cmd("--governor", "--net", "--wd", wd, "--id", "wait", "--report-format", "json"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(wd, "wait")
    procs: List[subprocess.Popen] = [gov]
    manager: Optional[Any] = None
    try:
        address = _address(aux)

        def partition(ident: str, nodes: str) -> subprocess.Popen:
            proc = subprocess.Popen(service_cmd("--parent", address, "--id", ident, "--nodes", nodes, "--wd", wd),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            procs.append(proc)
            return proc

        first = [partition("p1", "a:1"), partition("p2", "b:1")]
        _registered(aux, "p1")
        _registered(aux, "p2")
        manager = Manager(address)
        names = [f"w{i:03d}" for i in range(300)]
        jobs = Jobs()
        for name in names:
            jobs.add(name=name, script=f"while [ ! -e {gate} ]; do sleep 0.05; done; sleep 0.05")
        assert manager.submit(jobs) == names

        def executing_on(nodes: Set[str]) -> List[str]:
            info = manager.info(names)["jobs"]
            return [n for n in names if info[n]["data"]["status"] == "EXECUTING"
                    and set(_nodes(info[n]["data"]["runtime"]["allocation"])) <= nodes]

        wait_for(lambda: len(executing_on({"a", "b"})) == 2, timeout=30, what="a job executing on p1 and p2")
        third = partition("p3", "c:2")  # while 172 jobs wait in the governor's ready queue
        _registered(aux, "p3")
        # the governor keeps answering, and counts the newcomer
        assert manager.system_status()["System"]["Partitions"] == 3
        assert manager.resources()["total_cores"] == 4
        # the newcomer took waiting work: the jobs on p1 and p2 hold their cores until the
        # gate opens, so whatever runs on c came from the governor's queue
        wait_for(lambda: len(executing_on({"c"})) == 2, timeout=30, what="two jobs executing on p3")
        assert third.poll() is None
        gate.touch()
        manager.wait4all(timeout=90)
        assert manager.list() == {n: {"status": "SUCCEED"} for n in names}
        manager.finish()
        manager = None
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
        for proc in [*first, third]:
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
    finally:
        if manager is not None:
            manager.close()
        for proc in procs:
            _stop(proc)
    log = _read(os.path.join(aux, "service.log"))
    assert "Traceback" not in log
    assert "failed; the frame is dropped" not in log
    report = _report(aux)
    assert {n: report[n]["state"] for n in names} == {n: "SUCCEED" for n in names}
    per_node = collections.Counter(_nodes(report[n]["runtime"]["allocation"])[0] for n in names)
    assert set(per_node) == {"a", "b", "c"}, per_node
    assert per_node["c"] >= 2, per_node
    assert _read(os.path.join(_aux(wd, "p3"), "service.log")).count("registered with the governor") == 1


# ---- 2. a governor killed with SIGKILL is resumed ---------------------------------------------------
RESUME_JOBS = 420


def _journal_finals(aux: str) -> Set[str]:
    """Jobs whose ``final`` record is in the journal (a line cut by a kill is skipped)."""
    out = set()
    for line in _read(os.path.join(aux, "journal.jsonl")).splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("t") == "final":
            out.add(rec["j"])
    return out


def _runs(path: str) -> collections.Counter:
    return collections.Counter(line for line in _read(path).splitlines() if line)


def _kill_when(cmd: List[str], cwd: str, aux: str, at_least: int) -> Set[str]:
    """Run a governor; SIGKILL it once ``at_least`` jobs have a final record in the journal.
    Returns the jobs recorded final at the kill, once its partitions (and their tasks) are gone."""
    gov = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kids: List[int] = []
    try:
        kids = _partition_pids(gov.pid, 2)
        wait_for(lambda: len(_journal_finals(aux)) >= at_least or gov.poll() is not None, timeout=90,
                 interval=0.005, what=f"{at_least} final records in the journal")
        assert gov.poll() is None, f"the governor ended before the kill: {gov.communicate()[1]}"
        gov.send_signal(signal.SIGKILL)
        assert gov.wait(timeout=10) == -signal.SIGKILL
        recorded = _journal_finals(aux)  # nothing writes the journal any more
        # the partitions notice the governor's end (lifeline) and stop their tasks
        wait_for(lambda: all(_gone(pid) for pid in kids), timeout=30, what="the killed governor's partitions to exit")
    finally:
        _stop(gov)
        _kill_pids(kids)
    assert 0 < len(recorded) < RESUME_JOBS, len(recorded)
    return recorded


@pytest.mark.timeout(360)
@pytest.mark.parametrize("forms", [("again",), ("alone",), ("again", "alone", "again")],
                         ids=["command-line-and-resume", "resume-alone", "three-kills"])
def test_regression_governor_resume_after_sigkill(tmp_path, forms):
    """A governor killed with SIGKILL (no chance to stop anything) is resumed from its aux
    dir: the run ends by itself with every job final, and no job whose final record reached
    the journal before a kill runs again. ``forms``: how each resume is started, one per kill
    (``again``: the original command line plus ``--resume``; ``alone``: ``--resume`` only),
    and the last resume is started the other way round and runs to the end."""
    wd = str(tmp_path)
    runs = str(tmp_path / "runs.txt")
    names = [f"j{i:03d}" for i in range(RESUME_JOBS)]
    jobs = [{"name": n, "execution": {"script": f"echo {n} >> {runs}; sleep 0.05"}} for n in names]
    with open(tmp_path / "jobs.json", "w") as fh:
        json.dump([submit(*jobs), FINISH], fh)
    original = service_cmd("--nodes", "a:2,b:2", "--slurm-partition-nodes", "1", "--file-path", "jobs.json",
                           "--id", "X", "--report-format", "json")
    aux = _aux(wd, "X")

    def resume(form: str) -> List[str]:
        return [*original, "--resume", aux] if form == "again" else service_cmd("--resume", aux)

    # recorded[k]: jobs final in the journal at kill k; counts[k]: runs.txt at that moment
    recorded: List[Set[str]] = []
    counts: List[collections.Counter] = []
    cmd = original
    for form in forms:
        recorded.append(_kill_when(cmd, wd, aux, (len(recorded[-1]) if recorded else 0) + 40))
        counts.append(_runs(runs))
        cmd = resume(form)
    last = resume("alone" if forms[-1] == "again" else "again")
    end = subprocess.Popen(last, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kids: List[int] = []
    try:
        kids = _partition_pids(end.pid, 2)
        _, err = end.communicate(timeout=120)
        assert end.returncode == 0, err
        wait_for(lambda: all(_gone(pid) for pid in kids), timeout=30, what="the partitions to exit")
    finally:
        _stop(end)
        _kill_pids(kids)

    report = _report(aux)
    unsuccessful = {n: report.get(n) for n in names if report.get(n, {}).get("state") != "SUCCEED"}
    assert not unsuccessful, unsuccessful
    status = json.loads(_read(os.path.join(aux, "final_status")))
    assert status["JobStats"]["TotalJobs"] == RESUME_JOBS
    assert status["JobStats"]["FinishedJobs"] == RESUME_JOBS
    assert status["IterationStats"]["InScheduleIterations"] == status["IterationStats"]["ExecutingIterations"] == 0
    assert _journal_finals(aux) == set(names)
    final = _runs(runs)
    assert set(final) == set(names)  # every job ran, nothing else wrote there
    # no job recorded final before a kill ran again after it
    again = {n: (k, counts[k][n], final[n]) for k, done in enumerate(recorded) for n in done
             if final[n] != counts[k][n]}
    assert not again, f"jobs recorded final at kill k ran again: {{name: (k, runs then, runs at the end)}} {again}"
    assert all(final[n] == 1 for n in recorded[0])
    assert all(recorded[k] <= recorded[k + 1] for k in range(len(recorded) - 1))
    reruns = {n: c - 1 for n, c in final.items() if c > 1}
    print(f"resume figures ({'+'.join(forms)}): {RESUME_JOBS} jobs, {len(forms)} kill(s), final records at "
          f"the kills {[len(r) for r in recorded]}, jobs run more than once {len(reruns)} "
          f"({sum(reruns.values())} extra runs, all of jobs not recorded final at the kill)")


# ---- 3. malformed partition messages ----------------------------------------------------------------
def _batch(*msgs: List[Any], version: int = 1) -> bytes:
    return bytes(msgpack.packb([version, list(msgs)], use_bin_type=True))


def _events(*events: List[Any]) -> List[Any]:
    return [2, list(events), 0]  # TaskEventsMsg: [type, events, used_cores]


HEARTBEAT = _batch([9, 0])


class FakePartition:
    """A DEALER that registers as partition ``fake`` (one 1-core node: none of the test's
    2-core jobs fits there, so the governor routes it nothing) and then says what it is told."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, b"fake-peer")
        self.sock.connect(address)

    def send(self, payload: bytes) -> None:
        self.sock.send(payload)

    def receive(self, timeout: float = 10.0) -> List[List[Any]]:
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError(f"nothing from the governor within {timeout}s")
        version, msgs = msgpack.unpackb(self.sock.recv(), raw=False, strict_map_key=False)
        assert version == 1
        return msgs

    def register(self) -> None:
        self.send(_batch([7, "fake", 1, [{"name": "f", "cores": ["0"], "gpus": []}], "fake-host", 0]))
        while True:
            registered = [m for m in self.receive() if m[0] == 8]
            if registered:
                assert registered[0][1] is True, registered  # RegisteredMsg(ok, message, heartbeat)
                return

    def answer_shutdown(self) -> None:
        """Wait for the governor's ShutdownMsg and say it stopped (StoppedMsg)."""
        def shutdown() -> bool:
            return any(m[0] == 5 for m in self.receive(timeout=1.0)) if self.sock.poll(0) else False

        wait_for(shutdown, timeout=30, what="the governor's ShutdownMsg")
        self.send(_batch([6]))

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def test_regression_malformed_partition_messages_do_not_silence_the_governor(tmp_path):
    """Frames a partition may send by mistake (or a bad peer on purpose) are dropped with a
    WARNING naming the peer: undecodable bytes, another protocol version, an unknown state
    or message type, a field of the wrong type, a truncated frame. Well-formed events that
    lie (a state a partition never reports, a final state for a task on another partition)
    change nothing: the job keeps its true state and the run is not finished. The governor
    answers all along and runs later work."""
    wd = str(tmp_path)
    gate = tmp_path / "go"
    gov = subprocess.Popen(service_cmd("--governor", "--net", "--wd", wd, "--id", "bad", "--report-format", "json"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(wd, "bad")
    log_path = os.path.join(aux, "service.log")
    procs: List[subprocess.Popen] = [gov]
    fake: Optional[FakePartition] = None
    two_cores = {"numCores": {"exact": 2}}
    try:
        address = _address(aux)
        real = subprocess.Popen(service_cmd("--parent", address, "--id", "real", "--nodes", "a:4", "--wd", wd),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(real)
        _registered(aux, "real")
        fake = FakePartition(address)
        fake.register()
        _registered(aux, "fake")
        assert _status(address)["System"]["Partitions"] == 2
        _ask(address, submit(
            {"name": "held", "execution": {"script": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
             "resources": two_cores},
            {"name": "after_held", "execution": {"exec": "/bin/true"}, "resources": two_cores,
             "dependencies": {"after": ["held"]}}))
        wait_for(lambda: _job_states(address, ["held"])["held"] == "EXECUTING", what="held to run")
        held = _job_info(address, ["held"])["held"]
        assert _nodes(held["runtime"]["allocation"]) == ["a"]  # on the real partition

        def count(text: str) -> int:
            return _read(log_path).count(text)

        dropped = "WARNING partition hub: dropped an invalid frame from partition fake-peer"
        ignored = "WARNING partition fake: event ignored: task held"
        now = time.time()
        truncated = _batch(_events(["held", None, 4, now, {"exit_code": 0}]))
        frames: List[Tuple[str, bytes, str]] = [
            ("garbage bytes", b"\xc1\x00\xffnot msgpack", dropped),
            ("another protocol version", _batch([9, 0], version=99), dropped),
            ("an unknown task state", _batch(_events(["held", None, 99, now, None])), dropped),
            ("SCHEDULED, which a partition never reports", _batch(_events(["held", None, 2, now, None])), ignored),
            ("a RegisterMsg whose id is a list",
             _batch([7, ["fake"], 1, [{"name": "f", "cores": ["0"], "gpus": []}], "fake-host", 0]), dropped),
            ("SUCCEED for a task on another partition", _batch(_events(["held", None, 4, now, {"exit_code": 0}])),
             ignored),
            ("truncated msgpack", truncated[:len(truncated) // 2], dropped),
            ("an unknown message type", _batch([77, "x"]), dropped),
        ]
        for what, payload, expect in frames:
            was = {dropped: count(dropped), ignored: count(ignored)}
            want = dict(was)
            want[expect] += 1
            want[dropped] += 1  # the sentinel's
            fake.send(HEARTBEAT)  # (a valid frame keeps it from being lost as silent)
            fake.send(payload)
            # a sentinel after it on the same connection: once its WARNING is in the log,
            # the frame before it was handled (frames of one peer are handled in order)
            fake.send(b"sentinel")
            wait_for(lambda want=want: count(dropped) >= want[dropped], timeout=20,
                     what=f"the governor to handle {what}")
            status = _status(address)  # the governor still answers
            assert status["System"]["Partitions"] == 2, what
            # the lying events changed nothing: held runs on, the run is not finished
            assert _job_states(address, ["held", "after_held"]) == {"held": "EXECUTING", "after_held": "QUEUED"}, what
            assert status["JobStats"]["ExecutingJobs"] == 1, what
            all_done = _ask(address, {"request": "status", "options": {"allJobsFinished": True}})["data"]
            assert all_done == {"AllJobsFinished": False}, what
            assert {dropped: count(dropped), ignored: count(ignored)} == want, what  # one WARNING each
        held_now = _job_info(address, ["held"])["held"]
        assert held_now["status"] == "EXECUTING"
        assert "SUCCEED" not in held_now["history"]
        log = _read(log_path)
        assert log.count("(the task is not on partition fake)") == 2  # the SCHEDULED and the SUCCEED
        assert "Traceback" not in log  # every frame was dropped by a check, none by an exception

        # the run goes on: held ends on the real partition, what waited for it runs, and so
        # does a job submitted now
        gate.touch()
        _ask(address, submit({"name": "later", "execution": {"exec": "/bin/true"}, "resources": two_cores}))
        wait_for(lambda: set(_job_states(address, ["held", "after_held", "later"]).values()) <= FINAL, timeout=30,
                 what="the jobs to end")
        assert _job_states(address, ["held", "after_held", "later"]) == {"held": "SUCCEED", "after_held": "SUCCEED",
                                                                         "later": "SUCCEED"}
        assert _ask(address, {"request": "status", "options": {"allJobsFinished": True}})["data"] == \
            {"AllJobsFinished": True}
        _ask(address, {"request": "finish"})
        fake.answer_shutdown()
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
        _, err = real.communicate(timeout=30)
        assert real.returncode == 0, err
    finally:
        if fake is not None:
            fake.close()
        for proc in procs:
            _stop(proc)
    report = _report(aux)
    for name in ("held", "after_held", "later"):
        assert report[name]["state"] == "SUCCEED", report[name]
        assert _nodes(report[name]["runtime"]["allocation"]) == ["a"]


# ---- 4. the tasks of a lost partition are ended ------------------------------------------------------
@pytest.mark.parametrize("how", ["killed", "hung"])
def test_regression_lost_partition_tasks_are_ended(tmp_path, how):
    """A lost partition's running tasks are reported FAILED, saying that the partition was
    lost and what was ended, and their processes are really ended (not left running,
    orphaned, once reported FAILED). ``killed``: the partition manager got SIGKILL;
    ``hung``: it got SIGSTOP and missed 30 heartbeats of 0.2 s, and the governor killed it.
    The other partition's tasks run on."""
    wd = str(tmp_path)
    marker = f"600.{random.randrange(10**6):06d}"
    args = ["--nodes", "a:2,b:2", "--slurm-partition-nodes", "1", "--net", "--wd", wd, "--id", "lost",
            "--report-format", "json"]
    if how == "hung":
        args += ["--heartbeat", "0.2"]
    gov = subprocess.Popen(service_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(wd, "lost")
    kids: List[int] = []
    tasks: List[int] = []
    names = [f"long{i}" for i in range(4)]
    try:
        kids = _partition_pids(gov.pid, 2)
        address = _address(aux)  # written once both partitions registered
        registered = dict(re.findall(r"partition (partition-\d) registered from \S+ \(pid (\d+)\)",
                                     _read(os.path.join(aux, "service.log"))))
        assert set(registered) == {"partition-0", "partition-1"}
        assert {int(p) for p in registered.values()} == set(kids)
        victim = int(registered["partition-1"])  # holds node b
        _ask(address, submit(*({"name": n, "execution": {"exec": "sleep", "args": [marker]}} for n in names)))

        def running() -> Optional[Dict[str, Tuple[str, int]]]:
            info = _job_info(address, names)
            if any(i["status"] != "EXECUTING" or "pid" not in i.get("runtime", {}) for i in info.values()):
                return None
            return {n: (_nodes(i["runtime"]["allocation"])[0], int(i["runtime"]["pid"])) for n, i in info.items()}

        where = wait_for(running, timeout=30, what="4 tasks running with their pids")
        tasks = [pid for _, pid in where.values()]
        assert sorted(_marker_pids(marker)) == sorted(tasks)
        on_b = sorted(n for n, (node, _) in where.items() if node == "b")
        on_a = sorted(n for n, (node, _) in where.items() if node == "a")
        assert len(on_b) == len(on_a) == 2, where
        os.kill(victim, signal.SIGKILL if how == "killed" else signal.SIGSTOP)

        wait_for(lambda: set(_job_states(address, on_b).values()) <= FINAL, timeout=30,
                 what="the lost partition's tasks to end")
        wait_for(lambda: all(_gone(where[n][1]) for n in on_b), timeout=10,
                 what="the lost partition's task processes to be gone")
        info = _job_info(address, on_b + on_a)
        for name in on_b:
            assert info[name]["status"] == "FAILED", info[name]
            message = info[name]["messages"]
            assert "partition partition-1 lost" in message, message
            assert "ended: " in message and "2 running task(s)" in message, message
            if how == "hung":
                assert f"its manager process {victim}" in message, message
        if how == "hung":  # the governor killed the stopped partition manager
            wait_for(lambda: _gone(victim), timeout=10, what="the hung partition manager to be gone")
        # the other partition's tasks run on
        for name in on_a:
            assert info[name]["status"] == "EXECUTING", info[name]
            assert not _gone(where[name][1]), name
        assert _job_states(address, on_a) == {n: "EXECUTING" for n in on_a}
        status = _status(address)
        assert status["System"]["Partitions"] == 1
        assert status["Resources"]["TotalCores"] == 2
        log = _read(os.path.join(aux, "service.log"))
        assert "partition partition-1 lost" in log
        _ask(address, {"request": "finish"})
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
        wait_for(lambda: all(_gone(pid) for pid in kids), timeout=20, what="the partitions to exit")
        wait_for(lambda: not _marker_pids(marker), timeout=10, what="every task process to be gone")
    finally:
        _stop(gov)
        _kill_pids(kids + tasks)
    report = _report(aux)
    assert {n: report[n]["state"] for n in on_b} == {n: "FAILED" for n in on_b}
    assert {n: report[n]["state"] for n in on_a} == {n: "CANCELED" for n in on_a}  # by the finish
