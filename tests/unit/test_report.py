"""qcg-pm-report's pure parts: reading both report formats, the figures of a run made by
hand (known intervals, known answers), and the SVG charts parsed back as XML."""

from __future__ import annotations

import re
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from click.testing import CliRunner

from qcg_pilotjob.front.registry import format_time
from qcg_pilotjob.front.reports import format_report
from qcg_pilotjob.report import stats
from qcg_pilotjob.report.cli import reports
from qcg_pilotjob.report.runs import Run, TaskRun, parse_report
from qcg_pilotjob.report.svg import gantt_svg, gaps_svg, utilisation_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_800_000_000.0


def entry(name: str, state: str, start: float, end: float, alloc: str, code: int = 0,
          message: Optional[str] = None) -> dict:
    out = {"name": name, "state": state,
           "history": [{"date": format_time(T0), "state": "QUEUED"},
                       {"date": format_time(T0 + start), "state": "SCHEDULED"},
                       {"date": format_time(T0 + start), "state": "EXECUTING"},
                       {"date": format_time(T0 + end), "state": state}],
           "runtime": {"allocation": alloc, "wd": "/w", "pid": "42", "exit_code": str(code),
                       "rtime": str(__import__("datetime").timedelta(seconds=end - start)), "pname": "model"}}
    if message:
        out["messages"] = message
    return out


ENTRIES = [
    entry("a:0", "SUCCEED", 0.0, 5.0, "n0[0]"),
    entry("a:1", "SUCCEED", 5.0, 8.0, "n0[0]"),
    entry("c", "FAILED", 2.0, 6.0, "n0[1],n1[0]", code=3, message="exit code 3"),
    {"name": "a", "state": "SUCCEED", "history": [{"date": format_time(T0), "state": "QUEUED"},
                                                  {"date": format_time(T0 + 8), "state": "SUCCEED"}],
     "iterations": {"start": 0, "stop": 2, "total": 2, "finished": 2, "failed": 0}},
    {"name": "d", "state": "OMITTED", "history": [{"date": format_time(T0), "state": "QUEUED"},
                                                  {"date": format_time(T0 + 6), "state": "OMITTED"}],
     "messages": "a dependency did not succeed"},
]


def run_of(entries: List[dict], fmt: str = "json") -> Run:
    run = Run("/aux", "/aux/jobs.report")
    text = "".join(format_report(e, fmt) for e in entries)
    run.add_entries(parse_report(text.splitlines(keepends=True)))
    run.service_start, run.service_finish = T0, T0 + 10
    run.core_ids = {"n0": ["0", "1"], "n1": ["0", "1"]}
    run.total_cores, run.total_nodes = 4, 2
    return run


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_both_report_formats_read_the_same(fmt: str) -> None:
    run = run_of(ENTRIES, fmt)
    assert [t.name for t in run.tasks] == ["a:0", "a:1", "c", "d"]
    assert run.jobs == {"a": {"start": 0, "stop": 2, "total": 2, "finished": 2, "failed": 0}} if fmt == "json" else \
        run.jobs == {"a": {"total": 2, "finished": 2, "failed": 0}}
    c = run.tasks[2]
    assert (c.job, c.iteration, c.state, c.exit_code, c.pid, c.pname, c.wd) == ("c", None, "FAILED", 3, 42, "model",
                                                                                "/w")
    assert c.nodes == {"n0": ["1"], "n1": ["0"]} and c.cores == 2
    assert c.started == pytest.approx(T0 + 2, abs=1e-5) and c.finished == pytest.approx(T0 + 6, abs=1e-5)
    assert c.rtime == pytest.approx(4.0) and c.messages == "exit code 3"
    a1 = run.tasks[1]
    assert (a1.job, a1.iteration) == ("a", 1)
    d = run.tasks[3]
    assert not d.ran and d.state == "OMITTED" and d.messages == "a dependency did not succeed"
    assert run.job_states == {"c": "FAILED", "a": "SUCCEED", "d": "OMITTED"}


