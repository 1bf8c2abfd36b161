"""Unit tests of the refused-peer log (qcg_pilotjob.protocol.refusals): monitor event
sequences as ZMQ emits them, without sockets."""

from __future__ import annotations

import errno
import logging

import pytest
import zmq

from qcg_pilotjob.protocol import refusals as mod
from qcg_pilotjob.protocol.refusals import MECHANISM_MISMATCH, PeerRefusals


def refuse(log: PeerRefusals, fd: int, peer: str, error: int = MECHANISM_MISMATCH) -> object:
    log.on_event(zmq.EVENT_ACCEPTED, fd, peer)
    log.on_event(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, error)
    return log.on_event(zmq.EVENT_DISCONNECTED, fd)


def test_one_line_per_host_however_often_it_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    log = PeerRefusals("client interface")
    with caplog.at_level(logging.WARNING):
        lines = [refuse(log, 10 + i, f"10.1.1.1:{4000 + i}") for i in range(50)]
        lines.append(refuse(log, 99, "10.1.1.2:5000"))
    assert [line for line in lines if line] == [
        f"client interface: refused a peer at 10.1.1.1:4000: {mod._NO_CURVE}",
        f"client interface: refused a peer at 10.1.1.2:5000: {mod._NO_CURVE}"]
    assert len(caplog.records) == 2 and all(r.levelno == logging.WARNING for r in caplog.records)
    assert log.refused == 51
    assert log.summary() == "client interface: 51 connection(s) refused in all, from 2 peer(s)"


def test_a_good_handshake_logs_nothing_and_a_failure_goes_to_the_next_disconnection() -> None:
    log = PeerRefusals("agent channel")
    log.on_event(zmq.EVENT_ACCEPTED, 5, "10.0.0.1:1")
    log.on_event(zmq.EVENT_ACCEPTED, 6, "10.0.0.2:2")
    assert log.on_event(zmq.EVENT_DISCONNECTED, 5) is None  # an agent that left: not a refusal
    line = log.on_event(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0) or log.on_event(zmq.EVENT_DISCONNECTED, 6)
    assert line == ("agent channel: refused a peer at 10.0.0.2:2: it hung up during the handshake (no detail; "
                    "a client without this run's keys does that when it sees the service wants CURVE)")
    assert log.summary() == "agent channel: 1 connection(s) refused in all, from 1 peer(s)"
    assert PeerRefusals("x").summary() is None


def test_protocol_errors_other_than_no_curve_and_unknown_addresses() -> None:
    log = PeerRefusals("client interface")
    line = refuse(log, 3, "", error=0x11000001)
    assert line == ("client interface: refused a peer at an unknown address: its handshake broke the "
                    "protocol (ZMQ protocol error 0x11000001)")
    assert refuse(log, 4, "") is None  # unknown addresses are one peer for the log


def test_wrong_keys_once_per_address_and_key() -> None:
    log = PeerRefusals("authentication")
    assert log.wrong_key("10.0.0.9", "KEY1") == ("authentication: refused a peer at 10.0.0.9: its key is not "
                                                 "this run's (public key KEY1)")
    assert log.wrong_key("10.0.0.9", "KEY1") is None
    assert log.wrong_key("10.0.0.9", "KEY2") is not None
    assert log.refused == 3


def test_a_flood_of_peers_is_logged_up_to_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod, "MAX_LOGGED_PEERS", 3)
    log = PeerRefusals("client interface")
    lines = [refuse(log, i, f"10.2.0.{i}:80") for i in range(10)]
    logged = [line for line in lines if line]
    assert len(logged) == 4
    assert logged[-1] == "client interface: more than 3 peers refused; others are not logged one by one"
    assert log.refused == 10


def test_keyless_client_seen_as_a_hang_up_is_still_one_refusal() -> None:
    """The CI flake of stop 13: a busy service wrote to a keyless client that had already
    hung up (it saw CURVE in the greeting) and ZMQ reported EPIPE, not the mismatch. The
    line names the likely cause and the peer is logged once."""
    log = PeerRefusals("client interface")
    log.on_event(zmq.EVENT_ACCEPTED, 9, "")
    log.on_event(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, errno.EPIPE)
    line = log.on_event(zmq.EVENT_DISCONNECTED, 9)
    assert line is not None and line.startswith("client interface: refused a peer at an unknown address: it hung "
                                                 "up during the handshake (Broken pipe; ")
    assert "without this run's keys" in line
    assert log.refused == 1
