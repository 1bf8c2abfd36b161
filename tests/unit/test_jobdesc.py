"""Unit tests of qcg_pilotjob.jobdesc: parsing and validation of job descriptions."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from qcg_pilotjob.errors import JobDescriptionError, RequestError
from qcg_pilotjob.jobdesc import (
    Dependency,
    Iteration,
    JobDescription,
    ResourceSize,
    parse_walltime,
    validate_job_name,
)


def job(name: str = "j", **extra: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = {"name": name, "execution": {"exec": "/bin/true"}}
    data.update(extra)
    return data


def bad(data: Any) -> JobDescriptionError:
    with pytest.raises(JobDescriptionError) as info:
        JobDescription.from_dict(data)
    return info.value


# ---- minimal job and defaults ------------------------------------------------------------

def test_minimal_job_defaults() -> None:
    d = JobDescription.from_dict(job("a"))
    assert d.name == "a"
    assert d.execution.exec == "/bin/true"
    assert d.execution.args == ()
    assert d.execution.model == "default"
    assert d.resources.cores == ResourceSize(exact=1)
    assert d.resources.nodes is None
    assert d.resources.wt is None
    assert d.resources.crs == {}
    assert d.iteration is None
    assert d.dependencies == ()
    assert d.total_iterations == 1
    assert list(d.iteration_indexes()) == []
    assert d.raw["name"] == "a"


def test_job_description_error_is_request_error() -> None:
    assert issubclass(JobDescriptionError, RequestError)


def test_full_job_parses_all_fields() -> None:
    d = JobDescription.from_dict({
        "name": "full",
        "iteration": {"start": 2, "stop": 5},
        "execution": {"exec": "prog", "args": ["a", 1, 2.5], "env": {"X": "1", "Y": 2},
                      "wd": "w", "stdin": "in", "stdout": "out", "stderr": "err",
                      "modules": "mod1", "venv": "/v", "model": "OpenMP", "model_opts": {"a": 1}},
        "resources": {"numCores": {"min": 2, "max": 4}, "wt": "10m"},
        "dependencies": {"after": ["x", "y:3", "z:${it}"]},
        "attributes": {"k": "v"},
    })
    assert d.execution.args == ("a", "1", "2.5")
    assert d.execution.env == {"X": "1", "Y": "2"}
    assert d.execution.modules == ("mod1",)
    assert d.execution.model == "threads"  # openmp is an alias of threads, case-insensitive
    assert d.execution.wd == "w" and d.execution.stdout == "out" and d.execution.venv == "/v"
    assert d.resources.cores == ResourceSize(min=2, max=4)
    assert d.resources.wt == 600.0
    assert d.iteration == Iteration(2, 5)
    assert d.total_iterations == 3
    assert list(d.iteration_indexes()) == [2, 3, 4]
    assert d.dependencies == (Dependency("x"), Dependency("y", iteration=3), Dependency("z", per_iteration=True))
    assert d.attributes == {"k": "v"}


# ---- names ---------------------------------------------------------------------------------

def test_not_a_dict_is_rejected() -> None:
    assert str(bad(["x"])) == "Invalid request: Wrong submit request - wrong job data"


@pytest.mark.parametrize("data", [{"execution": {"exec": "x"}}, {"name": "", "execution": {"exec": "x"}},
                                  {"name": 5, "execution": {"exec": "x"}}])
def test_missing_name(data: Dict[str, Any]) -> None:
    assert str(bad(data)) == "Invalid request: Missing name in job description"


@pytest.mark.parametrize("name", ["a b", "a:b", "a$b", "a{", "a}", "a(b)", "a'b", 'a"b', "a\tb", "a\nb"])
def test_invalid_name_characters(name: str) -> None:
    err = bad(job(name))
    assert str(err) == f"Job identifier '{name}' contains invalid characters or unknown variables"


def test_validate_job_name_accepts_ordinary_names() -> None:
    assert validate_job_name("job-1_x.y") == "job-1_x.y"


# ---- unknown keys ---------------------------------------------------------------------------

def test_unknown_top_level_key_rejected() -> None:
    err = bad(job("a", foo=1))
    assert err.job == "a"
    assert "unknown key(s) 'foo'" in str(err)
    assert str(err).startswith("job 'a': ")


def test_unknown_execution_key_rejected() -> None:
    err = bad({"name": "a", "execution": {"exec": "x", "bogus": 1}})
    assert err.job == "a" and err.field == "execution"
    assert "'bogus'" in err.problem


def test_unknown_resources_key_rejected() -> None:
    err = bad(job("a", resources={"numCPUs": 2}))
    assert (err.job, err.field) == ("a", "resources")
    assert "'numCPUs'" in err.problem


def test_unknown_size_key_rejected() -> None:
    err = bad(job("a", resources={"numCores": {"exact": 2, "foo": 1}}))
    assert (err.job, err.field) == ("a", "resources.numCores")
    assert "'foo'" in err.problem


def test_unknown_dependencies_key_rejected() -> None:
    err = bad(job("a", dependencies={"before": ["x"]}))
    assert (err.job, err.field) == ("a", "dependencies")


def test_unknown_iteration_key_rejected() -> None:
    err = bad(job("a", iteration={"stop": 3, "step": 1}))
    assert (err.job, err.field) == ("a", "iteration")


# ---- execution ------------------------------------------------------------------------------

def test_missing_execution() -> None:
    err = bad({"name": "a"})
    assert err.job == "a"
    assert "Missing execution element in job description" in str(err)


@pytest.mark.parametrize("execution,fld,text", [
    ({}, "execution", "one of exec or script is required"),
    ({"exec": "x", "script": "y"}, "execution", "mutually exclusive"),
    ({"script": "y", "args": ["1"]}, "execution.args", "args go with exec"),
    ({"exec": "  "}, "execution.exec", "must not be empty"),
    ({"exec": 5}, "execution.exec", "must be a string"),
    ({"exec": "x", "args": {"a": 1}}, "execution.args", "must be a list"),
    ({"exec": "x", "args": ["ok", None]}, "execution.args[1]", "must be a string"),
    ({"exec": "x", "env": ["A=1"]}, "execution.env", "dictionary"),
    ({"exec": "x", "env": {"A=B": "1"}}, "execution.env", "invalid variable name"),
    ({"exec": "x", "env": {"A": None}}, "execution.env.A", "must be a string"),
    ({"exec": "x", "model": "mpich"}, "execution.model", "unknown model 'mpich'"),
    ({"exec": "x", "model_opts": [1]}, "execution.model_opts", "must be a dictionary"),
    ({"exec": "x", "wd": 3}, "execution.wd", "must be a string"),
    ("run", "execution", "must be a dictionary"),
])
def test_execution_errors_name_job_and_field(execution: Any, fld: str, text: str) -> None:
    err = bad({"name": "e", "execution": execution})
    assert err.job == "e"
    assert err.field == fld
    assert text in err.problem
    assert str(err).startswith(f"job 'e': {fld}: ")


def test_script_execution() -> None:
    d = JobDescription.from_dict({"name": "s", "execution": {"script": "echo hi"}})
    assert d.execution.script == "echo hi" and d.execution.exec is None


# ---- resource sizes -------------------------------------------------------------------------

def test_resource_size_exact_int_and_dict() -> None:
    assert ResourceSize.parse("j", "f", 3, False) == ResourceSize(exact=3)
    assert ResourceSize.parse("j", "f", {"exact": 3}, False) == ResourceSize(exact=3)
    size = ResourceSize.parse("j", "f", {"min": 2, "max": 5}, False)
    assert (size.minimum, size.maximum) == (2, 5)
    size = ResourceSize.parse("j", "f", {"min": 2}, False)
    assert (size.minimum, size.maximum) == (2, None)
    size = ResourceSize.parse("j", "f", {"max": 4}, False)
    assert (size.minimum, size.maximum) == (1, 4)


@pytest.mark.parametrize("value,fld,text", [
    (0, "resources.numCores", "must be an integer >= 1, not 0"),
    (-1, "resources.numCores", "must be an integer >= 1"),
    (True, "resources.numCores", "must be an integer or a dictionary"),
    ("2", "resources.numCores", "must be an integer or a dictionary"),
    ({}, "resources.numCores", "needs exact, min or max"),
    ({"exact": 2, "min": 1}, "resources.numCores", "exact is mutually exclusive with min and max"),
    ({"exact": 2, "max": 3}, "resources.numCores", "exact is mutually exclusive"),
    ({"exact": 0}, "resources.numCores.exact", "must be an integer >= 1, not 0"),
    ({"min": 0}, "resources.numCores.min", "must be an integer >= 1, not 0"),
    ({"max": "3"}, "resources.numCores.max", "must be an integer >= 1, not '3'"),
    ({"min": 5, "max": 3}, "resources.numCores", "min (5) is larger than max (3)"),
])
def test_resource_size_errors(value: Any, fld: str, text: str) -> None:
    err = bad(job("r", resources={"numCores": value}))
    assert (err.job, err.field) == ("r", fld)
    assert text in err.problem


def test_num_nodes_errors_name_num_nodes_field() -> None:
    err = bad(job("r", resources={"numNodes": {"min": 3, "max": 2}}))
    assert err.field == "resources.numNodes"


def test_scheduler_needs_iterations() -> None:
    err = bad(job("r", resources={"numCores": {"min": 1, "scheduler": "maximum-iters"}}))
    assert err.field == "resources.numCores.scheduler"
    assert "needs a job with iterations" in err.problem


def test_scheduler_forms_accepted() -> None:
    it = {"stop": 4}
    d = JobDescription.from_dict(job("r", iteration=it,
                                     resources={"numCores": {"min": 2, "scheduler": "Maximum-Iters"}}))
    assert d.resources.cores == ResourceSize(min=2, scheduler="maximum-iters")
    d = JobDescription.from_dict(job("r", iteration=it, resources={"numCores": {
        "scheduler": {"name": "split-into", "params": {"parts": 2}}}}))
    assert d.resources.cores.scheduler == "split-into"
    assert d.resources.cores.scheduler_params == {"parts": 2}
    assert d.resources.cores.to_dict() == {"scheduler": {"name": "split-into", "params": {"parts": 2}}}


@pytest.mark.parametrize("size,fld,text", [
    ({"min": 1, "scheduler": "round-robin"}, "resources.numCores.scheduler.name",
     "unknown iteration scheduler 'round-robin'"),
    ({"min": 1, "scheduler": {"params": {}}}, "resources.numCores.scheduler.name",
     "unknown iteration scheduler None"),
    ({"min": 1, "scheduler": 5}, "resources.numCores.scheduler", "must be a name or a dictionary"),
    ({"min": 1, "scheduler": {"name": "split-into", "x": 1}}, "resources.numCores.scheduler", "unknown key"),
    ({"min": 1, "scheduler": {"name": "split-into", "params": [1]}}, "resources.numCores.scheduler.params",
     "must be a dictionary"),
    ({"exact": 2, "scheduler": "maximum-iters"}, "resources.numCores.scheduler", "does not take exact"),
    ({"min": 1, "max": 4, "scheduler": "maximum-iters"}, "resources.numCores.scheduler",
     "the maximum-iters scheduler does not take max"),
    ({"scheduler": {"name": "split-into", "params": {"parts": 0}}},
     "resources.numCores.scheduler.params.parts", "must be an integer >= 1"),
    ({"scheduler": {"name": "maximum-iters", "params": {"parts": 2}}},
     "resources.numCores.scheduler.params", "maximum-iters takes no parameters"),
])
def test_scheduler_errors(size: Dict[str, Any], fld: str, text: str) -> None:
    err = bad(job("s", iteration={"stop": 3}, resources={"numCores": size}))
    assert (err.job, err.field) == ("s", fld)
    assert text in err.problem


def test_only_one_iteration_scheduler() -> None:
    err = bad(job("s", iteration={"stop": 3}, resources={
        "numCores": {"min": 1, "scheduler": "maximum-iters"},
        "numNodes": {"min": 1, "scheduler": "split-into"}}))
    assert err.field == "resources"
    assert "only one of numCores and numNodes" in err.problem


def test_resource_size_to_dict() -> None:
    assert ResourceSize(min=1, max=3).to_dict() == {"min": 1, "max": 3}
    assert ResourceSize(exact=2).to_dict() == {"exact": 2}


def test_resources_must_be_dict() -> None:
    err = bad(job("r", resources=[1]))
    assert (err.job, err.field) == ("r", "resources")


def test_nodes_only_leaves_cores_unset() -> None:
    d = JobDescription.from_dict(job("n", resources={"numNodes": 2}))
    assert d.resources.nodes == ResourceSize(exact=2)
    assert d.resources.cores is None


def test_node_crs_gpu_defaults_num_nodes_to_one() -> None:
    d = JobDescription.from_dict(job("g", resources={"numCores": 2, "nodeCrs": {"GPU": 2}}))
    assert d.resources.crs == {"gpu": 2}
    assert d.resources.nodes == ResourceSize(exact=1)
    assert d.resources.cores == ResourceSize(exact=2)


def test_node_crs_keeps_given_num_nodes() -> None:
    d = JobDescription.from_dict(job("g", resources={"numNodes": 3, "nodeCrs": {"gpu": 1}}))
    assert d.resources.nodes == ResourceSize(exact=3)


@pytest.mark.parametrize("crs,fld,text", [
    ([1], "resources.nodeCrs", "must be a dictionary"),
    ({"fpga": 1}, "resources.nodeCrs.fpga", "unknown consumable resource"),
    ({"gpu": 0}, "resources.nodeCrs.gpu", "must be an integer >= 1"),
    ({"gpu": "1"}, "resources.nodeCrs.gpu", "must be an integer >= 1"),
])
def test_node_crs_errors(crs: Any, fld: str, text: str) -> None:
    err = bad(job("g", resources={"nodeCrs": crs}))
    assert (err.job, err.field) == ("g", fld)
    assert text in err.problem


# ---- wall time -----------------------------------------------------------------------------

@pytest.mark.parametrize("value,seconds", [
    ("1h30m", 5400.0), ("90s", 90.0), ("2h", 7200.0), ("45m", 2700.0), ("1h2m3s", 3723.0),
    (" 10s ", 10.0), (10, 10.0), (2.5, 2.5), ("0h1s", 1.0),
])
def test_parse_walltime_valid(value: Any, seconds: float) -> None:
    assert parse_walltime(value) == seconds


@pytest.mark.parametrize("value", ["", "abc", "1d", "1m1h", "10", "1.5h", "h", "-5s", [1], None, True])
def test_parse_walltime_invalid(value: Any) -> None:
    with pytest.raises(JobDescriptionError) as info:
        parse_walltime(value, "w")
    assert info.value.job == "w"
    assert info.value.field == "resources.wt"
    assert "invalid wall time" in info.value.problem


@pytest.mark.parametrize("value", [0, 0.0, "0s", "0h0m0s", -3])
def test_parse_walltime_zero_rejected(value: Any) -> None:
    with pytest.raises(JobDescriptionError) as info:
        parse_walltime(value, "w")
    assert info.value.problem == "wall time must be greater than zero"


def test_regression_walltime_not_finite_rejected() -> None:
    # NaN passed the "<= 0" check and infinity made a wall time that never ends
    # (Python's json module accepts NaN and Infinity in request files).
    for value in (float("nan"), float("inf")):
        with pytest.raises(JobDescriptionError) as info:
            parse_walltime(value, "w")
        assert info.value.field == "resources.wt"
        assert "finite" in info.value.problem


def test_walltime_in_job() -> None:
    assert JobDescription.from_dict(job("w", resources={"wt": "1h"})).resources.wt == 3600.0
    err = bad(job("w", resources={"wt": "soon"}))
    assert (err.job, err.field) == ("w", "resources.wt")


# ---- iterations ---------------------------------------------------------------------------

def test_iteration_start_stop() -> None:
    it = Iteration.parse("j", {"start": 3, "stop": 6})
    assert it is not None
    assert (it.start, it.stop, it.count) == (3, 6, 3)
    assert it.contains(3) and it.contains(5)
    assert not it.contains(6) and not it.contains(2)
    assert it.value(4) == "4"


def test_iteration_start_defaults_to_zero() -> None:
    assert Iteration.parse("j", {"stop": 2}) == Iteration(0, 2)


def test_iteration_values() -> None:
    it = Iteration.parse("j", {"values": ["a", 2, "c"]})
    assert it == Iteration(0, 3, ("a", "2", "c"))
    assert it is not None and it.value(1) == "2"
    assert Iteration.parse("j", None) is None


@pytest.mark.parametrize("value,fld,text", [
    ([1, 2], "iteration", "Wrong format of iteration directive: not a dictionary"),
    ({"start": 1}, "iteration.stop", "is required"),
    ({"start": 5, "stop": 2}, "iteration", "start index larger then stop one"),
    ({"start": 2, "stop": 2}, "iteration", "no iterations"),
    ({"stop": "3"}, "iteration.stop", "must be an integer"),
    ({"start": 1.5, "stop": 3}, "iteration.start", "must be an integer"),
    ({"stop": True}, "iteration.stop", "must be an integer"),
    ({"values": []}, "iteration.values", "must be a non-empty list"),
    ({"values": "abc"}, "iteration.values", "must be a non-empty list"),
    ({"values": [1], "stop": 3}, "iteration", "values is mutually exclusive"),
    ({"start": 0, "stop": 100_000_001}, "iteration", "at most"),
])
def test_iteration_errors(value: Any, fld: str, text: str) -> None:
    err = bad(job("it", iteration=value))
    assert (err.job, err.field) == ("it", fld)
    assert text in err.problem


# ---- dependencies --------------------------------------------------------------------------

def test_dependency_forms() -> None:
    assert Dependency.parse("j", "f", "a", False) == Dependency("a")
    assert Dependency.parse("j", "f", "a:3", False) == Dependency("a", iteration=3)
    assert Dependency.parse("j", "f", "a:${it}", True) == Dependency("a", per_iteration=True)
    assert Dependency.parse("j", "f", "a:${ it }", True) == Dependency("a", per_iteration=True)
    assert Dependency.parse("j", "f", "a:$it", True) == Dependency("a", per_iteration=True)
    assert str(Dependency("a")) == "a"
    assert str(Dependency("a", iteration=3)) == "a:3"
    assert str(Dependency("a", per_iteration=True)) == "a:${it}"


def test_dependency_after_as_string() -> None:
    d = JobDescription.from_dict(job("b", dependencies={"after": "a"}))
    assert d.dependencies == (Dependency("a"),)


@pytest.mark.parametrize("after,fld,text", [
    ([""], "dependencies.after[0]", "must be a job name"),
    (["x", 5], "dependencies.after[1]", "must be a job name"),
    ([":3"], "dependencies.after[0]", "invalid dependency"),
    (["a:"], "dependencies.after[0]", "invalid dependency 'a:'"),
    (["a:x"], "dependencies.after[0]", "invalid dependency 'a:x'"),
    (["a:1:2"], "dependencies.after[0]", "invalid dependency"),
    (["a:${it}"], "dependencies.after[0]", "need a job with iterations"),
    (["d"], "dependencies.after[0]", "a job cannot depend on itself"),
    ({"a": 1}, "dependencies.after", "must be a list of job names"),
])
def test_dependency_errors(after: Any, fld: str, text: str) -> None:
    err = bad(job("d", dependencies={"after": after}))
    assert (err.job, err.field) == ("d", fld)
    assert text in err.problem


def test_dependencies_must_be_dict() -> None:
    err = bad(job("d", dependencies=["a"]))
    assert (err.job, err.field) == ("d", "dependencies")


def test_attributes_must_be_dict() -> None:
    err = bad(job("d", attributes=[1]))
    assert (err.job, err.field) == ("d", "attributes")
