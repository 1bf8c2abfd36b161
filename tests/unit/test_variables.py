"""Unit tests of qcg_pilotjob.variables: ``$name`` / ``${name}`` substitution."""

from __future__ import annotations

import pytest

from qcg_pilotjob.variables import has_unknown_variable, substitute, substitute_tree


def test_braced_and_bare_forms() -> None:
    assert substitute("x_${it}_$it.txt", {"it": "7"}) == "x_7_7.txt"


def test_spaces_inside_braces() -> None:
    assert substitute("${ it }-${it }-${  it}", {"it": "3"}) == "3-3-3"


def test_unknown_variables_left_alone() -> None:
    assert substitute("$foo ${bar} ${ baz }", {"it": "1"}) == "$foo ${bar} ${ baz }"


def test_home_untouched() -> None:
    assert substitute("${HOME}/$HOME/out_${it}", {"it": "0"}) == "${HOME}/$HOME/out_0"


def test_double_dollar_escape() -> None:
    assert substitute("$$", {}) == "$"
    assert substitute("a$$b", {"b": "X"}) == "a$b"
    # survives one pass as ${it}, replaced in the next
    first = substitute("wd_$${it}", {"it": "9"})
    assert first == "wd_${it}"
    assert substitute(first, {"it": "9"}) == "wd_9"


def test_bare_name_is_greedy() -> None:
    # like string.Template: $itx is the variable "itx", not "it" followed by "x"
    assert substitute("$itx", {"it": "1"}) == "$itx"
    assert substitute("${it}x", {"it": "1"}) == "1x"


def test_text_without_dollar_returned_as_is() -> None:
    text = "plain text"
    assert substitute(text, {"plain": "no"}) is text


@pytest.mark.parametrize("text", ["cost $5", "a $ b", "end$", "${1x}", "${}"])
def test_non_variable_dollars_kept(text: str) -> None:
    assert substitute(text, {"x": "y"}) == text


def test_values_are_not_resubstituted() -> None:
    assert substitute("${a}", {"a": "${b}", "b": "no"}) == "${b}"


def test_substitute_tree_nested() -> None:
    data = {"exec": "${x}", "args": ["$x", 1, None, {"${x}": ["${ x }"]}], "n": 2.5, "b": True}
    assert substitute_tree(data, {"x": "y"}) == {
        "exec": "y", "args": ["y", 1, None, {"y": ["y"]}], "n": 2.5, "b": True,
    }


def test_substitute_tree_does_not_modify_input() -> None:
    data = {"a": ["${x}"]}
    substitute_tree(data, {"x": "y"})
    assert data == {"a": ["${x}"]}


def test_substitute_tree_scalar() -> None:
    assert substitute_tree("${x}", {"x": "1"}) == "1"
    assert substitute_tree(5, {"x": "1"}) == 5


@pytest.mark.parametrize("text,expected", [
    ("plain", False),
    ("a$$b", False),
    ("$$", False),
    ("cost $5", False),
    ("a$b", True),
    ("a${b}", True),
    ("${ b }", True),
    ("$$${b}", True),
])
def test_has_unknown_variable(text: str, expected: bool) -> None:
    assert has_unknown_variable(text) is expected
