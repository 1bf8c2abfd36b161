"""The heartbeat watcher (qcg_pilotjob.protocol.heartbeat) when its own side was busy, and
the request file's turns (qcg_pilotjob.service.requestfile): a governor that registered
ten 100,000-job submits in a row did not listen for 80 s, then took every partition for
lost (their heartbeats were waiting unread), and its partitions took it for hung."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Tuple

import pytest

from qcg_pilotjob.protocol.heartbeat import LOST_AFTER_BEATS, HeartbeatWatcher
from qcg_pilotjob.service import requestfile


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watcher(clock: Clock, lost: List[Tuple[str, str]]) -> HeartbeatWatcher[str]:
    return HeartbeatWatcher(1.0, float(LOST_AFTER_BEATS), send_beat=lambda peer: None,
                            on_lost=lambda peer, why: lost.append((peer, why)), clock=clock)


def test_busy_governor_does_not_lose_partitions_it_could_not_hear() -> None:
    clock, lost = Clock(), []  # type: Clock, List[Tuple[str, str]]
    w = watcher(clock, lost)
    w.watch("a")
    w.watch("b")
    for second in range(1, 6):
        clock.now = float(second)
        w.seen("a")
        w.seen("b")
        w.tick()
    clock.now = 95.0  # 90 s without a tick: this side was busy, not listening
    w.tick()
    assert lost == []
    # listening again: a speaks, b stays silent; b is lost once it was silent for more than
    # LOST_AFTER_BEATS seconds of listening: the second after its last word (a tick is due
    # each second) and the seconds after the stall
    for second in range(96, 96 + LOST_AFTER_BEATS):
        clock.now = float(second)
        w.seen("a")
        w.tick()
        if lost:
            break
    assert [peer for peer, _ in lost] == ["b"]
    assert clock.now == 95.0 + LOST_AFTER_BEATS
    assert w.watched() == ["a"]


def test_a_short_late_tick_still_counts_silence() -> None:
    clock, lost = Clock(), []  # type: Clock, List[Tuple[str, str]]
    w = watcher(clock, lost)
    w.watch("a")
    clock.now = 1.0
    w.tick()
    assert w.stall_after == 10.0
    for second in range(2, LOST_AFTER_BEATS, 8):  # ticks 8 s apart: late, not a stall
        clock.now = float(second)
        w.tick()
    clock.now = LOST_AFTER_BEATS + 1.0
    w.tick()
    assert lost == [("a", f"no message for {LOST_AFTER_BEATS + 1.0:.1f}s")]


def test_a_long_request_file_lets_the_loop_run_between_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    from qcg_pilotjob.protocol import receive

    monkeypatch.setattr(receive, "_clock", clock)
    handled: List[int] = []

    class Front:
        def handle_request(self, req: Dict[str, Any]) -> Dict[str, Any]:
            clock.now += 0.03  # (a big submit takes seconds; here each takes 30 ms)
            handled.append(len(handled))
            return {"code": 0}

    class Journal:
        def record(self, *args: Any, **kwargs: Any) -> None:
            pass

    async def scenario() -> List[int]:
        ran_after: List[int] = []
        loop = asyncio.get_running_loop()
        # a heartbeat: a due timer whose beat leaves in a frame queued for the next turn
        loop.call_later(0, lambda: loop.call_soon(lambda: ran_after.append(len(handled))))
        requests = [{"request": "status"} for _ in range(10)]
        assert await requestfile.process_requests(Front(), Journal(), "reqs.json", requests,  # type: ignore[arg-type]
                                                  0, lambda: False)
        return ran_after

    assert asyncio.run(scenario()) == [2]  # the beat left after the first 50 ms, not after more requests


def test_a_peer_heard_just_after_a_stall_is_not_given_extra_time() -> None:
    """Review finding: a peer whose message was read after the stall but before the late
    tick had its last word moved into the future, and would have been lost 109 s after
    it died instead of 30 s."""
    clock, lost = Clock(), []  # type: Clock, List[Tuple[str, str]]
    w = watcher(clock, lost)
    w.watch("a")
    clock.now = 1.0
    w.tick()
    clock.now = 81.0
    w.seen("a")  # (read before the overdue tick runs)
    w.tick()
    assert w.silence("a") == 0.0


def test_a_receive_loop_fed_without_pause_lets_heartbeats_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A governor fed frames of events by ten busy partitions (10^6 iterations, dry run)
    ran its receive loop alone: a receive of a queued frame does not yield, so no
    heartbeat left for 30 s and the partitions stopped. The loop now yields after 50 ms
    of frames."""
    import zmq

    from qcg_pilotjob.protocol import receive

    clock = Clock()
    monkeypatch.setattr(receive, "_clock", clock)
    handled: List[int] = []

    class Sock:
        async def recv_multipart(self) -> List[bytes]:  # (a frame is always there: no yield)
            if len(handled) == 10:
                raise zmq.ZMQError(zmq.ETERM)
            return [b"peer", b"frame"]

    def handle(frames: List[bytes]) -> None:
        clock.now += 0.03  # (a frame of many events)
        handled.append(len(handled))

    async def scenario() -> List[int]:
        beats: List[int] = []
        loop = asyncio.get_running_loop()
        loop.call_later(0, lambda: loop.call_soon(lambda: beats.append(len(handled))))
        await receive.receive_loop(Sock(), handle, receive.FrameGuard(receive.logging.getLogger("t"), "t"),
                                   lambda frames: "peer")
        return beats

    beats = asyncio.run(scenario())
    assert beats == [2], beats  # (after the first 50 ms of frames, not after all 10)
