"""Task templates: a job description as text with ``${placeholders}``, and their defaults.

A template function returns ``(text, defaults)`` (or the text alone). :func:`render` fills the
placeholders, defaults first, then each dict given positionally, then keyword arguments (later
ones win), and reads the text as a Python literal (``ast.literal_eval``: data, no code).
A placeholder with no value is an error that names it; ``$$`` is a literal ``$``, and the
service's own variables (``${it}``, ``${jname}``, ...) pass through when no value is given
for them (:data:`SERVICE_VARIABLES`).

>>> text, defaults = BasicTemplate.template()
>>> render(text, defaults, [{"name": "a"}], {"exec": "/bin/echo", "args": ["x"]})["execution"]
{'exec': '/bin/echo', 'args': ['x'], 'stdout': 'stdout', 'stderr': 'stderr'}
"""

from __future__ import annotations

import ast
import string
import textwrap
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from ..api.errors import InvalidJobDescriptionError, PlaceholderError

__all__ = ["SERVICE_VARIABLES", "BasicTemplate", "QCGPJTemplate", "render"]

#: The service fills these in each task; a template may leave them for it.
SERVICE_VARIABLES = ("it", "itval", "jname", "uniq", "root_wd", "ncores", "nnodes", "nlist")


class QCGPJTemplate:
    """The base of templates: ``template()`` returns ``(text, defaults)``."""

    @staticmethod
    def template() -> Tuple[str, Dict[str, Any]]:
        raise NotImplementedError


class BasicTemplate(QCGPJTemplate):
    """One program with arguments, its stdout and stderr: ``name``, ``exec``, ``args`` (a
    list, default none), ``stdout`` and ``stderr`` (default ``stdout``/``stderr``)."""

    @staticmethod
    def template() -> Tuple[str, Dict[str, Any]]:
        text = """
        {
            'name': '${name}',
            'execution': {
                'exec': '${exec}',
                'args': ${args},
                'stdout': '${stdout}',
                'stderr': '${stderr}'
            }
        }
        """
        return text, {"args": [], "stdout": "stdout", "stderr": "stderr"}


def render(text: str, defaults: Optional[Mapping[str, Any]], args: Iterable[Optional[Mapping[str, Any]]],
           kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """The job description ``text`` with its placeholders filled (see the module)."""
    values: Dict[str, Any] = {name: f"${{{name}}}" for name in SERVICE_VARIABLES}
    values.update(defaults or {})
    for extra in args:
        if extra is not None:
            values.update(extra)
    values.update(kwargs)
    try:
        filled = string.Template(textwrap.dedent(text)).substitute(values)
    except KeyError as exc:
        raise PlaceholderError(f"template: no value for the placeholder {exc.args[0]!r}") from None
    except ValueError as exc:
        raise InvalidJobDescriptionError(f"template: {exc}") from None
    try:
        description = ast.literal_eval(filled.strip())
    except (ValueError, SyntaxError) as exc:
        raise InvalidJobDescriptionError(f"template: the filled text is not a description ({exc}): "
                                         f"{filled.strip()[:200]}") from None
    if not isinstance(description, dict) or not isinstance(description.get("execution"), dict):
        raise InvalidJobDescriptionError("template: the filled text is not a job description with 'execution'")
    return description