def test_a_line_cut_by_a_kill_is_skipped() -> None:
    text = format_report(ENTRIES[0], "json") + format_report(ENTRIES[1], "json")[:30]
    assert [t.name for t, _ in parse_report(text.splitlines(keepends=True))] == ["a:0"]


def test_summary_counts_and_overheads() -> None:
    s = stats.summary(run_of(ENTRIES))
    assert s["tasks_by_state"] == {"SUCCEED": 2, "FAILED": 1, "CANCELED": 0, "OMITTED": 1}
    assert s["failed_tasks"] == 2 and s["total_tasks"] == 4
    assert s["init_overhead"] == pytest.approx(0.0, abs=1e-5)
    assert s["finish_overhead"] == pytest.approx(2.0, abs=1e-5)   # last end at 8 of 10
    assert s["overhead_ratio"] == pytest.approx(20.0, abs=1e-3)
    assert s["runtime"]["max"] == pytest.approx(5.0) and s["runtime"]["min"] == pytest.approx(3.0)
    assert s["throughput"] == pytest.approx(3 / 8, rel=1e-4)


def test_efficiency_per_core_node_and_overall() -> None:
    e = stats.efficiency(run_of(ENTRIES))
    cores = {(n, c): f["utilization"] for n, v in e["nodes"].items() for c, f in v["cores"].items()}
    assert cores == pytest.approx({("n0", "0"): 80.0, ("n0", "1"): 40.0, ("n1", "0"): 40.0, ("n1", "1"): 0.0},
                                  abs=1e-3)
    assert (e["total_cores"], e["used_cores"], e["not_used_cores"]) == (4, 3, 1)
    assert e["avg_all_cores_utilization"] == pytest.approx(40.0, abs=1e-3)    # 16 of 40 core-seconds
    assert e["avg_core_utilization"] == pytest.approx(16 / 30 * 100, abs=1e-3)  # of the used cores
    assert e["core_hours_used"] == pytest.approx(16 / 3600, rel=1e-4)
    assert e["nodes"]["n0"]["utilization"] == pytest.approx(60.0, abs=1e-3)
    late = stats.efficiency(run_of(ENTRIES), until_last_job=True)  # each core until its last task ended
    assert late["nodes"]["n0"]["cores"]["0"]["utilization"] == pytest.approx(100.0, abs=1e-3)


def test_gaps_and_usage_over_time() -> None:
    run = run_of(ENTRIES)
    idle = stats.gaps(run)
    assert idle["n0"]["0"] == [pytest.approx((T0 + 8, T0 + 10))]
    assert idle["n1"]["1"] == [(T0, T0 + 10)]
    assert idle["n0"]["1"] == [pytest.approx((T0, T0 + 2)), pytest.approx((T0 + 6, T0 + 10))]
    levels = [level for _, level in stats.usage_over_time(run)]
    assert levels == [1, 3, 1, 0]  # a:0 at 0, c (2 cores) at 2, c ends at 6, a:1 at 8 (a:0 -> a:1 at 5: no step)


def test_filter_tasks() -> None:
    run = run_of(ENTRIES)
    assert [t.name for t in stats.filter_tasks(run, state="failed")] == ["c"]
    assert [t.name for t in stats.filter_tasks(run, node="n0", core="0", sort="start")] == ["a:0", "a:1"]
    assert [t.name for t in stats.filter_tasks(run, core="0", sort="runtime")] == ["a:1", "c", "a:0"]
    assert [t.name for t in stats.filter_tasks(run, sort="runtime")][-1] == "d"  # never ran: last


def _bars(svg: str, cls: str) -> List[ET.Element]:
    root = ET.fromstring(svg)
    return [e for e in root.iter(f"{SVG}rect") if cls in (e.get("class") or "").split()]


