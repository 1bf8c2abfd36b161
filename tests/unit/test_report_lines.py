"""The per-iteration fast paths of the report (issue 10): ``views.report_line`` writes the
JSON line itself and ``registry.format_time`` caches what it formatted. Each must give the
very text of the generic path it replaces, for any record: job names, messages and runtime
values with quotes, control characters and non-ASCII text, times on either side of a
second, rounding to a microsecond, and the same time formatted twice."""

from __future__ import annotations

import datetime
import json
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from qcg_pilotjob.front import registry
from qcg_pilotjob.front.registry import JobRecord, format_time
from qcg_pilotjob.front.reports import format_report
from qcg_pilotjob.front.views import job_report_line, report_entry, report_line
from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.states import JobState

TIMES = st.one_of(st.floats(min_value=0, max_value=4e9, allow_nan=False),
                  st.integers(min_value=0, max_value=4 * 10 ** 9).map(float),
                  st.integers(min_value=0, max_value=4 * 10 ** 9).map(lambda s: s + 0.9999995),
                  st.integers(min_value=0, max_value=4 * 10 ** 15).map(lambda us: us / 1e6))
TEXT = st.text(max_size=12)
RUNTIME = st.builds(lambda values, rtime: {**values, **({} if rtime is None else {"rtime": rtime})},
                    st.dictionaries(st.sampled_from(["allocation", "wd", "pid", "exit_code", "other"]),
                                    st.one_of(TEXT, st.integers(-5, 10 ** 6), st.floats(0, 1e6)), max_size=5),
                    st.one_of(st.none(), st.floats(0, 1e6), st.integers(0, 10 ** 6)))  # (rtime: a number)
FINAL = st.sampled_from([JobState.SUCCEED, JobState.FAILED, JobState.CANCELED, JobState.OMITTED])


@settings(max_examples=2000, deadline=None)
@given(TIMES)
def test_format_time_is_datetimes_text(ts: float) -> None:
    expected = str(datetime.datetime.fromtimestamp(ts))
    assert format_time(ts) == expected
    assert format_time(ts) == expected  # (the second time from the cache)


def test_format_time_caches_stay_small() -> None:
    for i in range(20_000):
        format_time(1_700_000_000 + i * 0.37)
    assert len(registry._RECENT) <= 4096 and len(registry._SECONDS) <= 256


def _job(name: str, start: int, submit: float) -> JobRecord:
    desc = JobDescription.from_dict({"name": name, "execution": {"exec": "/bin/true"},
                                     "iteration": {"start": start, "stop": start + 3}})
    return JobRecord(desc, submit, 0)


@settings(max_examples=500, deadline=None)
@given(name=st.text(min_size=1, max_size=12).filter(lambda n: ":" not in n and "\0" not in n and n.strip() == n
                                                    and n not in ("", ".", "..") and "/" not in n),
       start=st.integers(-5, 5), submit=TIMES, steps=st.lists(TIMES, min_size=0, max_size=3), final=FINAL,
       runtime=st.one_of(st.none(), RUNTIME), message=st.one_of(st.none(), TEXT))
def test_report_line_is_the_generic_lines_text(name: str, start: int, submit: float, steps: List[float],
                                                final: JobState, runtime: Optional[Dict[str, Any]],
                                                message: Optional[str]) -> None:
    try:
        job = _job(name, start, submit)
    except Exception:
        return  # (a name the job description refuses: not a report's concern)
    rec = job.tasks[1]
    for when, state in zip(steps, (JobState.SCHEDULED, JobState.EXECUTING)):
        rec.set_state(state, when, submit)
    rec.set_state(final, steps[-1] if steps else submit, submit)
    rec.runtime = runtime
    rec.message = message
    for fmt in ("json", "text"):
        assert report_line(job, 1, fmt) == format_report(report_entry(job, 1), fmt)
    line = json.loads(report_line(job, 1, "json"))
    assert line["name"] == f"{name}:{start + 1}" and line["state"] == final.name


def test_report_line_of_an_iteration_that_never_got_a_record() -> None:
    job = _job("j", 0, 1_700_000_000.25)
    waiting: Tuple[str, ...] = (report_line(job, 2, "json"), format_report(report_entry(job, 2), "json"))
    assert waiting[0] == waiting[1]
    assert json.loads(waiting[0])["history"] == [{"state": "QUEUED", "date": format_time(1_700_000_000.25)}]


RAW = st.fixed_dictionaries({"exec": st.sampled_from(["/bin/true", "prog ü", 'say "hi"'])},
                            optional={"args": st.lists(TEXT.filter(lambda t: "\0" not in t), max_size=3),
                                      "env": st.dictionaries(st.sampled_from(["A", "B_Ü"]),
                                                             TEXT.filter(lambda t: "\0" not in t), max_size=2)})


@settings(max_examples=300, deadline=None)
@given(execution=RAW, cores=st.one_of(st.none(), st.integers(1, 8)), after=st.booleans(), submit=TIMES,
       steps=st.lists(TIMES, min_size=0, max_size=3), final=FINAL, runtime=st.one_of(st.none(), RUNTIME),
       message=st.one_of(st.none(), TEXT), job_messages=st.lists(TEXT.filter(bool), max_size=2))
def test_job_report_line_is_the_generic_lines_text(execution: Dict[str, Any], cores: Optional[int], after: bool,
                                                    submit: float, steps: List[float], final: JobState,
                                                    runtime: Optional[Dict[str, Any]], message: Optional[str],
                                                    job_messages: List[str]) -> None:
    raw: Dict[str, Any] = {"name": "job", "execution": execution}
    if cores is not None:
        raw["resources"] = {"numCores": {"exact": cores}}
    if after:
        raw["dependencies"] = {"after": ["other"]}
    job = JobRecord(JobDescription.from_dict(raw), submit, 0)
    rec = job.tasks[0]
    for when, state in zip(steps, (JobState.SCHEDULED, JobState.EXECUTING)):
        rec.set_state(state, when, submit)
    rec.set_state(final, steps[-1] if steps else submit, submit)
    rec.runtime, rec.message = runtime, message
    for text in job_messages:
        job.add_message(text)
    job.set_state(final, steps[-1] if steps else submit)
    for fmt in ("json", "text"):
        assert job_report_line(job, fmt) == format_report(report_entry(job, None), fmt)
    assert json.loads(job_report_line(job, "json"))["execution"] == execution
