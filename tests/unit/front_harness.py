"""The harness of the unit tests of qcg_pilotjob.front: a front with a fake partition (messages
collected in a list, events fed back by hand), job descriptions, and the ``h`` fixture (import
``harness``; it is named ``h``)."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

from qcg_pilotjob.front.core import Front, PartitionLink
from qcg_pilotjob.front.journal import Journal
from qcg_pilotjob.front.reports import LineWriter
from qcg_pilotjob.protocol.messages import DispatchMsg, Message, TaskEvent, TaskEventsMsg
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.states import JobState


class Harness:
    def __init__(self, spec: str = "4") -> None:
        self.sent: List[Message] = []
        self.link = PartitionLink(0, "p0", ResourcePool(parse_nodes_spec(spec)), self.sent.append)
        self.front = Front([self.link], instance_id="t", report=LineWriter(None), report_format="json",
                           journal=Journal(LineWriter(None)))

    def req(self, request: str, **fields: Any) -> Dict[str, Any]:
        return self.front.handle_request({"request": request, **fields})

    def submit(self, *jobs: Dict[str, Any]) -> Dict[str, Any]:
        return self.req("submit", jobs=list(jobs))

    def events(self, *events: Tuple[str, Optional[int], JobState], used: int = 0,
               data: Optional[Dict[str, Any]] = None) -> None:
        now = time.time()
        msg = TaskEventsMsg([TaskEvent(j, i, int(s), now, data) for j, i, s in events], used)
        self.front.on_message(self.link, msg)

    def event(self, job: str, it: Optional[int], state: JobState, used: int = 0,
              data: Optional[Dict[str, Any]] = None) -> None:
        self.events((job, it, state), used=used, data=data)

    def ran(self, job: str, it: Optional[int], state: JobState = JobState.SUCCEED, used: int = 0,
            data: Optional[Dict[str, Any]] = None) -> None:
        """The task started, then ended in ``state`` (a task must run to succeed)."""
        self.events((job, it, JobState.EXECUTING), used=used)
        self.events((job, it, state), used=used, data=data)

    def dispatched(self) -> List[Tuple[str, Optional[List[Tuple[int, int]]]]]:
        """Dispatches since the last call."""
        out = [(m.desc.name, m.iterations) for m in self.sent if isinstance(m, DispatchMsg)]
        self.sent[:] = [m for m in self.sent if not isinstance(m, DispatchMsg)]
        return out

    def others(self) -> List[Message]:
        return [m for m in self.sent if not isinstance(m, DispatchMsg)]

    def status(self, name: str) -> str:
        resp = self.req("jobStatus", jobNames=[name])
        entry = resp["data"]["jobs"][name]
        assert entry["status"] == 0, entry
        return entry["data"]["status"]

    def info(self, name: str, **params: Any) -> Dict[str, Any]:
        resp = self.req("jobInfo", jobNames=[name], params=params)
        entry = resp["data"]["jobs"][name]
        assert entry["status"] == 0, entry
        return entry["data"]


def job(name: str, after: Optional[List[str]] = None, iterations: Optional[int] = None,
        **extra: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = {"name": name, "execution": {"exec": "/bin/true"}}
    if after is not None:
        data["dependencies"] = {"after": after}
    if iterations is not None:
        data["iteration"] = {"stop": iterations}
    data.update(extra)
    return data


@pytest.fixture(name="h")
def harness() -> Harness:
    return Harness()
