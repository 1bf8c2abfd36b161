"""Every ZMQ socket of qcg_pilotjob is made here.

Socket options (linger, message size limit, high-water marks, timeouts) and, next,
authentication are set in one place. Servers are asyncio sockets; clients (the Python API)
are blocking ones. Sends on an asyncio socket go through that socket itself (see
:class:`.batch.BatchSender`), never through a blocking shadow of it.

>>> parse_address("host")
'tcp://host:5555'
>>> parse_address("ipc:///tmp/x")
'ipc:///tmp/x'
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import socket
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Set, Tuple

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from .linkwatch import LINK_EVENTS
from .receive import FrameGuard, receive_loop
from .refusals import MONITORED_EVENTS, PeerRefusals

if TYPE_CHECKING:
    from ..keys import RunKeys

_log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PORT",
    "MAX_MESSAGE_SIZE",
    "Authenticator",
    "async_context",
    "bind_publisher",
    "bind_request_server",
    "close_server",
    "connect_dealer",
    "connect_requester",
    "connect_subscriber",
    "connect_watched_requester",
    "external_address",
    "link_events",
    "listen_host",
    "parse_address",
    "secure_client",
    "secure_server",
    "start_authenticator",
    "sync_context",
    "unwatch",
]

#: Largest message a server accepts; a peer sending more is disconnected by ZMQ.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: Port used when an address has none (QCG-PilotJob's default).
DEFAULT_PORT = 5555
_HWM = 100_000


def async_context() -> zmq.asyncio.Context:
    return zmq.asyncio.Context.instance()


def sync_context() -> zmq.Context[Any]:
    return zmq.Context.instance()


def parse_address(address: str, default_port: int = DEFAULT_PORT) -> str:
    """``[proto://]host[:port]`` with ``tcp`` and ``default_port`` (5555) as defaults."""
    if not re.match(r"\w+://", address):
        address = f"tcp://{address}"
    if address.startswith("tcp://") and not re.search(r":\d+$", address):
        address = f"{address}:{default_port}"
    return address


def external_address(endpoint: str) -> str:
    """Replace a wildcard bind address by one other hosts (and local tasks) can use."""
    if "//0.0.0.0:" in endpoint or "//*:" in endpoint:
        try:
            ip = socket.gethostbyname(socket.gethostname())
        except OSError:
            ip = "127.0.0.1"
        endpoint = re.sub(r"//(0\.0\.0\.0|\*):", f"//{ip}:", endpoint)
    return endpoint


def listen_host(in_allocation: bool, override: Optional[str] = None) -> str:
    """Where a service listens: ``override`` if given (``*`` for every interface); inside
    a Slurm allocation the node's own address (other nodes reach it there); elsewhere
    loopback only (its clients are on this host).

    >>> listen_host(False)
    '127.0.0.1'
    >>> listen_host(False, "*")
    '*'
    """
    if override:
        return override
    if not in_allocation:
        return "127.0.0.1"
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "*"


def _server_options(sock: zmq.Socket[Any]) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_SIZE)
    sock.setsockopt(zmq.SNDHWM, _HWM)
    sock.setsockopt(zmq.RCVHWM, _HWM)


def _bind(sock: zmq.Socket[Any], host: str, port: Optional[int], port_min: int,
          port_max: int) -> int:
    if port is not None:
        sock.bind(f"tcp://{host}:{port}")
        return port
    return int(sock.bind_to_random_port(f"tcp://{host}", min_port=port_min, max_port=port_max + 1, max_tries=200))


def _bound(ctx: zmq.asyncio.Context, kind: int, host: str, port: Optional[int], port_min: int,
           port_max: int, keys: Optional[RunKeys], what: str) -> Tuple[zmq.asyncio.Socket, str]:
    sock = ctx.socket(kind)
    _server_options(sock)
    if keys is not None:
        secure_server(sock, keys)
    try:
        bound = _bind(sock, host, port, port_min, port_max)
    except zmq.ZMQError:
        sock.close()
        raise
    if keys is not None:
        _watches[id(sock)] = _RefusalWatch(sock, what)
    return sock, external_address(f"tcp://{host}:{bound}")


#: milliseconds a server's queued replies get to leave when it is closed: the reply to
#: ``finish`` is queued just before the shutdown closes the socket (see :func:`release`)
CLOSE_LINGER_MS = 1000


def release() -> None:
    """End this process's ZMQ contexts, giving what is still queued :data:`CLOSE_LINGER_MS`
    to leave (sockets left open are closed with that linger). Without it the process could
    exit with its last messages (the reply to ``finish``) still queued: nothing waits for
    ZMQ's I/O thread at exit, and a client waited its whole timeout for that reply."""
    for cls in (zmq.asyncio.Context, zmq.Context):
        ctx = getattr(cls, "_instance", None)
        if ctx is not None and not ctx.closed:
            ctx.destroy(linger=CLOSE_LINGER_MS)


