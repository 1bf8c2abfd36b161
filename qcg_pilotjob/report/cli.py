"""``qcg-pm-report``: the verbs of QCG-PilotJob's command of that name over a run's files.

Every verb takes the run's working dir (its newest run) or its aux dir, works on a run that
is finished or still going, single manager or governor, text or JSON report, and prints
JSON instead of text with ``--json``. ``--verbose`` is accepted for compatibility.

    qcg-pm-report stats WDIR [--details]
    qcg-pm-report jobs WDIR [--state S] [--node N] [--core C] [--sort start|finish|runtime|name|state]
    qcg-pm-report gantt WDIR chart.svg
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import click

from . import stats as st
from .runs import Run, RunError, TaskRun, load_run
from .svg import gantt_svg, gaps_svg, utilisation_svg

__all__ = ["reports"]

_WDIR = click.argument("wdir", type=click.Path(exists=True, file_okay=False, dir_okay=True))


def _common(details: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")(fn)
        fn = click.option("--verbose", is_flag=True, help="accepted for compatibility")(fn)
        if details:
            fn = click.option("--details", is_flag=True, help="also per task, node or core")(fn)
        return fn
    return wrap


def _load(wdir: str) -> Run:
    try:
        return load_run(wdir)
    except RunError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ts: Optional[float]) -> str:
    return str(datetime.datetime.fromtimestamp(ts)) if ts is not None else "???"


def _secs(value: Optional[float]) -> str:
    return f"{value:.2f}" if value is not None else "???"


def _line(label: str, value: Any, width: int = 20) -> None:
    click.echo(f"\t{label:>{width}}: {value}")


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(help=__doc__)
def reports() -> None:
    pass


@reports.command()
@_WDIR
@_common(details=True)
def stats(wdir: str, details: bool, verbose: bool, as_json: bool) -> None:
    """Counts by state, the service's life and overheads, run times and throughput."""
    run = _load(wdir)
    s = st.summary(run)
    if as_json:
        _emit_json(s)
        return
    _line("total jobs", s["total_tasks"])
    _line("failed jobs", s["failed_tasks"])
    for state, count in s["tasks_by_state"].items():
        _line(state.lower(), count)
    _line("total cores", s["total_cores"])
    _line("total nodes", s["total_nodes"])
    _line("service started", _when(s["service_start"]))
    _line("service finished", _when(s["service_finish"]) if run.finished else "(still running)")
    _line("service runtime", f"{_secs(s.get('service_runtime'))} secs")
    if "first_start" in s:
        _line("init overhead", f"{_secs(s.get('init_overhead'))} secs")
        _line("finish overhead", f"{_secs(s.get('finish_overhead'))} secs")
        if "total_overhead" in s:
            _line("total overhead", f"{s['total_overhead']:.2f} secs")
        if "overhead_ratio" in s:
            _line("overhead ratio", f"{s['overhead_ratio']:.1f} %")
        if "overhead_core_hours" in s:
            _line("overhead core-hours", f"{s['overhead_core_hours']:.2f}")
        if s.get("throughput"):
            _line("throughput", f"{s['throughput']:.1f} tasks/s")
    if details:
        _line("first job start", _when(s.get("first_start")))
        _line("last job finish", _when(s.get("last_finish")))
        for what in ("runtime", "queue_time"):
            click.echo(f"\t{what.replace('_', ' ')} statistics (seconds):")
            for key, value in s[what].items():
                _line(key, f"{value:.4f}", 30)


def _task_text(task: TaskRun) -> str:
    lines = [f"{task.name} ({task.state})" + (f" {task.messages}" if task.messages else "")]
    for label, when in (("queued", task.queued), ("started", task.started), ("finished", task.finished)):
        if when is not None:
            lines.append(f"\t{label}: {_when(when)}")
    for label, value in (("nodes", _nodes_text(task)), ("rtime", task.rtime), ("exit_code", task.exit_code),
                         ("pid", task.pid), ("pname", task.pname), ("wd", task.wd), ("partition", task.partition)):
        if value not in (None, ""):
            lines.append(f"\t{label}: {value}")
    return "\n".join(lines) + "\n"


