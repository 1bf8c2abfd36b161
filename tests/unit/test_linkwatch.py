"""LinkWatch: the reason a client's request will get no reply, from its socket monitor's
events, without sockets. The event sequences are those libzmq 4.3 gives (checked on
loopback: a service killed, a closed port, keys refused, CURVE on one side only)."""

from __future__ import annotations

from typing import List, Optional, Tuple

import zmq

from qcg_pilotjob.protocol.linkwatch import LinkWatch
from qcg_pilotjob.protocol.refusals import MECHANISM_MISMATCH

ADDRESS = "tcp://10.0.0.5:5555"
UP = [(zmq.EVENT_CONNECT_DELAYED, 115), (zmq.EVENT_CONNECTED, 14), (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0)]
REFUSED_ATTEMPT = [(zmq.EVENT_CONNECT_DELAYED, 115), (zmq.EVENT_CLOSED, 12), (zmq.EVENT_CONNECT_RETRIED, 125)]


def feed(watch: LinkWatch, events: List[Tuple[int, int]]) -> List[str]:
    return [why for kind, value in events for why in [watch.event(kind, value)] if why is not None]


def up_watch(has_keys: bool = True) -> LinkWatch:
    watch = LinkWatch(ADDRESS, has_keys)
    assert feed(watch, UP) == []
    return watch


def test_service_gone_while_a_request_waits() -> None:
    watch = up_watch()
    assert watch.sent() is None
    [why] = feed(watch, [(zmq.EVENT_DISCONNECTED, 14), (zmq.EVENT_CONNECT_RETRIED, 100)])
    assert why.startswith(f"the service at {ADDRESS} closed the connection before it replied")


def test_nothing_listens() -> None:
    watch = LinkWatch(ADDRESS, True)
    assert watch.sent() is None
    whys = feed(watch, REFUSED_ATTEMPT)
    assert whys and whys[0] == f"no service listens at {ADDRESS} (the connection was refused)"


def test_connection_lost_between_requests_then_the_next_request_finds_nothing_listening() -> None:
    """The disconnection is read before the next request (no verdict then); the retry that
    follows a closed connection is no refusal; the failed attempt after it is."""
    watch = up_watch()
    assert feed(watch, [(zmq.EVENT_DISCONNECTED, 14), (zmq.EVENT_CONNECT_RETRIED, 100)]) == []
    assert watch.sent() is None
    assert [w.split(" (")[0] for w in feed(watch, REFUSED_ATTEMPT)] == [f"no service listens at {ADDRESS}"]


def test_ipc_attempt_refused_at_once() -> None:
    """Regression (review): an attempt that fails at once has no CONNECT_DELAYED before its
    CLOSED (ipc, some TCP errors); after a disconnection it was taken for the old connection."""
    watch = up_watch()
    assert feed(watch, [(zmq.EVENT_DISCONNECTED, 14), (zmq.EVENT_CONNECT_RETRIED, 100)]) == []
    watch.sent()
    assert feed(watch, [(zmq.EVENT_CLOSED, 15)]) == [f"no service listens at {ADDRESS} (the connection was refused)"]


def test_a_name_that_does_not_resolve() -> None:
    """ZMQ only schedules retries: no attempt between them."""
    watch = LinkWatch("tcp://no-such-host.invalid:5555", True)
    watch.sent()
    assert feed(watch, [(zmq.EVENT_CONNECT_RETRIED, 100)]) == [
        "cannot connect to tcp://no-such-host.invalid:5555: its host name does not resolve or the address "
        "cannot be used"]


def test_a_service_restarted_between_requests_is_not_blamed() -> None:
    """Events of the old connection, read before the request, give no verdict for it; the
    request waits on the new connection, and a reply ends the wait."""
    watch = up_watch()
    restart = [(zmq.EVENT_DISCONNECTED, 14), (zmq.EVENT_CONNECT_RETRIED, 100), *REFUSED_ATTEMPT, *UP]
    assert feed(watch, restart) == []
    assert watch.sent() is None
    watch.replied()
    assert feed(watch, [(zmq.EVENT_DISCONNECTED, 14)]) == []  # (no request waits)


