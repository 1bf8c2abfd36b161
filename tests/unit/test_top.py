"""``qcg-pm top``'s view, from status replies made by hand (no service)."""

from __future__ import annotations

from typing import Any, Dict, List

from qcg_pilotjob.api.top import TopView


def status(done: int, failed: int, queued: int, running: int, parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"System": {"InstanceId": "r1", "Host": "h", "Uptime": "0:01:02.5"},
            "Resources": {"TotalCores": 4, "UsedCores": running},
            "IterationStats": {"FinishedIterations": done, "FailedIterations": failed, "CanceledIterations": 0,
                               "OmittedIterations": 0, "InScheduleIterations": queued, "ExecutingIterations": running},
            "PartitionStats": parts}


def part(name: str, running: int, done: int, nodes: Dict[str, List[int]]) -> Dict[str, Any]:
    return {"name": name, "state": "live", "host": "h", "cores": 2, "used_cores": running, "queued": 1,
            "running": running, "succeeded": done, "failed": 0, "nodes": nodes}


def test_rate_and_eta_come_from_the_tasks_ended_between_refreshes() -> None:
    view = TopView()
    first = view.figures(status(10, 0, 50, 4, []), now=100.0)
    assert first["rate"] is None and first["eta"] is None   # one sample: no rate yet
    second = view.figures(status(28, 2, 30, 4, []), now=110.0)
    assert second["rate"] == 2.0                            # 20 tasks ended in 10 s
    assert second["eta"] == 17.0                            # 34 left at 2 per second
    last = view.figures(status(64, 0, 0, 0, []), now=120.0)
    assert last["eta"] == 0.0


def test_partitions_in_natural_order_with_their_nodes() -> None:
    parts = [part("partition-10", 1, 5, {"n10": [1, 2]}), part("partition-2", 2, 3, {"n2": [2, 2]})]
    lines = TopView().render(status(8, 0, 2, 3, parts), now=1.0)
    text = "\n".join(lines)
    assert "queued 2  running 3  done 8  failed 0" in text and "cores: 3 of 4 in use" in text
    rows = [line for line in lines if line.startswith("partition-")]
    assert [r.split()[0] for r in rows] == ["partition-2", "partition-10"]
    assert rows[0].split()[2:6] == ["1", "2", "3", "0"]     # queued, running, done, failed
    n2 = next(line for line in lines if line.startswith("n2 "))
    assert "[####################]" in n2 and "2/2" in n2 and "(partition-2)" in n2


def test_many_nodes_are_summed_up() -> None:
    nodes = {f"n{i}": [i % 2, 1] for i in range(40)}
    lines = TopView(max_nodes=8).render(status(0, 0, 0, 20, [part("p", 20, 0, nodes)]), now=1.0)
    assert sum(1 for line in lines if line.startswith("n")) == 8
    assert lines[-1] == "... and 32 more nodes (20 of 40 busy)"
