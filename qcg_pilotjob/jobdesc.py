"""Job descriptions: parsed and validated at construction.

A description is the ``submit`` job dictionary of the QCG-PilotJob documentation. Every
problem raises :class:`~qcg_pilotjob.errors.JobDescriptionError` naming the job and field.

>>> job = JobDescription.from_dict({"name": "a", "execution": {"exec": "/bin/true"}})
>>> job.resources.cores.exact, job.iteration is None
(1, True)
>>> JobDescription.from_dict({"name": "b", "execution": {"exec": "x"},
...     "resources": {"numCores": {"min": 0}}})
Traceback (most recent call last):
...
qcg_pilotjob.errors.JobDescriptionError: job 'b': resources.numCores.min: must be an integer >= 1, not 0
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import JobDescriptionError
from .protocol.wire import value_problem

__all__ = [
    "ITERATION_SCHEDULERS",
    "MODELS",
    "Dependency",
    "Execution",
    "Iteration",
    "JobDescription",
    "ResourceSize",
    "Resources",
    "check_values",
    "parse_walltime",
    "validate_job_name",
]

#: Execution models accepted in ``execution.model``.
MODELS = ("default", "threads", "openmp", "srunmpi", "openmpi", "intelmpi")
#: Iteration resource schedulers accepted in ``numCores/numNodes.scheduler``.
ITERATION_SCHEDULERS = ("maximum-iters", "split-into")
#: Upper bound on iterations of one job (they wait as ranges: a waiting job costs the same at any size).
MAX_ITERATIONS = 100_000_000
#: Upper bounds on the tasks (iterations of all its jobs) and the jobs of one submit request.
MAX_TASKS_PER_SUBMIT = 100_000_000
MAX_JOBS_PER_SUBMIT = 100_000
#: Upper bound on ``wt``, in seconds (ten years).
MAX_WALLTIME = 10 * 365 * 86400

_JOB_KEYS = {"name", "iteration", "execution", "resources", "dependencies", "attributes"}
_EXEC_KEYS = {
    "exec", "args", "script", "env", "wd", "stdin", "stdout", "stderr",
    "modules", "venv", "model", "model_opts",
}
_RES_KEYS = {"numCores", "numNodes", "wt", "nodeCrs"}
_SIZE_KEYS = {"exact", "min", "max", "scheduler"}
_CRS = ("gpu",)
_WT = re.compile(r"^(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,12})s)?$")
_BAD_NAME_CHARS = set("${}()'\": \t\n\r\x00")


def _err(job: Optional[str], fld: str, problem: str) -> JobDescriptionError:
    return JobDescriptionError(job, fld, problem)


def _check_keys(job: Optional[str], fld: str, data: Mapping[str, Any], allowed: set) -> None:
    unknown = sorted(k for k in data if k not in allowed)
    if unknown:
        raise _err(job, fld, f"unknown key(s) {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(sorted(allowed))}")


def _pos_int(job: Optional[str], fld: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _err(job, fld, f"must be an integer >= 1, not {value!r}")
    return value


def _os_text(job: Optional[str], fld: str, text: str) -> str:
    """``text`` that becomes a program, argument, path or variable: no NUL (the OS cannot take one)."""
    if "\x00" in text:
        raise _err(job, fld, "must not contain a NUL character")
    return text


def _opt_str(job: Optional[str], fld: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _err(job, fld, f"must be a string, not {type(value).__name__}")
    return _os_text(job, fld, value)


def _str_list(job: Optional[str], fld: str, value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [_os_text(job, fld, value)]
    if not isinstance(value, list):
        raise _err(job, fld, f"must be a list of strings, not {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise _err(job, f"{fld}[{i}]", f"must be a string, not {type(item).__name__}")
        out.append(_os_text(job, f"{fld}[{i}]", str(item)))
    return out


def check_values(data: Dict[str, Any]) -> None:
    """Raise naming the job and the field if a value in the job's dictionary cannot be stored
    or encoded back (text that is not UTF-8, an integer past 2**53, NaN, infinity, ...)."""
    found = value_problem(data)
    if found is not None:
        name = data.get("name")
        job = name.encode("utf-8", "backslashreplace").decode() if isinstance(name, str) else None
        raise _err(job, found[0] or "job", found[1])


def validate_job_name(name: Any) -> str:
    """Check a (substituted) job name; raise with the reference's message otherwise."""
    if not isinstance(name, str) or not name:
        raise JobDescriptionError(None, None, "Missing name in job description", malformed=True)
    if any(c in _BAD_NAME_CHARS for c in name):
        raise JobDescriptionError(
            None, None, f"Job identifier '{name}' contains invalid characters or unknown variables"
        )
    return name