def test_gantt_has_one_bar_per_task_and_core_and_marks_failures() -> None:
    svg = gantt_svg(run_of(ENTRIES))
    assert len(_bars(svg, "task")) == 4          # a:0, a:1, and c on two cores
    assert len(_bars(svg, "failed")) == 2        # c, on each of its cores
    titles = [e.findtext(f"{SVG}title") for e in _bars(svg, "failed")]
    assert all(t is not None and t.startswith("c FAILED") and "exit code 3" in t for t in titles)
    assert "and 0 more" not in svg and ">a<" in svg and ">c<" in svg   # the legend names the jobs


def test_gantt_of_ten_thousand_tasks_is_valid_and_complete() -> None:
    entries = [entry(f"big:{i}", "SUCCEED", (i // 64) * 0.01, (i // 64) * 0.01 + 0.009, f"n{i % 64 // 16}[{i % 16}]")
               for i in range(10_000)]
    run = run_of(entries)
    run.core_ids = {f"n{n}": [str(c) for c in range(16)] for n in range(4)}
    svg = gantt_svg(run)
    assert len(_bars(svg, "task")) == 10_000
    assert len(_bars(gaps_svg(run), "gap")) >= 64


def test_utilisation_chart_and_charts_of_nothing() -> None:
    root = ET.fromstring(utilisation_svg(run_of(ENTRIES)))
    polygon = next(root.iter(f"{SVG}polygon"))
    points: List[Tuple[float, float]] = [tuple(map(float, p.split(","))) for p in polygon.get("points", "").split()]
    assert len({y for _, y in points}) == 3  # levels 0, 1 and 3 cores
    empty = run_of([ENTRIES[4]])
    for chart in (gantt_svg(empty), utilisation_svg(empty)):
        assert "no task ran" in chart and ET.fromstring(chart) is not None


def test_a_task_name_is_split_into_job_and_iteration() -> None:
    assert (TaskRun("x:y:3", "SUCCEED").job, TaskRun("x:y:3", "SUCCEED").iteration) == ("x:y", 3)
    assert (TaskRun("plain", "SUCCEED").job, TaskRun("plain", "SUCCEED").iteration) == ("plain", None)


def _run_dir(tmp: Path) -> Path:
    aux = tmp / ".qcgpjm-service-t"
    aux.mkdir()
    (aux / "jobs.report").write_text("".join(format_report(e, "json") for e in ENTRIES))
    return tmp


def test_png_through_cairosvg_where_it_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[Tuple[str, str]] = []
    fake = types.ModuleType("cairosvg")
    fake.svg2png = lambda bytestring, write_to: calls.append(("png", write_to))  # type: ignore[attr-defined]
    fake.svg2pdf = lambda bytestring, write_to: calls.append(("pdf", write_to))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cairosvg", fake)
    wd = _run_dir(tmp_path)
    for name in ("g.png", "g.pdf"):
        result = CliRunner().invoke(reports, ["gantt", str(wd), str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert calls == [("png", str(tmp_path / "g.png")), ("pdf", str(tmp_path / "g.pdf"))]
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # not installed: a clear error, no file
    result = CliRunner().invoke(reports, ["gantt", str(wd), str(tmp_path / "h.png")])
    assert result.exit_code == 1 and "PNG and PDF need cairosvg" in result.output
    html = tmp_path / "g.html"
    assert CliRunner().invoke(reports, ["gantt", str(wd), str(html)]).exit_code == 0
    assert html.read_text().startswith("<!DOCTYPE html>") and "<svg" in html.read_text()


def test_job_verb_shows_the_history(tmp_path: Path) -> None:
    result = CliRunner().invoke(reports, ["job", str(_run_dir(tmp_path)), "c"])
    assert result.exit_code == 0
    assert re.search(r"history: \S+ \S+: QUEUED\n\s+\S+ \S+: SCHEDULED\n\s+\S+ \S+: EXECUTING\n\s+\S+ \S+: FAILED",
                     result.output), result.output
