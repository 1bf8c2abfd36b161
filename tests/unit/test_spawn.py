"""posix_spawn with Popen's semantics (qcg_pilotjob.partition.spawn): the task's PATH, a new
session, default SIGPIPE, its working directory, its stdio, no inherited descriptors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qcg_pilotjob.partition.spawn import Spawner

PROBE = ("import json, os, sys\n"
         "def is_open(fd):\n"
         "    try:\n        os.fstat(fd)\n        return True\n    except OSError:\n        return False\n"
         "print(json.dumps({'session_leader': os.getsid(0) == os.getpid(), 'cwd': os.getcwd(),\n"
         "    'var': os.environ.get('V'),\n"
         "    'inherited': is_open(int(sys.argv[1])), 'stdin': sys.stdin.read()}))\n"
         "print('to stderr', file=sys.stderr)\n")


def wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_spawn_gives_the_task_what_popen_did(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir()
    (tmp_path / "in.txt").write_text("input")
    (tmp_path / "probe.py").write_text(PROBE)
    given_r, given_w = os.pipe()
    os.set_inheritable(given_w, True)  # (as --ready-fd is in the service)
    stdin = os.open(tmp_path / "in.txt", os.O_RDONLY | os.O_CLOEXEC)
    out = os.open(tmp_path / "out.txt", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    spawner = Spawner()
    try:
        env = {"PATH": os.path.dirname(sys.executable), "V": "value"}
        pid = spawner.spawn([os.path.basename(sys.executable), str(tmp_path / "probe.py"), str(given_w)], str(wd),
                            env, (stdin, out, out))
        assert wait(pid) == 0
    finally:
        spawner.close()
        for fd in (given_r, given_w, stdin, out):
            os.close(fd)
    lines = (tmp_path / "out.txt").read_text().splitlines()  # (stderr unbuffered: it comes first)
    assert len(lines) == 2 and "to stderr" in lines
    probe = json.loads(next(line for line in lines if line.startswith("{")))
    assert probe == {"session_leader": True, "cwd": str(wd), "var": "value", "inherited": False, "stdin": "input"}
    assert os.getcwd() != str(wd)  # the service's own directory is back


def test_spawn_restores_the_signals_python_ignores(tmp_path: Path) -> None:
    """This process ignores SIGPIPE (Python does); a task must not inherit that."""
    out = os.open(tmp_path / "status", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    spawner = Spawner()
    try:
        pid = spawner.spawn(["grep", "SigIgn", "/proc/self/status"], str(tmp_path), {"PATH": "/usr/bin:/bin"},
                            (subprocess.DEVNULL, out, out))
        assert wait(pid) == 0
    finally:
        spawner.close()
        os.close(out)
    ignored = int((tmp_path / "status").read_text().split()[1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE is ignored in the task"


def test_spawn_looks_in_the_tasks_path_and_says_what_is_missing(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    prog = bindir / "only-here"
    prog.write_text("#!/bin/sh\necho found > found.txt\n")
    prog.chmod(0o755)
    spawner = Spawner()
    null = (subprocess.DEVNULL,) * 3
    try:
        assert wait(spawner.spawn(["only-here"], str(tmp_path), {"PATH": str(bindir)}, null)) == 0
        assert (tmp_path / "found.txt").read_text() == "found\n"
        with pytest.raises(FileNotFoundError):
            spawner.spawn(["only-here"], str(tmp_path), {"PATH": "/usr/bin:/bin"}, null)
        with pytest.raises(FileNotFoundError):
            spawner.spawn([str(tmp_path / "nope")], str(tmp_path), {"PATH": "/bin"}, null)
    finally:
        spawner.close()
    assert Spawner.usable(null) and not Spawner.usable((0, 5, 5))