def parse_walltime(value: Any, job: Optional[str] = None) -> float:
    """Parse ``wt``: ``"1h30m"``, ``"90s"``, ``"2h"`` or a number of seconds.

    >>> parse_walltime("1h2m3s"), parse_walltime(10)
    (3723.0, 10.0)
    """
    if isinstance(value, bool):
        raise _err(job, "resources.wt", f"invalid wall time {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        m = _WT.match(text)
        if not text or m is None:
            raise _err(job, "resources.wt",
                       f"invalid wall time {value!r}; use a form such as '1h30m', '45m' or '90s'")
        h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = float(h * 3600 + mi * 60 + s)
    else:
        raise _err(job, "resources.wt", f"invalid wall time {value!r}")
    if seconds != seconds or seconds == float("inf"):  # NaN or infinity (json accepts both)
        raise _err(job, "resources.wt", f"invalid wall time {value!r}; it must be a finite number")
    if seconds <= 0:
        raise _err(job, "resources.wt", "wall time must be greater than zero")
    if seconds > MAX_WALLTIME:
        raise _err(job, "resources.wt", f"wall time {value!r} is longer than {MAX_WALLTIME} seconds (ten years)")
    return seconds


@dataclass(frozen=True)
class ResourceSize:
    """A number of cores or nodes: exact, or a ``min``..``max`` range, maybe with an
    iteration scheduler that turns the range into an exact number per iteration."""

    exact: Optional[int] = None
    min: Optional[int] = None
    max: Optional[int] = None
    scheduler: Optional[str] = None
    scheduler_params: Dict[str, Any] = field(default_factory=dict)

    @property
    def minimum(self) -> int:
        return self.exact if self.exact is not None else (self.min or 1)

    @property
    def maximum(self) -> Optional[int]:
        """Upper bound, ``None`` meaning "as much as is free"."""
        return self.exact if self.exact is not None else self.max

    @classmethod
    def parse(cls, job: Optional[str], fld: str, value: Any, iterative: bool) -> ResourceSize:
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(exact=_pos_int(job, fld, value))
        if not isinstance(value, dict):
            raise _err(job, fld, f"must be an integer or a dictionary with exact/min/max, "
                                 f"not {type(value).__name__}")
        _check_keys(job, fld, value, _SIZE_KEYS)
        exact = value.get("exact")
        vmin = value.get("min")
        vmax = value.get("max")
        if exact is not None:
            if vmin is not None or vmax is not None:
                raise _err(job, fld, "exact is mutually exclusive with min and max")
            exact = _pos_int(job, f"{fld}.exact", exact)
        if vmin is not None:
            vmin = _pos_int(job, f"{fld}.min", vmin)
        if vmax is not None:
            vmax = _pos_int(job, f"{fld}.max", vmax)
        if vmin is not None and vmax is not None and vmin > vmax:
            raise _err(job, fld, f"min ({vmin}) is larger than max ({vmax})")
        if exact is None and vmin is None and vmax is None and "scheduler" not in value:
            raise _err(job, fld, "needs exact, min or max")
        sched_name: Optional[str] = None
        params: Dict[str, Any] = {}
        sched = value.get("scheduler")
        if sched is not None:
            if isinstance(sched, str):
                sched_name = sched
            elif isinstance(sched, dict):
                _check_keys(job, f"{fld}.scheduler", sched, {"name", "params"})
                sched_name = sched.get("name")
                params = sched.get("params") or {}
                if not isinstance(params, dict):
                    raise _err(job, f"{fld}.scheduler.params", "must be a dictionary")
            else:
                raise _err(job, f"{fld}.scheduler", "must be a name or a dictionary with name and params")
            if not isinstance(sched_name, str) or sched_name.lower() not in ITERATION_SCHEDULERS:
                raise _err(job, f"{fld}.scheduler.name",
                           f"unknown iteration scheduler {sched_name!r}; "
                           f"known: {', '.join(ITERATION_SCHEDULERS)}")
            sched_name = sched_name.lower()
            if not iterative:
                raise _err(job, f"{fld}.scheduler", "an iteration scheduler needs a job with iterations")
            if exact is not None:
                raise _err(job, f"{fld}.scheduler", "an iteration scheduler does not take exact")
            if vmax is not None:
                raise _err(job, f"{fld}.scheduler", f"the {sched_name} scheduler does not take max")
            if sched_name == "split-into" and "parts" in params:
                params = dict(params)
                params["parts"] = _pos_int(job, f"{fld}.scheduler.params.parts", params["parts"])
            elif params and sched_name == "maximum-iters":
                raise _err(job, f"{fld}.scheduler.params", "maximum-iters takes no parameters")
        return cls(exact=exact, min=vmin, max=vmax, scheduler=sched_name, scheduler_params=params)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for key in ("exact", "min", "max"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        if self.scheduler:
            out["scheduler"] = {"name": self.scheduler, "params": dict(self.scheduler_params)}
        return out


@dataclass(frozen=True)
class Resources:
    """``resources`` of a job: cores (per node when ``nodes`` is set), nodes, wall time
    in seconds and consumable resources per node (``gpu``)."""

    cores: Optional[ResourceSize] = None
    nodes: Optional[ResourceSize] = None
    wt: Optional[float] = None
    crs: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, job: Optional[str], value: Any, iterative: bool) -> Resources:
        if value is None:
            return _ONE_CORE
        if not isinstance(value, dict):
            raise _err(job, "resources", "must be a dictionary")
        _check_keys(job, "resources", value, _RES_KEYS)
        cores = nodes = None
        if value.get("numCores") is not None:
            cores = ResourceSize.parse(job, "resources.numCores", value["numCores"], iterative)
        if value.get("numNodes") is not None:
            nodes = ResourceSize.parse(job, "resources.numNodes", value["numNodes"], iterative)
        wt = parse_walltime(value["wt"], job) if value.get("wt") is not None else None
        crs: Dict[str, int] = {}
        raw_crs = value.get("nodeCrs")
        if raw_crs is not None:
            if not isinstance(raw_crs, dict):
                raise _err(job, "resources.nodeCrs", "must be a dictionary such as {\"gpu\": 1}")
            for name, count in raw_crs.items():
                key = str(name).lower()
                if key not in _CRS:
                    raise _err(job, f"resources.nodeCrs.{name}",
                               f"unknown consumable resource; known: {', '.join(_CRS)}")
                crs[key] = _pos_int(job, f"resources.nodeCrs.{name}", count)
            if nodes is None:
                # consumable resources are counted per node: default to one node
                nodes = ResourceSize(exact=1)
        if cores is None and nodes is None:
            cores = ResourceSize(exact=1)
        if cores is not None and nodes is not None and cores.scheduler and nodes.scheduler:
            raise _err(job, "resources", "only one of numCores and numNodes may use an iteration scheduler")
        return cls(cores=cores, nodes=nodes, wt=wt, crs=crs)


#: the resources of a job that names none (shared: a description is never changed)
_ONE_CORE = Resources(cores=ResourceSize(exact=1))


@dataclass(frozen=True)
class Execution:
    """``execution`` of a job. Strings may still hold start-time variables."""

    exec: Optional[str] = None
    args: Tuple[str, ...] = ()
    script: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)
    wd: Optional[str] = None
    stdin: Optional[str] = None
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    modules: Tuple[str, ...] = ()
    venv: Optional[str] = None
    model: str = "default"
    model_opts: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, job: Optional[str], value: Any) -> Execution:
        if value is None:
            raise _err(job, "execution", "Missing execution element in job description")
        if not isinstance(value, dict):
            raise _err(job, "execution", "must be a dictionary")
        _check_keys(job, "execution", value, _EXEC_KEYS)
        exe = _opt_str(job, "execution.exec", value.get("exec"))
        script = _opt_str(job, "execution.script", value.get("script"))
        args = _str_list(job, "execution.args", value.get("args"))
        if exe is None and script is None:
            raise _err(job, "execution", "one of exec or script is required")
        if exe is not None and script is not None:
            raise _err(job, "execution", "exec and script are mutually exclusive")
        if script is not None and args:
            raise _err(job, "execution.args", "args go with exec, not with script")
        if exe is not None and not exe.strip():
            raise _err(job, "execution.exec", "must not be empty")
        env_raw = value.get("env") or {}
        if not isinstance(env_raw, dict):
            raise _err(job, "execution.env", "must be a dictionary of strings")
        env: Dict[str, str] = {}
        for key, val in env_raw.items():
            if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
                raise _err(job, "execution.env", f"invalid variable name {key!r}")
            if isinstance(val, bool) or not isinstance(val, (str, int, float)):
                raise _err(job, f"execution.env.{key}", "must be a string")
            env[key] = _os_text(job, f"execution.env.{key}", str(val))
        model = value.get("model") or "default"
        if not isinstance(model, str) or model.lower() not in MODELS:
            raise _err(job, "execution.model", f"unknown model {model!r}; known: {', '.join(MODELS)}")
        model = model.lower()
        if model == "openmp":
            model = "threads"
        model_opts = value.get("model_opts") or {}
        if not isinstance(model_opts, dict):
            raise _err(job, "execution.model_opts", "must be a dictionary")
        return cls(
            exec=exe,
            args=tuple(args),
            script=script,
            env=env,
            wd=_opt_str(job, "execution.wd", value.get("wd")),
            stdin=_opt_str(job, "execution.stdin", value.get("stdin")),
            stdout=_opt_str(job, "execution.stdout", value.get("stdout")),
            stderr=_opt_str(job, "execution.stderr", value.get("stderr")),
            modules=tuple(_str_list(job, "execution.modules", value.get("modules"))),
            venv=_opt_str(job, "execution.venv", value.get("venv")),
            model=model,
            model_opts=model_opts,
        )


