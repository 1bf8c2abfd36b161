"""docs/reference.md against the code: every option and argument of every command, and
every request the service handles, is on the page, and the page names nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Set

import click
import pytest

from qcg_pilotjob.api.cli import cli as qcg_pm
from qcg_pilotjob.front.requests import Requests
from qcg_pilotjob.report.cli import reports
from qcg_pilotjob.service.cli import cli as service

DOCS = Path(__file__).resolve().parents[2] / "docs"
REFERENCE = (DOCS / "reference.md").read_text()


def sections(text: str, level: str) -> Dict[str, str]:
    """The text under each heading of ``level`` (``##`` or ``###``), by the heading's code name."""
    out: Dict[str, str] = {}
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    for head, body in zip(parts[1::2], parts[2::2]):
        out[head.strip().strip("`")] = re.split(r"^#{2,3} ", body, flags=re.M)[0]
    return out


def listed(body: str) -> Set[str]:
    """The options and arguments in the first column of the tables of ``body``."""
    return {name for cell in re.findall(r"^\| (`[^|]+`) \|", body, flags=re.M)
            for name in re.findall(r"`([^`]+)`", cell) for name in name.split(" / ")}


def params(cmd: click.Command, hidden: bool = False) -> Set[str]:
    out: Set[str] = set()
    for p in cmd.params:
        if isinstance(p, click.Option):
            if p.hidden == hidden:
                out.update(p.opts)
        elif not hidden:
            out.add(str(p.name).upper())
    return out


TOP = sections(REFERENCE, "##")
SUB = sections(REFERENCE, "###")


def test_every_service_option_and_no_other() -> None:
    body = TOP["qcg-pm-service"]
    assert listed(body) == params(service)
    internal = body.split("Internal options", 1)[1]
    for name in params(service, hidden=True):
        assert f"`{name}`" in internal, name


@pytest.mark.parametrize("group,prefix", [(qcg_pm, "qcg-pm"), (reports, "qcg-pm-report")])
def test_every_verb_with_its_options_and_arguments(group: click.Group, prefix: str) -> None:
    documented = {name.split(" ", 1)[1] for name in SUB if name.startswith(prefix + " ")}
    assert documented == set(group.commands), prefix
    for name, cmd in group.commands.items():
        assert listed(SUB[f"{prefix} {name}"]) == params(cmd), f"{prefix} {name}"


def test_qcg_pm_group_options() -> None:
    assert listed(TOP["qcg-pm"]) == params(qcg_pm)


def test_every_request_in_the_reference_and_in_the_guide() -> None:
    names: List[str] = list(Requests._handlers)
    rows = set(re.findall(r"^\| `(\w+)` \|", TOP["Requests"], flags=re.M))
    assert rows == set(names)
    guide = sections((DOCS / "usage.md").read_text(), "###")
    for name in names:
        if name in ("register", "notify"):
            assert "register, notify" in guide
        else:
            assert name in guide, name
            assert '"code"' in guide[name] or "`data`" in guide[name], f"{name}: no reply described"
    assert "PartitionStats" in guide["status"] and '"partitions"' in guide["status"]
