"""``Jobs``: a group of job descriptions to submit, in QCG-PilotJob's simple or standard format.

>>> jobs = Jobs().add(name="a", exec="/bin/date", numCores=2, iteration=3, after="b")
>>> jobs.ordered_jobs()[0]["resources"], jobs.ordered_jobs()[0]["iteration"]
({'numCores': {'exact': 2}}, {'start': 0, 'stop': 3})
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Dict, List, Optional

from .errors import FileError, InvalidJobDescriptionError, JobNotDefinedError, QCGPJMAError

__all__ = ["MAX_ITERATIONS", "Jobs"]

#: The most iterations the simple format accepts for one job (as in QCG-PilotJob).
MAX_ITERATIONS = 64 * 1024

_SIMPLE: Dict[str, tuple] = {
    "name": (str,),
    "exec": (str,),
    "script": (str,),
    "args": (list, str),
    "stdin": (str,),
    "stdout": (str,),
    "stderr": (str,),
    "wd": (str,),
    "modules": (list, str),
    "venv": (str,),
    "model": (str,),
    "model_opts": (dict,),
    "env": (dict,),
    "numNodes": (int, dict),
    "numCores": (int, dict),
    "nodeCrs": (dict,),
    "wt": (str, int),
    "iteration": (int, dict, list),
    "after": (list, str),
}
_RES_KEYS = {"min": (int,), "max": (int,), "exact": (int,), "scheduler": (str, dict)}


def _check_simple_attrs(attrs: Dict[str, Any]) -> None:
    """Every key is a known simple-format attribute of an accepted type; exactly one of
    ``exec`` and ``script`` is given."""
    for key, value in attrs.items():
        types = _SIMPLE.get(key)
        if types is None:
            raise InvalidJobDescriptionError(f"Unknown attribute {key}")
        if isinstance(value, bool) or not isinstance(value, types):
            raise InvalidJobDescriptionError(f"Invalid attribute {key} type {type(value)}")
    if "exec" not in attrs and "script" not in attrs:
        raise InvalidJobDescriptionError("No 'exec' nor 'script' defined")
    if "exec" in attrs and "script" in attrs:
        raise InvalidJobDescriptionError("Both 'exec' and 'script' defined")


def _std_execution(attrs: Dict[str, Any]) -> Dict[str, Any]:
    """The ``execution`` element; a single argument given as a string becomes a list."""
    execution: Dict[str, Any] = {}
    for key in ("exec", "script", "args", "stdin", "stdout", "stderr", "wd", "modules", "venv", "model",
                "model_opts", "env"):
        if key in attrs:
            execution[key] = attrs[key]
    if isinstance(execution.get("args"), str):
        execution["args"] = [execution["args"]]
    return execution


def _std_resource_size(key: str, value: Any) -> Dict[str, Any]:
    """``numCores`` or ``numNodes`` (``key``) as a checked dictionary; a number means exactly that many."""
    if isinstance(value, int):
        value = {"exact": value}
    for rkey, rval in value.items():
        rtypes = _RES_KEYS.get(rkey)
        if rtypes is None:
            raise InvalidJobDescriptionError(f"Unknown {key} attribute {rkey}")
        if isinstance(rval, bool) or not isinstance(rval, rtypes):
            raise InvalidJobDescriptionError(f"Invalid {key} attribute {rkey} type {type(rval)}")
    return value


def _std_resources(attrs: Dict[str, Any]) -> Dict[str, Any]:
    """The ``resources`` element (empty when the job gives none)."""
    resources: Dict[str, Any] = {}
    for key in ("numCores", "numNodes"):
        if key in attrs:
            resources[key] = _std_resource_size(key, attrs[key])
    for key in ("wt", "nodeCrs"):
        if key in attrs:
            resources[key] = attrs[key]
    return resources


def _check_iteration_dict(it: Dict[str, Any]) -> None:
    """An iteration given as a dictionary: known keys only, ``stop`` or ``values``, integer bounds."""
    unknown = set(it) - {"start", "stop", "values"}
    if unknown:
        raise InvalidJobDescriptionError(f"Unknown iteration attribute {sorted(unknown)[0]}")
    if "values" not in it and "stop" not in it:
        raise InvalidJobDescriptionError("Required attribute stop of element iteration not defined")
    for ikey, itypes in (("start", int), ("stop", int), ("values", list)):
        if ikey in it and (isinstance(it[ikey], bool) or not isinstance(it[ikey], itypes)):
            raise InvalidJobDescriptionError(f"Invalid iteration attribute {ikey} type {type(it[ikey])}")


def _std_iteration(it: Any) -> Dict[str, Any]:
    """The ``iteration`` element: a number is a count from 0, a list the values to iterate
    over; the number of iterations must be in (0, :data:`MAX_ITERATIONS`]."""
    if isinstance(it, int):
        it = {"start": 0, "stop": it}
    elif isinstance(it, list):
        it = {"values": list(it)}
    else:
        _check_iteration_dict(it)
    count = len(it["values"]) if "values" in it else it["stop"] - it.get("start", 0)
    if count <= 0 or count > MAX_ITERATIONS:
        raise InvalidJobDescriptionError(
            f"Wrong number of iterations - outside range (0, {MAX_ITERATIONS})")
    return it


class Jobs:
    """Job descriptions keyed by name, kept in the order they were added."""

    def __init__(self) -> None:
        self._list: Dict[str, Dict[str, Any]] = {}
        self._job_idx = 0

    @staticmethod
    def _generate_default_name() -> str:
        return str(uuid.uuid4())

    def _append(self, name: str, data: Dict[str, Any]) -> None:
        self._list[name] = {"idx": self._job_idx, "data": data}
        self._job_idx += 1

    @staticmethod
    def _merge(job_attrs: Optional[Dict[str, Any]], kw_attrs: Dict[str, Any]) -> Dict[str, Any]:
        data = dict(job_attrs or {})
        data.update(kw_attrs)
        return data

    def _to_std(self, attrs: Dict[str, Any]) -> Dict[str, Any]:
        """Check a simple-format description and return it in the standard format."""
        attrs = dict(attrs)
        if "name" not in attrs:
            attrs["name"] = self._generate_default_name()
        name = attrs["name"]
        if name in self._list:
            raise InvalidJobDescriptionError(f"Job {name} already in list")
        _check_simple_attrs(attrs)
        std: Dict[str, Any] = {"name": name, "execution": _std_execution(attrs)}
        resources = _std_resources(attrs)
        if resources:
            std["resources"] = resources
        if "iteration" in attrs:
            std["iteration"] = _std_iteration(attrs["iteration"])
        if "after" in attrs:
            after = attrs["after"]
            std["dependencies"] = {"after": [after] if isinstance(after, str) else list(after)}
        return std

    def add(self, job_attrs: Optional[Dict[str, Any]] = None, **kw_attrs: Any) -> Jobs:
        """Add a job in the simple format (flat keys); returns ``self`` for chaining."""
        std = self._to_std(self._merge(job_attrs, kw_attrs))
        self._append(std["name"], std)
        return self

    def _check_std(self, data: Dict[str, Any]) -> Dict[str, Any]:
        if not isinstance(data, dict):
            raise InvalidJobDescriptionError("a job description must be a dictionary")
        data = dict(data)
        if "name" not in data:
            data["name"] = self._generate_default_name()
        execution = data.get("execution")
        if not isinstance(execution, dict) or ("exec" not in execution and "script" not in execution):
            raise InvalidJobDescriptionError('Missing "execution/exec" key')
        if data["name"] in self._list:
            raise InvalidJobDescriptionError(f"Job {data['name']} already in list")
        return data

    def add_std(self, job_attrs: Optional[Dict[str, Any]] = None, **kw_attrs: Any) -> Jobs:
        """Add a job in the standard format (as in a request file)."""
        data = self._check_std(self._merge(job_attrs, kw_attrs))
        self._append(data["name"], data)
        return self

    def remove(self, name: str) -> None:
        if name not in self._list:
            raise JobNotDefinedError(name)
        del self._list[name]

    def clear(self) -> int:
        count = len(self._list)
        self._list.clear()
        return count

    def job_names(self) -> List[str]:
        return list(self._list)

    def ordered_job_names(self) -> List[str]:
        return [name for name, _ in sorted(self._list.items(), key=lambda item: item[1]["idx"])]

    def jobs(self) -> List[Dict[str, Any]]:
        return [entry["data"] for entry in self._list.values()]

    def ordered_jobs(self) -> List[Dict[str, Any]]:
        return [entry["data"] for entry in sorted(self._list.values(), key=lambda e: e["idx"])]

    def load_from_file(self, file_path: str) -> None:
        """Add the jobs of a JSON file holding a list of standard-format descriptions."""
        try:
            with open(file_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise FileError(f'File to open/write file "{file_path}": {exc}') from None
        if not isinstance(data, list):
            raise InvalidJobDescriptionError(f"{file_path}: expected a list of job descriptions")
        for job in data:
            try:
                checked = self._check_std(job)
            except QCGPJMAError:
                raise
            self._append(checked["name"], checked)

    def save_to_file(self, file_path: str) -> None:
        try:
            with open(file_path, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(self.ordered_jobs(), indent=2))
        except OSError as exc:
            raise FileError(f'File to open/write file "{file_path}": {exc}') from None