@dataclass(frozen=True)
class Iteration:
    """``iteration``: indexes ``start`` .. ``stop - 1``, or one iteration per ``values`` item."""

    start: int
    stop: int
    values: Optional[Tuple[str, ...]] = None

    @property
    def count(self) -> int:
        return self.stop - self.start

    def contains(self, index: int) -> bool:
        return self.start <= index < self.stop

    def value(self, index: int) -> str:
        if self.values is not None:
            return self.values[index - self.start]
        return str(index)

    @classmethod
    def parse(cls, job: Optional[str], value: Any) -> Optional[Iteration]:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _err(job, "iteration", "Wrong format of iteration directive: not a dictionary")
        _check_keys(job, "iteration", value, {"start", "stop", "values"})
        if "values" in value:
            vals = value["values"]
            if not isinstance(vals, list) or not vals:
                raise _err(job, "iteration.values", "must be a non-empty list")
            if "stop" in value or "start" in value:
                raise _err(job, "iteration", "values is mutually exclusive with start and stop")
            if len(vals) > MAX_ITERATIONS:
                raise _err(job, "iteration.values", f"at most {MAX_ITERATIONS} iterations")
            return cls(0, len(vals), tuple(_os_text(job, f"iteration.values[{i}]", str(v)) for i, v in enumerate(vals)))
        start = value.get("start", 0)
        if "stop" not in value:
            raise _err(job, "iteration.stop", "is required")
        stop = value["stop"]
        for name, num in (("start", start), ("stop", stop)):
            if isinstance(num, bool) or not isinstance(num, int):
                raise _err(job, f"iteration.{name}", f"must be an integer, not {num!r}")
        if start > stop:
            raise _err(job, "iteration",
                       "Wrong format of iteration directive: start index larger then stop one")
        if start == stop:
            raise _err(job, "iteration", "no iterations: stop must be larger than start")
        if stop - start > MAX_ITERATIONS:
            raise _err(job, "iteration", f"at most {MAX_ITERATIONS} iterations")
        return cls(start, stop)