def test_a_connection_whose_start_was_not_seen_is_no_refusal() -> None:
    """Regression: events before the monitor was attached are not seen; the retry ZMQ
    schedules after such a connection closed was taken for a refused attempt."""
    watch = LinkWatch(ADDRESS, True)
    watch.sent()
    assert feed(watch, [(zmq.EVENT_DISCONNECTED, 14), (zmq.EVENT_CONNECT_RETRIED, 100)]) == []


def test_an_attempt_that_connects_is_no_refusal() -> None:
    watch = LinkWatch(ADDRESS, True)
    watch.sent()
    assert feed(watch, [(zmq.EVENT_CONNECT_DELAYED, 115), (zmq.EVENT_CONNECTED, 14)]) == []


def handshake(kind: int, value: int, has_keys: bool = True) -> Tuple[str, Optional[str]]:
    """The verdict of a failed handshake, and what the next request is told before any event."""
    watch = LinkWatch(ADDRESS, has_keys)
    watch.sent()
    [why] = feed(watch, [(zmq.EVENT_CONNECT_DELAYED, 115), (zmq.EVENT_CONNECTED, 14), (kind, value),
                         (zmq.EVENT_DISCONNECTED, 14), (zmq.EVENT_CONNECT_RETRIED, 100)])
    watch.replied()
    return why, watch.sent()


def test_keys_refused_by_the_service() -> None:
    why, again = handshake(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
    assert why.startswith(f"the service at {ADDRESS} refused this client's keys: they are not this run's")
    assert "~/.qcg-pilotjob" in why and again == why  # (told at once: ZMQ does not try again)


def test_hung_up_during_the_handshake() -> None:
    """A wrong server key, CURVE on one side only when the service hangs up first, or no
    service behind the port (a tunnel): said, not remembered (ZMQ tries again)."""
    why, again = handshake(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32)
    assert why.startswith(f"the service at {ADDRESS} hung up during the handshake (EPIPE): this client's keys are "
                          "not this run's")
    assert "the service does not use CURVE" in why and "no qcg_pilotjob service" in why and again is None
    why, _ = handshake(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104, has_keys=False)
    assert why.startswith(f"the service at {ADDRESS} hung up during the handshake (ECONNRESET): most likely it "
                          "uses CURVE and this client has no keys for it")


def test_a_handshake_that_timed_out_is_no_verdict() -> None:
    """Regression (review): a service slow to authenticate (past ZMQ's handshake interval)
    was reported as refusing the keys, and the next request failed at once."""
    watch = LinkWatch(ADDRESS, True)
    watch.sent()
    assert feed(watch, [(zmq.EVENT_CONNECT_DELAYED, 115), (zmq.EVENT_CONNECTED, 14),
                        (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 11), (zmq.EVENT_DISCONNECTED, 14),
                        (zmq.EVENT_CONNECT_RETRIED, 100), *UP]) == []
    watch.replied()
    assert watch.sent() is None


def test_curve_on_one_side_only() -> None:
    why, _ = handshake(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, MECHANISM_MISMATCH, has_keys=False)
    assert why.startswith(f"the service at {ADDRESS} uses CURVE and this client has no keys for it")
    why, _ = handshake(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, MECHANISM_MISMATCH, has_keys=True)
    assert why.startswith(f"the service at {ADDRESS} does not use CURVE, but this client has keys")
    why, _ = handshake(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, 0x10000011)
    assert why.startswith(f"the handshake with {ADDRESS} failed (ZMQ protocol error 0x10000011)")


def test_a_handshake_that_passes_clears_an_earlier_refusal() -> None:
    _, again = handshake(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
    assert again is not None
    watch = LinkWatch(ADDRESS, True)
    feed(watch, [(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400), *UP])
    assert watch.sent() is None
