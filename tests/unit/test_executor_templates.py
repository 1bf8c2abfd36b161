"""Templates of the executor API: which value fills a placeholder, and errors that name it."""

from __future__ import annotations

import pytest

from qcg_pilotjob.api.errors import InvalidJobDescriptionError
from qcg_pilotjob.executor_api.templates import BasicTemplate, render

TEXT = "{'name': '${name}', 'execution': {'exec': '${exec}', 'args': ${args}}}"


def test_defaults_then_dicts_in_order_then_keywords() -> None:
    defaults = {"name": "d", "exec": "d", "args": []}
    desc = render(TEXT, defaults, [{"name": "a1", "exec": "a1"}, None, {"exec": "a2"}], {"args": ["k"]})
    assert desc == {"name": "a1", "execution": {"exec": "a2", "args": ["k"]}}
    assert render(TEXT, defaults, [{"name": "a"}], {"name": "k"})["name"] == "k"


def test_basic_template_defaults() -> None:
    text, defaults = BasicTemplate.template()
    desc = render(text, defaults, [], {"name": "n", "exec": "/bin/date"})
    assert desc["execution"] == {"exec": "/bin/date", "args": [], "stdout": "stdout", "stderr": "stderr"}


def test_service_variables_pass_through_and_dollars_escape() -> None:
    desc = render("{'name': 'n', 'execution': {'exec': 'echo', 'args': ['${it}', '$$HOME', '${jname}']}}",
                  None, [], {})
    assert desc["execution"]["args"] == ["${it}", "$HOME", "${jname}"]


@pytest.mark.parametrize("text,values,message", [
    (TEXT, {"name": "n", "args": []}, "placeholder 'exec'"),
    ("{'name': 'n'}", {}, "with 'execution'"),
    ("{'name': '${name}', 'execution': {}} + 1", {"name": "x"}, "not a description"),
    ("[__import__('os').system('true')]", {}, "not a description"),  # data only: no code runs
])
def test_errors(text: str, values: dict, message: str) -> None:
    with pytest.raises(InvalidJobDescriptionError, match=message):
        render(text, None, [], values)


def test_regression_missing_placeholder_is_a_key_error() -> None:
    """QCG-PilotJob's executor API raises KeyError for a placeholder without a value, and its
    own tests (and users) catch that; ours raised only InvalidJobDescriptionError."""
    with pytest.raises(KeyError, match="exec"):
        render(TEXT, None, [], {"name": "n", "args": []})