@dataclass(frozen=True)
class Dependency:
    """One ``after`` entry: a whole job, one iteration (``name:3``) or the iteration with
    the same index (``name:${it}``, ``per_iteration``)."""

    name: str
    iteration: Optional[int] = None
    per_iteration: bool = False

    @classmethod
    def parse(cls, job: Optional[str], fld: str, text: Any, iterative: bool) -> Dependency:
        if not isinstance(text, str) or not text:
            raise _err(job, fld, f"must be a job name, not {text!r}")
        name, sep, rest = text.partition(":")
        if not name:
            raise _err(job, fld, f"invalid dependency {text!r}")
        if not sep:
            return cls(name)
        rest = rest.strip()
        if re.fullmatch(r"\$\{\s*it\s*\}|\$it", rest):
            if not iterative:
                raise _err(job, fld, f"{text!r}: ${{it}} dependencies need a job with iterations")
            return cls(name, per_iteration=True)
        if re.fullmatch(r"-?\d+", rest):
            return cls(name, iteration=int(rest))
        raise _err(job, fld, f"invalid dependency {text!r}; use 'name', 'name:<index>' or 'name:${{it}}'")

    def __str__(self) -> str:
        if self.per_iteration:
            return f"{self.name}:${{it}}"
        if self.iteration is not None:
            return f"{self.name}:{self.iteration}"
        return self.name