def close_server(sock: zmq.Socket[Any]) -> None:
    """Close a server made here (and its watch of refused peers), letting queued replies
    leave for up to :data:`CLOSE_LINGER_MS`."""
    watch = _watches.pop(id(sock), None)
    if watch is not None:
        watch.close(sock)
    sock.close(linger=CLOSE_LINGER_MS)


def bind_request_server(ctx: zmq.asyncio.Context, host: str = "*", port: Optional[int] = None,
                        port_min: int = 2222, port_max: int = 9999, keys: Optional[RunKeys] = None,
                        what: str = "client interface") -> Tuple[zmq.asyncio.Socket, str]:
    """A ROUTER socket that answers REQ clients (and partitions' or agents' DEALERs);
    returns it and its external address. With ``keys`` it is a CURVE server, and the peers
    it refuses are logged as ``what``. Close it with :func:`close_server`."""
    return _bound(ctx, zmq.ROUTER, host, port, port_min, port_max, keys, what)


def bind_publisher(ctx: zmq.asyncio.Context, host: str = "*", port: Optional[int] = None,
                   port_min: int = 2222, port_max: int = 9999, keys: Optional[RunKeys] = None
                   ) -> Tuple[zmq.asyncio.Socket, str]:
    """An XPUB socket for status events (a PUB that also reads its subscribers' topics, so
    that events nobody subscribed to need not be made); returns it and its external
    address. Close it with :func:`close_server`."""
    return _bound(ctx, zmq.XPUB, host, port, port_min, port_max, keys, "event publisher")


def connect_requester(ctx: zmq.Context[Any], address: str, timeout_ms: Optional[int] = None,
                      keys: Optional[RunKeys] = None) -> zmq.Socket[Any]:
    """A REQ socket to a service. With ``timeout_ms`` a send or receive that takes longer
    raises ``zmq.Again``; the socket may then be used again (REQ_RELAXED)."""
    sock = _requester(ctx, timeout_ms, keys)
    try:
        sock.connect(address)
    except zmq.ZMQError:
        sock.close(linger=0)
        raise
    return sock


def connect_watched_requester(ctx: zmq.Context[Any], address: str, timeout_ms: Optional[int] = None,
                              keys: Optional[RunKeys] = None) -> Tuple[zmq.Socket[Any], zmq.Socket[Any]]:
    """:func:`connect_requester`, and the monitor of its connection: the events
    :class:`.linkwatch.LinkWatch` follows, from the first connection attempt on (read them
    with :func:`link_events`; close with :func:`unwatch`)."""
    sock = _requester(ctx, timeout_ms, keys)
    monitor: zmq.Socket[Any] = sock.get_monitor_socket(LINK_EVENTS, _monitor_address())
    monitor.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(address)
    except zmq.ZMQError:
        unwatch(sock, monitor)
        sock.close(linger=0)
        raise
    return sock, monitor


def _requester(ctx: zmq.Context[Any], timeout_ms: Optional[int], keys: Optional[RunKeys]) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.REQ_RELAXED, 1)
    sock.setsockopt(zmq.REQ_CORRELATE, 1)
    if timeout_ms is not None:
        sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    if keys is not None:
        secure_client(sock, keys)
    return sock


_monitors = itertools.count()


def _monitor_address() -> str:
    """A monitor's inproc address, never used before in this process. (pyzmq's default
    names it by the socket's descriptor: a socket made right after another closed may get
    the same one while the old monitor is still being closed, and its events.)"""
    return f"inproc://qcgpj-monitor-{os.getpid()}-{next(_monitors)}"


def link_events(monitor: zmq.Socket[Any]) -> List[Tuple[int, int]]:
    """The events waiting on ``monitor`` (kind, value), without blocking."""
    out: List[Tuple[int, int]] = []
    while True:
        try:
            frames = monitor.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return out
        event = parse_monitor_message(frames)
        out.append((int(event["event"]), int(event["value"])))


def unwatch(sock: zmq.Socket[Any], monitor: zmq.Socket[Any]) -> None:
    with contextlib.suppress(zmq.ZMQError):
        sock.disable_monitor()
    monitor.close(linger=0)


def connect_subscriber(ctx: zmq.Context[Any], address: str, topics: Iterable[str],
                       keys: Optional[RunKeys] = None) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, _HWM)
    if keys is not None:
        secure_client(sock, keys)
    for topic in topics:
        sock.setsockopt_string(zmq.SUBSCRIBE, topic)
    sock.connect(address)
    return sock


def connect_dealer(ctx: zmq.asyncio.Context, address: str, identity: str, keys: Optional[RunKeys] = None
                   ) -> zmq.asyncio.Socket:
    """A DEALER to a ROUTER peer: a partition's to its governor, a node agent's to its
    partition; ``identity`` names it in the peer's ROUTER."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, _HWM)
    sock.setsockopt(zmq.RCVHWM, _HWM)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_SIZE)
    sock.setsockopt(zmq.ROUTING_ID, identity.encode())
    if keys is not None:
        secure_client(sock, keys)
    sock.connect(address)
    return sock



# --- CURVE -----------------------------------------------------------------------------------
def secure_server(sock: Any, keys: RunKeys) -> None:
    """Make ``sock`` (before it binds) a CURVE server with the run's server key."""
    assert keys.server_secret is not None, "only the service holds the server's secret key"
    sock.curve_secretkey = keys.server_secret
    sock.curve_publickey = keys.server_public
    sock.curve_server = True


