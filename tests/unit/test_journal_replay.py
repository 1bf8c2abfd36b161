"""Replaying a journal whose submit holds a job this version rejects: that job is left out
(logged), the others are restored (a resume must not stop on it)."""

from __future__ import annotations

import logging

import pytest

from qcg_pilotjob.front.journal import replayable_jobs


def test_regression_rejected_job_in_the_journal_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    good = {"name": "good", "execution": {"exec": "/bin/true"}}
    bad = {"name": "bad", "execution": {"exec": "/bin/true"}, "resources": {"numCores": 2 ** 60}}
    with caplog.at_level(logging.ERROR):
        descs = replayable_jobs([good, bad, "not a job"])
    assert [d.name for d in descs] == ["good"]
    assert "job 'bad' from the journal is left out" in caplog.text
    assert "job None from the journal is left out" in caplog.text
