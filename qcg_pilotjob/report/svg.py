"""Charts of a run as SVG text, with no plotting library: a Gantt chart (a bar per task on
each core it had, coloured by job, failed tasks outlined in red and crossed), the same with
the idle gaps of each core, and the cores in use over time.

Each bar has a ``<title>`` (a browser shows the task's name, state and times on hover) and
the classes ``task`` and ``failed`` (tests count them). Rows are ``node:core``; with many
rows the labels name nodes only.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

from .runs import Run, TaskRun
from .stats import gaps, usage_over_time, window

__all__ = ["gantt_svg", "gaps_svg", "utilisation_svg"]

WIDTH = 1200
LEFT, RIGHT, TOP = 110, 200, 40
#: colours of jobs, in order of their first task (then again)
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
           "#86bcb6", "#8cd17d", "#499894", "#d4a6c8", "#fabfd2", "#79706e", "#d37295")
FAILED_STROKE = "#d62728"
MAX_LEGEND = 20


def _ticks(span: float, width: float) -> Tuple[float, int]:
    """A round step for the time axis (about one tick per 100 px) and its decimals."""
    raw = span / max(1.0, width / 100)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step, max(0, -math.floor(math.log10(step)))


def _axis(lo: float, hi: float, x0: float, width: float, y: float, rows_top: float) -> List[str]:
    out = [f'<line x1="{x0}" y1="{y}" x2="{x0 + width}" y2="{y}" stroke="#333"/>']
    step, decimals = _ticks(hi - lo, width)
    t = 0.0
    while t <= hi - lo + 1e-9:
        x = x0 + width * t / (hi - lo)
        out.append(f'<line x1="{x:.1f}" y1="{rows_top}" x2="{x:.1f}" y2="{y + 4}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 16}" text-anchor="middle">{t:.{decimals}f}</text>')
        t += step
    out.append(f'<text x="{x0 + width / 2}" y="{y + 34}" text-anchor="middle">'
               'seconds since the start of the run</text>')
    return out


def _rows(run: Run, tasks: Iterable[TaskRun]) -> List[Tuple[str, str]]:
    """(node, core) rows: the run's cores where known, then any a task used."""
    rows: Dict[Tuple[str, str], None] = {}
    for node, cores in sorted(run.core_ids.items()):
        rows.update({(node, c): None for c in cores})
    for task in tasks:
        for node, cores in task.nodes.items():
            rows.update({(node, c): None for c in cores})
    return sorted(rows, key=lambda r: (r[0], int(r[1]) if r[1].isdigit() else 0, r[1]))


def _frame(title: str, height: float, body: Sequence[str]) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" font-family="sans-serif" font-size="11">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>\n')
    return head + "\n".join(body) + "\n</svg>\n"


def _layout(nrows: int) -> Tuple[float, bool]:
    """Row height (at most 18 px, at least 1 px in a chart of at most ~2,400 px) and whether
    each row gets its own label."""
    height = max(1.0, min(18.0, 2400.0 / max(1, nrows)))
    return height, height >= 9


def _row_labels(rows: List[Tuple[str, str]], top: float, row_h: float, each: bool) -> List[str]:
    out = []
    last = None
    for i, (node, core) in enumerate(rows):
        y = top + i * row_h
        if each:
            out.append(f'<text x="{LEFT - 6}" y="{y + row_h * 0.75:.1f}" text-anchor="end">'
                       f'{escape(node)}:{escape(core)}</text>')
        elif node != last:
            out.append(f'<text x="{LEFT - 6}" y="{y + 9:.1f}" text-anchor="end">{escape(node)}</text>')
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
        last = node
    return out


def _time(run: Run, when: Optional[float]) -> str:
    start = run.service_start
    return "?" if when is None else (f"{when - start:.3f} s" if start is not None else f"{when:.3f}")


