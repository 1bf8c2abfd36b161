"""Variable substitution in job descriptions.

Two passes, as in QCG-PilotJob: submit-time variables (``rcnt``, ``uniq``, ``sname``,
``date``, ``time``, ``dateTime``, ``jname``) over the whole description, and start-time
variables (``it``, ``itval``, ``root_wd``, ``ncores``, ``nnodes``, ``nlist``) over the
``execution`` element. ``$name`` and ``${name}`` (spaces allowed inside the braces) are
replaced; unknown names are left as they are for the shell; ``$$`` stands for ``$`` in
each pass, so ``$${it}`` survives the first pass as ``${it}``.

>>> substitute("out_${it}_$$x_${HOME}", {"it": "3"})
'out_3_$x_${HOME}'
>>> substitute_tree({"a": ["${ x }", 1]}, {"x": "y"})
{'a': ['y', 1]}
"""

from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["has_unknown_variable", "substitute", "substitute_tree"]

_PATTERN = re.compile(r"\$(?:(\$)|\{\s*([_A-Za-z][_A-Za-z0-9]*)\s*\}|([_A-Za-z][_A-Za-z0-9]*))")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace known variables in ``text``; leave unknown ones untouched."""
    if "$" not in text:
        return text

    def repl(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "$"
        name = match.group(2) or match.group(3)
        value = values.get(name)
        return match.group(0) if value is None else value

    return _PATTERN.sub(repl, text)


def substitute_tree(data: Any, values: Mapping[str, str]) -> Any:
    """Apply :func:`substitute` to every string inside nested lists and dicts (keys too)."""
    if isinstance(data, str):
        return substitute(data, values)
    if isinstance(data, dict):
        return {
            (substitute(k, values) if isinstance(k, str) else k): substitute_tree(v, values)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [substitute_tree(v, values) for v in data]
    return data


def has_unknown_variable(text: str) -> bool:
    """True if ``text`` still holds a ``$name`` or ``${name}`` reference."""
    return any(m.group(1) is None for m in _PATTERN.finditer(text))