def secure_client(sock: Any, keys: RunKeys) -> None:
    """Make ``sock`` (before it connects) a CURVE client of the run's server."""
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey = keys.client_public
    sock.curve_secretkey = keys.client_secret


# --- refused peers ---------------------------------------------------------------------------
def _peer_of(fd: int) -> str:
    """The address of the peer on a socket descriptor ZMQ just accepted (never raises)."""
    try:
        dup = os.dup(fd)
    except OSError:
        return ""  # (closed already: a peer refused at once often is)
    try:
        with socket.socket(fileno=dup) as conn:
            if conn.family == socket.AF_UNIX:
                return "a local process (ipc)"
            host, port = conn.getpeername()[:2]
            return f"{host}:{port}"
    except OSError:
        return ""


class _RefusalWatch:
    """Reads a CURVE server's socket monitor and logs the peers its handshake refused."""

    def __init__(self, sock: zmq.Socket[Any], what: str) -> None:
        self.refusals = PeerRefusals(what)
        self.monitor: zmq.Socket[Any] = sock.get_monitor_socket(MONITORED_EVENTS, _monitor_address())
        self.monitor.setsockopt(zmq.LINGER, 0)
        self.task: Optional[asyncio.Task[None]] = None
        with contextlib.suppress(RuntimeError):  # (a server made outside an event loop is not watched)
            self.task = asyncio.get_running_loop().create_task(
                receive_loop(self.monitor, self._event, FrameGuard(_log, f"{what} monitor"), lambda _: "ZMQ"))

    def _event(self, frames: List[bytes]) -> None:
        event = parse_monitor_message(frames)
        value = int(event["value"])
        peer = _peer_of(value) if event["event"] == zmq.EVENT_ACCEPTED else None
        self.refusals.on_event(int(event["event"]), value, peer)

    def close(self, sock: zmq.Socket[Any]) -> None:
        summary = self.refusals.summary()
        if summary:
            _log.info("%s", summary)
        if self.task is not None:
            self.task.cancel()
        with contextlib.suppress(zmq.ZMQError):
            sock.disable_monitor()
        self.monitor.close(linger=0)


_watches: Dict[int, _RefusalWatch] = {}


class _Allowed:
    """ZAP credentials: the client keys of the runs served by this context; each other key
    is logged once per peer address."""

    def __init__(self) -> None:
        self.allowed: Set[bytes] = set()
        self.refusals = PeerRefusals("authentication")
        self.address = "an unknown address"  # of the request being answered (set by the handler)

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.allowed:
            return True
        self.refusals.wrong_key(self.address, key.decode("ascii", "replace"))
        return False


class Authenticator:
    """The one ZAP handler of a context (ZMQ allows one per context), shared by the
    servers made on it (the service's interface, a partition's agent channel): each adds
    its client key with :func:`start_authenticator` and releases it with :meth:`stop`."""

    _by_context: Dict[int, Authenticator] = {}

    def __init__(self, ctx: zmq.asyncio.Context) -> None:
        from zmq.auth.asyncio import AsyncioAuthenticator

        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.allowed = _Allowed()
        self.users = 0
        allowed = self.allowed

        class _Handler(AsyncioAuthenticator):  # notes each request's peer address for the log
            def handle_zap_message(self, msg: List[bytes]) -> Any:
                allowed.address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else "an unknown address"
                return super().handle_zap_message(msg)

        self.zap = _Handler(ctx)
        self.zap.start()
        self.zap.configure_curve_callback("*", self.allowed)

    def stop(self) -> None:
        self.users -= 1
        if self.users <= 0 and Authenticator._by_context.get(id(self.ctx)) is self:
            del Authenticator._by_context[id(self.ctx)]
            self.zap.stop()


def start_authenticator(ctx: zmq.asyncio.Context, keys: RunKeys) -> Authenticator:
    """Admit CURVE clients holding ``keys``' client key on the servers of ``ctx``. Call
    ``.stop()`` on the result when that server closes. (The handler answers on the running
    event loop: one left from another loop is replaced.)"""
    auth = Authenticator._by_context.get(id(ctx))
    if auth is not None and auth.loop is not asyncio.get_running_loop():
        del Authenticator._by_context[id(ctx)]
        with contextlib.suppress(Exception):
            auth.zap.stop()
        auth = None
    if auth is None:
        auth = Authenticator._by_context[id(ctx)] = Authenticator(ctx)
    auth.users += 1
    auth.allowed.allowed.add(keys.client_public)
    return auth