def _nodes_text(task: TaskRun) -> str:
    return ",".join(f"{node}[{':'.join(cores)}]" for node, cores in task.nodes.items())


@reports.command()
@_WDIR
@_common()
def text(wdir: str, verbose: bool, as_json: bool) -> None:
    """Every finished task: state, times, nodes, exit code."""
    run = _load(wdir)
    if as_json:
        _emit_json([t.as_dict() for t in run.tasks])
        return
    for task in run.tasks:
        click.echo(_task_text(task))


def _details(task: TaskRun) -> str:
    runtime = task.rtime if task.rtime is not None else (
        task.finished - task.started if task.ran else None)  # type: ignore[operator]
    waited = task.started - task.queued if task.started is not None and task.queued is not None else None
    code = task.exit_code if task.exit_code is not None else "UNKNOWN"
    state = task.state if task.state == "SUCCEED" else f"{task.state} ({code})"
    rows = [("run-time (s)", runtime), ("in queue (s)", waited), ("queued", _when(task.queued)),
            ("start", _when(task.started)), ("finish", _when(task.finished)), ("nodes", _nodes_text(task) or None),
            ("process id", task.pid), ("process name", task.pname), ("working dir", task.wd),
            ("partition", task.partition), ("state", state)]
    if task.messages:
        rows.append(("messages", task.messages))
    rows += [("history" if i == 0 else "", f"{date}: {state}") for i, (date, state) in enumerate(task.history)]
    return "\n".join([f"\t{task.name}:"] + [f"\t{label:>20}{':' if label else ' '} {value}" for label, value in rows])


@reports.command()
@_WDIR
@click.argument("jobids", type=str, nargs=-1)
@_common()
def job(wdir: str, jobids: Sequence[str], verbose: bool, as_json: bool) -> None:
    """The history, allocation, exit code and wd of the named tasks (a job's iterations: job:i;
    a job with iterations by name: all of them)."""
    run = _load(wdir)
    found: Dict[str, List[TaskRun]] = {}
    for name in jobids:
        found[name] = [t for t in run.tasks if t.name == name or (":" not in name and t.job == name)]
    if as_json:
        _emit_json({name: [t.as_dict() for t in tasks] or None for name, tasks in found.items()})
        return
    for name, tasks in found.items():
        if not tasks:
            click.echo(f"{name}: missing job data")
        for task in tasks:
            click.echo(_details(task))


@reports.command()
@_WDIR
@click.option("--state", type=str, help="only tasks in this state (any case)")
@click.option("--node", type=str, help="only tasks that ran on this node")
@click.option("--core", type=str, help="only tasks that ran on this core (of --node, or of any node)")
@click.option("--sort", type=click.Choice(["start", "finish", "runtime", "name", "state"], case_sensitive=False))
@_common(details=True)
def jobs(wdir: str, state: Optional[str], node: Optional[str], core: Optional[str], sort: Optional[str],
         details: bool, verbose: bool, as_json: bool) -> None:
    """Finished tasks, filtered and sorted."""
    tasks = st.filter_tasks(_load(wdir), state, node, core, sort)
    if as_json:
        _emit_json([t.as_dict() for t in tasks])
        return
    for task in tasks:
        if details:
            click.echo(_details(task))
        else:
            click.echo(f"\t{task.name} state {task.state} run {task.rtime} secs, between {_when(task.started)} - "
                       f"{_when(task.finished)} on nodes {','.join(task.nodes)}")