def gantt_svg(run: Run, title: Optional[str] = None) -> str:
    """A bar per task and core it ran on, coloured by job; failed ones outlined in red."""
    ran = [t for t in run.tasks if t.ran]
    win = window(run)
    rows = _rows(run, ran)
    row_h, each = _layout(len(rows))
    width = WIDTH - LEFT - RIGHT
    body: List[str] = []
    if win is None or not ran:
        body.append(f'<text x="{LEFT}" y="{TOP + 20}">no task ran</text>')
        return _frame(title or "Gantt chart", TOP + 60, body)
    lo, hi = win
    index = {row: i for i, row in enumerate(rows)}
    colours: Dict[str, str] = {}
    for task in sorted(ran, key=lambda t: t.started or 0):
        colours.setdefault(task.job, PALETTE[len(colours) % len(PALETTE)])
    bottom = TOP + len(rows) * row_h + 8
    body += _axis(lo, hi, LEFT, width, bottom, TOP)  # (first: its grid lies under the bars)
    body += _row_labels(rows, TOP, row_h, each)
    for task in ran:
        assert task.started is not None and task.finished is not None
        x = LEFT + width * (task.started - lo) / (hi - lo)
        w = max(0.5, width * (task.finished - task.started) / (hi - lo))
        failed = task.state != "SUCCEED"
        tip = escape(f"{task.name} {task.state}: {_time(run, task.started)} - {_time(run, task.finished)}"
                     + (f", exit code {task.exit_code}" if task.exit_code not in (None, 0) else ""))
        for node, cores in task.nodes.items():
            for core in cores:
                y = TOP + index[(node, core)] * row_h
                stroke = f' stroke="{FAILED_STROKE}" stroke-width="1.5"' if failed else ""
                body.append(f'<rect class="task{" failed" if failed else ""}" x="{x:.2f}" y="{y + 0.1 * row_h:.2f}" '
                            f'width="{w:.2f}" height="{0.8 * row_h:.2f}" fill="{colours[task.job]}"{stroke}>'
                            f'<title>{tip}</title></rect>')
                if failed and w >= 4 and row_h >= 4:
                    body.append(f'<path d="M{x:.2f},{y + 0.1 * row_h:.2f} l{w:.2f},{0.8 * row_h:.2f} '
                                f'M{x:.2f},{y + 0.9 * row_h:.2f} l{w:.2f},{-0.8 * row_h:.2f}" '
                                f'stroke="{FAILED_STROKE}" stroke-width="1"/>')
    body += _legend(colours, any(t.state != "SUCCEED" for t in ran), bottom)
    return _frame(title or f"Gantt chart: {len(ran)} tasks on {len(rows)} cores",
                  max(bottom + 50, _legend_end(colours)), body)


def _legend(colours: Dict[str, str], with_failed: bool, bottom: float) -> List[str]:
    x = WIDTH - RIGHT + 16
    out = [f'<text x="{x}" y="{TOP + 4}" font-weight="bold">jobs</text>']
    items = list(colours.items())
    for i, (job, colour) in enumerate(items[:MAX_LEGEND]):
        y = TOP + 12 + i * 16
        out.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 18}" y="{y + 10}">{escape(job[:24])}</text>')
    y = TOP + 12 + min(len(items), MAX_LEGEND) * 16
    if len(items) > MAX_LEGEND:
        out.append(f'<text x="{x}" y="{y + 10}">and {len(items) - MAX_LEGEND} more jobs</text>')
        y += 16
    if with_failed:
        out.append(f'<rect x="{x}" y="{y + 4}" width="12" height="12" fill="#fff" stroke="{FAILED_STROKE}" '
                   f'stroke-width="1.5"/><text x="{x + 18}" y="{y + 14}">did not succeed</text>')
    return out


def _legend_end(colours: Dict[str, str]) -> float:
    return TOP + 12 + (min(len(colours), MAX_LEGEND) + 3) * 16


