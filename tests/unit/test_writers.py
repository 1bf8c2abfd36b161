"""The report/journal writers when the disk fails: nothing lost, nothing twice, never raises;
private files; the journal flushed at the end of the loop turn."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from typing import Any, List

import pytest

from qcg_pilotjob import auxdir
from qcg_pilotjob.auxdir import make_private_dir, open_private_fd
from qcg_pilotjob.front import reports
from qcg_pilotjob.front.reports import FileImage, Flusher, LineWriter
from qcg_pilotjob.service.logs import close_service_log, open_service_log


class FailingDisk:
    """Replaces ``os.write`` in the writers' module: for the fds in ``broken``, writes up to
    ``room`` bytes (a partial write), then raises ENOSPC until ``room`` grows again."""

    def __init__(self, monkeypatch: Any) -> None:
        self.real = os.write
        self.broken: dict = {}
        self.calls = 0
        monkeypatch.setattr(reports.os, "write", self.write)

    def write(self, fd: int, data: Any) -> int:
        self.calls += 1
        if fd not in self.broken:
            return self.real(fd, data)
        room = self.broken[fd]
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self.real(fd, bytes(data[:room]))
        self.broken[fd] = room - n
        return n


def _fd(writer: LineWriter) -> int:
    fd = writer._fd
    assert fd is not None
    return fd


def _warnings(caplog: Any, path: str) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and path in r.getMessage()]


def test_failed_write_keeps_lines_and_writes_them_once_later(tmp_path: Any, monkeypatch: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="qcg_pilotjob")
    disk = FailingDisk(monkeypatch)
    path = str(tmp_path / "jobs.report")
    w = LineWriter(path)
    disk.broken[_fd(w)] = 10  # room for 10 bytes: the first line is cut in the middle
    for i in range(5):
        w.write(f"line {i} of the report\n")
    assert w.flush() is False  # no exception
    w.write("line 5 of the report\n")  # no exception either
    assert w.flush() is False
    assert w.error is not None and w.error.errno == errno.ENOSPC
    warned = _warnings(caplog, path)
    assert len(warned) == 1, warned  # logged once, with the error and the path
    assert "No space left on device" in warned[0]
    del disk.broken[_fd(w)]  # space again
    assert w.flush() is True
    w.write("line 6 of the report\n")
    assert w.close() is True
    with open(path) as fh:
        assert fh.read() == "".join(f"line {i} of the report\n" for i in range(7))  # each line once, whole
    assert w.error is None


def test_two_writers_are_independent(tmp_path: Any, monkeypatch: Any) -> None:
    disk = FailingDisk(monkeypatch)
    bad, good = LineWriter(str(tmp_path / "a")), LineWriter(str(tmp_path / "b"))
    disk.broken[_fd(bad)] = 0
    loop = asyncio.new_event_loop()
    try:
        flusher = Flusher(loop, [bad], per_turn=[good])
        bad.write("a\n")
        good.write("b\n")
        flusher.flush()
        assert (tmp_path / "b").read_text() == "b\n" and (tmp_path / "a").read_text() == ""
        good.write("c\n")
        loop.run_until_complete(asyncio.sleep(0))  # one loop turn: the per-turn writer is flushed
        assert (tmp_path / "b").read_text() == "b\nc\n"
        flusher.close()
        assert flusher.lost == [bad] and bad.unwritten == 2
    finally:
        loop.close()


def test_flusher_retries_a_failed_writer_until_it_works(tmp_path: Any, monkeypatch: Any) -> None:
    disk = FailingDisk(monkeypatch)
    w = LineWriter(str(tmp_path / "j"))
    disk.broken[_fd(w)] = 0
    loop = asyncio.new_event_loop()
    try:
        flusher = Flusher(loop, [], per_turn=[w], retry=0.01)
        w.write("x\n")
        loop.run_until_complete(asyncio.sleep(0))
        assert w.unwritten == 2
        del disk.broken[_fd(w)]

        async def written() -> None:
            while w.unwritten:
                await asyncio.sleep(0.01)

        loop.run_until_complete(asyncio.wait_for(written(), 5))  # no new line: the retry timer writes it
        assert (tmp_path / "j").read_text() == "x\n"
        flusher.close()
        assert flusher.lost == []
    finally:
        loop.close()


def test_journal_writer_flushes_in_the_same_loop_turn(tmp_path: Any) -> None:
    w = LineWriter(str(tmp_path / "journal.jsonl"))
    report = LineWriter(str(tmp_path / "jobs.report"))
    loop = asyncio.new_event_loop()
    try:
        flusher = Flusher(loop, [report], interval=60, per_turn=[w])
        loop.call_soon(w.write, "final\n")
        loop.call_soon(report.write, "r\n")
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0))
        assert (tmp_path / "journal.jsonl").read_text() == "final\n"
        assert (tmp_path / "jobs.report").read_text() == ""  # the report waits for its interval
        flusher.close()
        assert (tmp_path / "jobs.report").read_text() == "r\n"
    finally:
        loop.close()


def test_a_line_cut_by_a_kill_is_not_glued_to_the_next(tmp_path: Any) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"t":"start"}\n{"t":"fin')
    w = LineWriter(str(path))
    w.write('{"t":"start"}\n')
    w.close()
    assert path.read_text().splitlines() == ['{"t":"start"}', '{"t":"fin', '{"t":"start"}']


def test_file_image_is_kept_and_written_later(tmp_path: Any, monkeypatch: Any, caplog: Any) -> None:
    path = str(tmp_path / "final_status")
    failing = {"on": True}
    real_open = auxdir.open_private_fd  # (FileImage writes through auxdir.write_private_file)

    def open_fd(p: str, mode: str = "a") -> int:
        if failing["on"]:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), p)
        return real_open(p, mode)

    monkeypatch.setattr(auxdir, "open_private_fd", open_fd)
    image = FileImage(path)
    assert image.set("{}\n") is False
    assert image.flush() is False
    assert len(_warnings(caplog, path)) == 1
    failing["on"] = False
    assert image.close() is True
    assert (tmp_path / "final_status").read_text() == "{}\n" and not os.path.exists(path + ".tmp")


def test_private_modes_whatever_the_umask(tmp_path: Any) -> None:
    old = os.umask(0)
    try:
        d = str(tmp_path / "aux")
        make_private_dir(d)
        os.close(open_private_fd(os.path.join(d, "f"), "a"))
        w = LineWriter(os.path.join(d, "journal.jsonl"))
        w.close()
        image = FileImage(os.path.join(d, "final_status"))
        image.set("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for name in ("f", "journal.jsonl", "final_status"):
        assert stat.S_IMODE(os.stat(os.path.join(d, name)).st_mode) == 0o600, name


def test_service_log_never_raises_and_keeps_records(tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    path = str(tmp_path / "service.log")
    handler = open_service_log(path, "first", "info")
    disk = FailingDisk(monkeypatch)
    try:
        disk.broken[_fd(handler.writer)] = 0  # type: ignore[attr-defined]
        log = logging.getLogger("qcg_pilotjob.test")
        log.info("one")
        log.info("two")
        err = capsys.readouterr().err
        assert err.count("cannot write") == 1 and "Traceback" not in err
        del disk.broken[_fd(handler.writer)]  # type: ignore[attr-defined]
        log.info("three")
    finally:
        close_service_log(handler)
    lines = (tmp_path / "service.log").read_text().splitlines()
    assert lines[0] == "first" and [ln.split()[-1] for ln in lines[1:4]] == ["one", "two", "three"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_service_log_first_line_fails_cleanly(tmp_path: Any, monkeypatch: Any) -> None:
    path = str(tmp_path / "service.log")

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from qcg_pilotjob.service import logs

    monkeypatch.setattr(logs.os, "write", full)
    with pytest.raises(OSError):
        open_service_log(path, "first", "info")
    assert os.path.getsize(path) == 0


def test_only_regular_files_are_made_private(tmp_path: Any) -> None:
    """``--report-file /dev/stdout`` (or /dev/null) must not change the device's mode."""
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo, 0o644)
    os.chmod(fifo, 0o644)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.close(open_private_fd(fifo, "a"))
    finally:
        os.close(reader)
    assert stat.S_IMODE(os.stat(fifo).st_mode) == 0o644