@reports.command()
@_WDIR
@click.argument("node", type=str)
@click.argument("core", type=str)
@_common()
def allocation(wdir: str, node: str, core: str, verbose: bool, as_json: bool) -> None:
    """The tasks that ran on one core of one node, in start order."""
    tasks = st.filter_tasks(_load(wdir), None, node, core, "start")
    if as_json:
        _emit_json([t.as_dict() for t in tasks])
        return
    click.echo(f"jobs launched on {node}:{core}")
    for task in tasks:
        click.echo(f"\t{task.name} for {task.rtime}, between {_when(task.started)} - {_when(task.finished)}")
        click.echo(f"\t\ton nodes {_nodes_text(task)}")


@reports.command("launch-stats")
@_WDIR
@_common(details=True)
def launch_stats(wdir: str, details: bool, verbose: bool, as_json: bool) -> None:
    """Waits from submit to start, run times, and the lag of end reports."""
    run = _load(wdir)
    report = st.launch_stats(run)
    if details:
        report["tasks"] = {t.name: {"queue_wait": t.started - t.queued, "runtime": t.rtime}
                           for t in run.tasks if t.started is not None and t.queued is not None}
    if as_json:
        _emit_json(report)
        return
    for key, label in (("queue_wait", "wait from submit to start"), ("runtime", "run time"),
                       ("end_report_lag", "end seen after run time")):
        for stat, value in report[key].items():
            _line(f"{label} {stat} (s)", f"{value:.4f}", 40)
    _line("generated for total jobs", report["analysed_tasks"], 40)
    for name, figures in report.get("tasks", {}).items():
        click.echo(f"\t\t{name}: wait {figures['queue_wait']:.4f}, run {figures['runtime']}")


def _print_efficiency(report: Dict[str, Any], details: bool) -> None:
    _line("used cores", report["used_cores"], 40)
    if report.get("not_used_cores"):
        _line("cores that ran nothing", report["not_used_cores"], 40)
        _line("average USED core utilization (%)", f"{report['avg_core_utilization']:.1f}%", 40)
        _line("average ALL cores utilization (%)", f"{report['avg_all_cores_utilization']:.1f}%", 40)
    else:
        _line("average core utilization (%)", f"{report['avg_all_cores_utilization']:.1f}%", 40)
    _line("core-hours used / available", f"{report.get('core_hours_used', 0):.4f} / "
          f"{report.get('core_hours_available', 0):.4f}", 40)
    for node, figures in sorted(report["nodes"].items()):
        part = f" ({figures['partition']})" if figures.get("partition") else ""
        click.echo(f"\t{node}{part}: {figures['utilization']:.1f}%, {figures['core_hours_used']:.4f} of "
                   f"{figures['core_hours_available']:.4f} core-hours")
        if details:
            for core, c in figures["cores"].items():
                click.echo(f"\t\t{core:4}: {c['utilization']:.1f}%, unused {c['unused']:.4f} s")


@reports.command()
@_WDIR
@_common(details=True)
def efficiency(wdir: str, details: bool, verbose: bool, as_json: bool) -> None:
    """Core-hours used against available, per core, per node and overall."""
    report = st.efficiency(_load(wdir))
    if as_json:
        _emit_json(report)
    else:
        _print_efficiency(report, details)


@reports.command()
@_WDIR
@click.option("--wo-init", is_flag=True, help="from the first task's start, not the service's")
@click.option("--until-last-job", is_flag=True, help="each core until its last task ended")
@_common(details=True)
def rusage(wdir: str, wo_init: bool, until_last_job: bool, details: bool, verbose: bool, as_json: bool) -> None:
    """Resource usage: efficiency over a chosen window."""
    report = st.efficiency(_load(wdir), from_first_job=wo_init, until_last_job=until_last_job)
    if as_json:
        _emit_json(report)
        return
    if wo_init:
        click.echo("resource usage is measured from the first job's start, not from the service's start")
    if until_last_job:
        click.echo("resource usage is counted until the last job on each core finished")
    _print_efficiency(report, details)