def gaps_svg(run: Run, min_gap: float = 0.0) -> str:
    """The idle spans of every core (grey), with the busy ones light: where the allocation
    waited."""
    idle = gaps(run, min_gap)
    win = window(run)
    rows = [(node, core) for node in idle for core in idle[node]]
    row_h, each = _layout(len(rows))
    width = WIDTH - LEFT - RIGHT
    body: List[str] = []
    if win is None or not rows:
        body.append(f'<text x="{LEFT}" y="{TOP + 20}">no core was used</text>')
        return _frame("Gaps in core usage", TOP + 60, body)
    lo, hi = win
    bottom = TOP + len(rows) * row_h + 8
    body += _axis(lo, hi, LEFT, width, bottom, TOP)
    body += _row_labels(rows, TOP, row_h, each)
    total = 0.0
    for i, (node, core) in enumerate(rows):
        y = TOP + i * row_h
        body.append(f'<rect x="{LEFT}" y="{y + 0.1 * row_h:.2f}" width="{width}" height="{0.8 * row_h:.2f}" '
                    'fill="#e3eef9"/>')
        for a, b in idle[node][core]:
            total += b - a
            x, w = LEFT + width * (a - lo) / (hi - lo), max(0.5, width * (b - a) / (hi - lo))
            body.append(f'<rect class="gap" x="{x:.2f}" y="{y + 0.1 * row_h:.2f}" width="{w:.2f}" '
                        f'height="{0.8 * row_h:.2f}" fill="#7f7f7f"><title>{escape(node)}:{escape(core)} idle '
                        f'{b - a:.3f} s</title></rect>')
    x = WIDTH - RIGHT + 16
    body += [f'<rect x="{x}" y="{TOP + 12}" width="12" height="12" fill="#7f7f7f"/>',
             f'<text x="{x + 18}" y="{TOP + 22}">idle</text>',
             f'<rect x="{x}" y="{TOP + 28}" width="12" height="12" fill="#e3eef9"/>',
             f'<text x="{x + 18}" y="{TOP + 38}">busy</text>',
             f'<text x="{x}" y="{TOP + 60}">{total / 3600:.4f} idle core-hours</text>']
    return _frame(f"Gaps in core usage: {len(rows)} cores", max(bottom + 50, TOP + 80), body)


def utilisation_svg(run: Run) -> str:
    """Cores in use over time (a filled step line) against the cores the run had."""
    steps = usage_over_time(run)
    win = window(run)
    width, height = WIDTH - LEFT - RIGHT, 300
    body: List[str] = []
    if win is None or not steps:
        body.append(f'<text x="{LEFT}" y="{TOP + 20}">no task ran</text>')
        return _frame("Cores in use", TOP + 60, body)
    lo, hi = win
    top_cores = max(run.total_cores or 0, max(level for _, level in steps), 1)

    def xy(t: float, level: int) -> str:
        return f"{LEFT + width * (t - lo) / (hi - lo):.2f},{TOP + height - height * level / top_cores:.2f}"
    points = [xy(lo, 0)]
    level = 0
    for when, new in steps:
        points += [xy(when, level), xy(when, new)]
        level = new
    points += [xy(hi, level), xy(hi, 0)]
    body.append(f'<polygon class="usage" points="{" ".join(points)}" fill="#4e79a7" fill-opacity="0.5" '
                f'stroke="#4e79a7"/>')
    if run.total_cores:
        y = TOP + height - height * run.total_cores / top_cores
        body.append(f'<line x1="{LEFT}" y1="{y:.2f}" x2="{LEFT + width}" y2="{y:.2f}" stroke="{FAILED_STROKE}" '
                    f'stroke-dasharray="6,4"/><text x="{LEFT + width + 6}" y="{y + 4:.2f}">'
                    f'{run.total_cores} cores</text>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        y = TOP + height - height * frac
        body.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{top_cores * frac:.0f}</text>')
        body.append(f'<line x1="{LEFT - 3}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#333"/>')
    body.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + height}" stroke="#333"/>')
    body += _axis(lo, hi, LEFT, width, TOP + height, TOP)
    return _frame("Cores in use over time", TOP + height + 50, body)