@dataclass(frozen=True)
class JobDescription:
    """A validated job. ``raw`` is the (submit-substituted) dictionary it came from."""

    name: str
    execution: Execution
    resources: Resources
    iteration: Optional[Iteration]
    dependencies: Tuple[Dependency, ...]
    attributes: Dict[str, Any]
    raw: Dict[str, Any]

    @classmethod
    def from_dict(cls, data: Any) -> JobDescription:
        if not isinstance(data, dict):
            raise JobDescriptionError(None, None, "Wrong submit request - wrong job data", malformed=True)
        check_values(data)
        name = validate_job_name(data.get("name"))
        _check_keys(name, "", data, _JOB_KEYS)
        iteration = Iteration.parse(name, data.get("iteration"))
        iterative = iteration is not None
        execution = Execution.parse(name, data.get("execution"))
        resources = Resources.parse(name, data.get("resources"), iterative)
        deps: List[Dependency] = []
        raw_deps = data.get("dependencies")
        if raw_deps is not None:
            if not isinstance(raw_deps, dict):
                raise _err(name, "dependencies", "must be a dictionary with an 'after' list")
            _check_keys(name, "dependencies", raw_deps, {"after"})
            after = raw_deps.get("after") or []
            if isinstance(after, str):
                after = [after]
            if not isinstance(after, list):
                raise _err(name, "dependencies.after", "must be a list of job names")
            for i, text in enumerate(after):
                dep = Dependency.parse(name, f"dependencies.after[{i}]", text, iterative)
                if dep.name == name:
                    raise _err(name, f"dependencies.after[{i}]", "a job cannot depend on itself")
                deps.append(dep)
        attributes = data.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _err(name, "attributes", "must be a dictionary")
        return cls(name, execution, resources, iteration, tuple(deps), attributes, data)

    def spent(self) -> JobDescription:
        """What a finished job still needs of its description: its name and iterations.
        What it ran, on what and after what is in the journal and the report already; the
        rest (600 bytes and more a job) is let go."""
        return JobDescription(self.name, _NOTHING_TO_RUN, _ONE_CORE, self.iteration, (), _NO_ATTRIBUTES, _NO_RAW)

    @property
    def total_iterations(self) -> int:
        return self.iteration.count if self.iteration else 1

    def iteration_indexes(self) -> Sequence[int]:
        if self.iteration is None:
            return range(0)
        return range(self.iteration.start, self.iteration.stop)


#: what a spent description holds (shared, never changed)
_NOTHING_TO_RUN = Execution()
_NO_ATTRIBUTES: Dict[str, Any] = {}
_NO_RAW: Dict[str, Any] = {}