@reports.command("efficiency-core")
@_WDIR
@click.argument("node", type=str)
@click.argument("core", type=str)
@_common(details=True)
def efficiency_core(wdir: str, node: str, core: str, details: bool, verbose: bool, as_json: bool) -> None:
    """The use of one core: its tasks, busy and idle time."""
    run = _load(wdir)
    report = st.efficiency(run)
    figures = report["nodes"].get(node, {}).get("cores", {}).get(core)
    if figures is None:
        raise click.ClickException(f"{node}:{core}: no such core in this run")
    tasks = st.filter_tasks(run, None, node, core, "start")
    idle = st.gaps(run).get(node, {}).get(core, [])
    data = {"node": node, "core": core, **figures, "tasks": [t.name for t in tasks], "gaps": idle}
    if as_json:
        _emit_json(data)
        return
    _line("core", f"{node}:{core}", 30)
    _line("utilization", f"{figures['utilization']:.1f}%", 30)
    _line("busy / unused (s)", f"{figures['busy']:.4f} / {figures['unused']:.4f}", 30)
    _line("tasks", len(tasks), 30)
    _line("idle spans", len(idle), 30)
    if details:
        for task in tasks:
            click.echo(f"\t\t{task.name}: {_when(task.started)} - {_when(task.finished)}")


def _write_converted(output: str, svg: str) -> None:
    """PNG or PDF where cairosvg happens to be installed (it is not a dependency)."""
    try:
        import cairosvg
    except ImportError:
        raise click.ClickException(f"{output}: PNG and PDF need cairosvg (pip install cairosvg); or write "
                                   f"{output.rsplit('.', 1)[0]}.svg and convert it") from None
    convert = cairosvg.svg2png if output.lower().endswith(".png") else cairosvg.svg2pdf
    try:
        convert(bytestring=svg.encode("utf-8"), write_to=output)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None


def _write_chart(output: str, svg: str, title: str) -> None:
    low = output.lower()
    if low.endswith((".png", ".pdf")):
        _write_converted(output, svg)
        return
    text_ = svg if not low.endswith((".html", ".htm")) else (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n"
        f"<body>\n{svg}</body></html>\n")
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text_)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None


@reports.command()
@_WDIR
@click.argument("output", type=click.Path(file_okay=True, dir_okay=False))
@click.option("--real", is_flag=True, default=True, help="accepted for compatibility")
@_common()
def gantt(wdir: str, output: str, real: bool, verbose: bool, as_json: bool) -> None:
    """A Gantt chart (SVG; .html wraps it in a page): a bar per task on each of its cores."""
    _write_chart(output, gantt_svg(_load(wdir)), "Gantt chart")
    _done(output, as_json)


@reports.command("gantt-gaps")
@_WDIR
@click.argument("output", type=click.Path(file_okay=True, dir_okay=False))
@click.option("--real", is_flag=True, default=True, help="accepted for compatibility")
@click.option("--min-gap", type=float, default=0.0, show_default=True, help="draw idle spans longer than this (s)")
@_common()
def gantt_gaps(wdir: str, output: str, real: bool, min_gap: float, verbose: bool, as_json: bool) -> None:
    """The idle spans of every core (SVG)."""
    _write_chart(output, gaps_svg(_load(wdir), min_gap), "Gaps in core usage")
    _done(output, as_json)


@reports.command()
@_WDIR
@click.argument("output", type=click.Path(file_okay=True, dir_okay=False))
@_common()
def utilisation(wdir: str, output: str, verbose: bool, as_json: bool) -> None:
    """Cores in use over time against the cores of the run (SVG)."""
    _write_chart(output, utilisation_svg(_load(wdir)), "Cores in use")
    _done(output, as_json)


def _done(output: str, as_json: bool) -> None:
    if as_json:
        _emit_json({"output": output})
    else:
        click.echo(f"written {output}")


def main(argv: Optional[List[str]] = None) -> None:
    reports.main(args=argv, prog_name="qcg-pm-report")


if __name__ == "__main__":
    main(sys.argv[1:])
