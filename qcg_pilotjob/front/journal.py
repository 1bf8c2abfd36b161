"""The journal of a run, for ``--resume``.

One JSON object a line in ``<aux>/journal.jsonl``: ``start`` (mode and the options that
shape the run), ``submit`` (the
substituted job descriptions), ``final`` (a task or job reached a final state),
``run`` (a task started, with its pid: a resume ends what a killed run left running),
``remove``, ``control`` and ``file`` (requests of the request file done so far).
Written through a :class:`~.reports.LineWriter` that the service flushes at the end of each
loop turn that recorded something: a final state is on disk before the service goes on (a
resume does not run a task again whose end was handled). See ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..auxdir import AUX_PREFIX, newest_aux_dir
from ..errors import ResumeError
from ..jobdesc import JobDescription
from .reports import LineWriter

__all__ = ["ENDED", "JOURNAL_NAME", "Journal", "Replay", "find_aux_dir", "read_journal", "replayable_jobs"]

_log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"


class Journal:
    def __init__(self, writer: LineWriter) -> None:
        self.writer = writer

    def record(self, kind: str, **fields: Any) -> None:
        fields["t"] = kind
        self.writer.write(json.dumps(fields, separators=(",", ":"), default=str) + "\n")


#: per (job, iteration) its final record; (job, ENDED) lists the records of iterations that
#: ended together
Finals = Dict[Tuple[str, Any], Any]
ENDED = "ended"


@dataclass
class Replay:
    """What a journal says, in order: ``("submit", jobs, finals)`` and ``("remove", names)``
    steps (``finals`` holds the final states recorded for those jobs), and the mode."""

    steps: List[Tuple[str, List[Any], Finals]] = field(default_factory=list)
    finish_after_all: bool = False
    file_mode: bool = False
    file_path: Optional[str] = None
    #: requests done per request file (a resume may read a different file)
    file_done: Dict[str, int] = field(default_factory=dict)
    #: the options of the first run that shape it (governor, nodes, partitions, ...), so
    #: that ``--resume DIR`` alone continues the run as it was started
    config: Dict[str, Any] = field(default_factory=dict)
    #: tasks that were started and have no final record: (job, iteration) -> (pid, start time)
    running: Dict[Tuple[str, Optional[int]], Tuple[int, float]] = field(default_factory=dict)


def replayable_jobs(items: List[Any]) -> List[JobDescription]:
    """The journalled job descriptions of a submit this version accepts; one it rejects
    (e.g. a value an older version let through) is logged and left out."""
    out = []
    for raw in items:
        try:
            out.append(JobDescription.from_dict(raw))
        except Exception as exc:
            name = raw.get("name") if isinstance(raw, dict) else None
            _log.error("resume: job %r from the journal is left out: %s", name, exc)
    return out


def find_aux_dir(path: str) -> str:
    """``--resume`` takes an aux dir or a working dir holding one (the newest is used)."""
    path = os.path.abspath(path)
    if os.path.isfile(os.path.join(path, JOURNAL_NAME)):
        return path
    if os.path.isdir(path):
        newest = newest_aux_dir(path, JOURNAL_NAME)
        if newest is not None:
            return newest
    raise ResumeError(
        f"Resume directory {path} not exists or is not valid QCG-PilotJob auxiliary directory "
        f"(no {JOURNAL_NAME} in it or in a {AUX_PREFIX}* directory below it)"
    )


def read_journal(aux_dir: str) -> Replay:
    replay = Replay()
    current: Dict[str, Finals] = {}
    path = os.path.join(aux_dir, JOURNAL_NAME)
    started = False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by the kill: everything before it is whole
            kind = rec.get("t")
            if kind == "start" and not replay.steps:
                started = True
                replay.file_mode = bool(rec.get("file_mode"))
                replay.file_path = rec.get("file_path")
                config = rec.get("config")
                replay.config = config if isinstance(config, dict) else {}
            elif kind == "submit":
                finals: Finals = {}
                replay.steps.append(("submit", rec["jobs"], finals))
                for job in rec["jobs"]:
                    current[job["name"]] = finals
            elif kind == "final":
                target = current.get(rec["j"])
                if target is not None:
                    target[(rec["j"], rec.get("i"))] = rec
                replay.running.pop((rec["j"], rec.get("i")), None)
            elif kind == ENDED:
                target = current.get(rec["j"])
                if target is not None and isinstance(rec.get("r"), list):
                    target.setdefault((rec["j"], ENDED), []).append(rec)
            elif kind == "remove":
                replay.steps.append(("remove", rec["jobs"], {}))
                for name in rec["jobs"]:
                    current.pop(name, None)
            elif kind == "control" and rec.get("command") == "finishAfterAllTasksDone":
                replay.finish_after_all = True
            elif kind == "file":
                path = rec.get("path") or replay.file_path or ""
                replay.file_done[path] = max(replay.file_done.get(path, 0), int(rec.get("done", 0)))
            elif kind == "run":
                replay.running[(rec["j"], rec.get("i"))] = (int(rec["p"]), float(rec["w"]))
    if not started:  # killed before its first record reached the disk: nothing to resume from
        raise ResumeError(
            f"Resume directory {aux_dir} is not valid QCG-PilotJob auxiliary directory: {JOURNAL_NAME} holds "
            f"no start record (the run was stopped before it recorded anything); run it again without --resume"
        )
    return replay
