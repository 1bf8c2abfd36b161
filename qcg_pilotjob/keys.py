"""The keys of a run: CURVE keys made per run, and where their owner's clients find them.

A service makes one :class:`RunKeys` per run: a server key pair (its sockets) and a client
key pair (everything of the owner that talks to it: the Python API, ``qcg-pm``, tasks,
partitions, node agents). The client part is written, never on a command line:

- ``<aux dir>/keys`` (mode 0600, in the 0700 aux dir);
- ``~/.qcg-pilotjob/<endpoint>.keys`` (a per-user private directory, mode 0700, on the
  shared home of a cluster), so ``Manager("tcp://host:port")`` finds them by address;
- the variable ``QCG_PM_ZMQ_KEYS`` in a task's environment (and in the environment of an
  srun step that starts a partition or an agent).

The text form is three z85 keys separated by spaces: server public, client public,
client secret (the server's secret key never leaves the service).

>>> keys = RunKeys.new()
>>> RunKeys.from_text(keys.client_text()) == keys.for_clients()
True
>>> endpoint_file_name("tcp://10.0.0.1:2222")
'tcp_10.0.0.1_2222.keys'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Mapping, Optional

import zmq

from .auxdir import make_private_dir, write_private_file

__all__ = ["AGENT_KEYS_ENV", "ENV", "KEYS_FILE", "RunKeys", "endpoint_file_name", "find_keys", "save_user_keys",
           "user_key_dir"]

#: the variable that hands the client keys to tasks and to srun steps
ENV = "QCG_PM_ZMQ_KEYS"
#: the client keys of a partition's agent channel, in its node agents' srun step environment
AGENT_KEYS_ENV = "QCG_PM_AGENT_KEYS"
#: the client keys' file in an aux dir
KEYS_FILE = "keys"


@dataclass(frozen=True)
class RunKeys:
    server_public: bytes
    client_public: bytes
    client_secret: bytes
    server_secret: Optional[bytes] = None  # only in the service itself

    @classmethod
    def new(cls) -> RunKeys:
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        return cls(server_public, client_public, client_secret, server_secret)

    def for_clients(self) -> RunKeys:
        """The part a client may hold (no server secret)."""
        return replace(self, server_secret=None)

    def client_text(self) -> str:
        return " ".join(k.decode("ascii") for k in (self.server_public, self.client_public, self.client_secret))

    @classmethod
    def from_text(cls, text: str) -> Optional[RunKeys]:
        """Keys from their text form; None if it is not three z85 keys."""
        parts = text.split()
        if len(parts) != 3 or not all(re.fullmatch(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}", p) for p in parts):
            return None
        return cls(*(p.encode("ascii") for p in parts))


def user_key_dir(home: Optional[str] = None) -> str:
    return os.path.join(home or os.path.expanduser("~"), ".qcg-pilotjob")


def endpoint_file_name(address: str) -> str:
    return re.sub(r"[^0-9A-Za-z.\-]+", "_", address.replace("://", "_")) + ".keys"


def _write_private(path: str, text: str) -> None:
    """Write ``path`` whole (a new copy replaces the old), 0600."""
    write_private_file(path, text.encode("ascii") + b"\n")


def save_aux_keys(aux: str, keys: RunKeys) -> str:
    path = os.path.join(aux, KEYS_FILE)
    _write_private(path, keys.client_text())
    return path


def save_user_keys(address: str, keys: RunKeys, home: Optional[str] = None) -> str:
    """Write the client keys for ``address`` into the user's private key directory."""
    folder = user_key_dir(home)
    make_private_dir(folder)
    path = os.path.join(folder, endpoint_file_name(address))
    _write_private(path, keys.client_text())
    return path


def _read(path: str) -> Optional[RunKeys]:
    try:
        with open(path, encoding="ascii") as fh:
            return RunKeys.from_text(fh.read())
    except (OSError, UnicodeDecodeError):
        return None


def find_keys(address: str, aux: Optional[str] = None, environ: Optional[Mapping[str, str]] = None,
              home: Optional[str] = None) -> Optional[RunKeys]:
    """The client keys for ``address``: from the aux dir if given, else the user's key
    directory, else ``QCG_PM_ZMQ_KEYS`` (a task talking to its own service)."""
    if aux is not None:
        found = _read(os.path.join(aux, KEYS_FILE))
        if found is not None:
            return found
    found = _read(os.path.join(user_key_dir(home), endpoint_file_name(address)))
    if found is not None:
        return found
    env = os.environ if environ is None else environ
    text = env.get(ENV)
    return RunKeys.from_text(text) if text else None


__all__ += ["save_aux_keys"]
