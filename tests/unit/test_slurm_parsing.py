"""Slurm host lists, count lists, allocation discovery and version strings (pure, no Slurm)."""

from __future__ import annotations

import random
import re
from typing import Dict

import pytest

from qcg_pilotjob.errors import ResourceError
from qcg_pilotjob.launcher.agent import Agent
from qcg_pilotjob.slurm.allocation import SlurmAllocation, in_slurm_allocation, parse_slurm_version
from qcg_pilotjob.slurm.hostlist import HostlistError, compress_hostlist, expand_counts, expand_hostlist


# ---- expand_hostlist ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("n[1-4,7]", ["n1", "n2", "n3", "n4", "n7"]),
    ("a[01-03]b,c", ["a01b", "a02b", "a03b", "c"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("n[1-2],m[3-4]x[5-6]", ["n1", "n2", "m3x5", "m3x6", "m4x5", "m4x6"]),
    ("n[1-3]-ib", ["n1-ib", "n2-ib", "n3-ib"]),
    ("n[1-3,7],login", ["n1", "n2", "n3", "n7", "login"]),
    ("n[08-11]", ["n08", "n09", "n10", "n11"]),
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
    ("n[001-003]", ["n001", "n002", "n003"]),
    ("n[9-10]", ["n9", "n10"]),
    ("n[0-1]", ["n0", "n1"]),
    ("n[07]", ["n07"]),
    ("n1", ["n1"]),
    ("login", ["login"]),
    ("  n1 ", ["n1"]),
    ("n1,n2,n1", ["n1", "n2", "n1"]),  # duplicates are kept, in order
    ("", []),
])
def test_expand_hostlist(text: str, expected: list) -> None:
    assert expand_hostlist(text) == expected


@pytest.mark.parametrize("text, words", [
    ("n[1-2", "unbalanced '['"),
    ("n1-2]", "unbalanced ']'"),
    ("n[1-2]]", "unbalanced ']'"),
    ("n]1[", "unbalanced ']'"),
    ("n[[1]]", "bad brackets"),
    ("n[4-1]", "descending range"),
    ("n[10-09]", "descending range"),
    ("n[]", "empty range"),
    ("n[1,,2]", "empty range"),
    ("n1,,n2", "empty element"),
    (",", "empty element"),
    ("n[a-b]", "bad range"),
    ("n[1-]", "bad range"),
    ("n[-1]", "bad range"),
    ("n[1-2-3]", "bad range"),
])
def test_expand_hostlist_errors(text: str, words: str) -> None:
    with pytest.raises(HostlistError, match=re.escape(words)) as info:
        expand_hostlist(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


# ---- expand_counts -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("4(x2),2", [4, 4, 2]),
    ("1(x4)", [1, 1, 1, 1]),
    ("4,2,1", [4, 2, 1]),
    ("4(x4)", [4, 4, 4, 4]),
    ("3", [3]),
    ("2(x1),1(x2)", [2, 1, 1]),
    (" 4(x2) ", [4, 4]),
])
def test_expand_counts(text: str, expected: list) -> None:
    assert expand_counts(text) == expected


@pytest.mark.parametrize("text", ["", "4(x)", "(x2)", "4(x2)x", "a", "4,,2", "4 (x2)", "-1", "4(X2)", "4(x2"])
def test_expand_counts_errors(text: str) -> None:
    with pytest.raises(HostlistError, match="bad count list"):
        expand_counts(text)


# ---- compress_hostlist -------------------------------------------------------------------------
@pytest.mark.parametrize("names, short", [
    (["n1", "n2", "n3", "n7"], "n[1-3,7]"),
    (["n1", "n2", "n3", "n4"], "n[1-4]"),
    (["n01", "n02", "n10"], "n[01-02,10]"),
    (["n09", "n10"], "n[09-10]"),
    (["n9", "n10"], "n[9-10]"),
    (["n1", "n02"], "n[1,02]"),  # 1-2 would expand to n2
    (["n01", "n2"], "n[01,2]"),  # 01-02 would expand to n02
    (["n099", "n100"], "n[099-100]"),
    (["a", "b1", "b2", "c"], "a,b[1-2],c"),
    (["r1n1", "r1n2", "r2n1"], "r1n[1-2],r2n1"),
    (["n3", "n2", "n1"], "n[3,2,1]"),  # order is kept
    (["n1", "n1"], "n[1,1]"),
    (["n001"], "n001"),
    (["x"], "x"),
    ([], ""),
])
def test_compress_hostlist(names: list, short: str) -> None:
    assert compress_hostlist(names) == short
    assert expand_hostlist(short) == names


@pytest.mark.parametrize("text", ["n[1-4,7]", "a[01-03]b,c", "r[1-2]n[1-2]", "n[098-101],login", "n[1-3]-ib,m7",
                                  "n[1-100]", "x,y,z"])
def test_compress_round_trip(text: str) -> None:
    names = expand_hostlist(text)
    assert expand_hostlist(compress_hostlist(names)) == names


def test_regression_compress_widths() -> None:
    """Unpadded numbers of different widths make one range, as Slurm writes it (was
    ``n[1-9,10-99,100]``)."""
    names = [f"n{i}" for i in range(1, 101)]
    assert compress_hostlist(names) == "n[1-100]"
    assert expand_hostlist("n[1-100]") == names
    padded = [f"n{i:03d}" for i in range(98, 103)]
    assert compress_hostlist(padded) == "n[098-102]"
    assert compress_hostlist(["n8", "n9", "n10", "n011"]) == "n[8-10,011]"


def test_compress_round_trip_random() -> None:
    rnd = random.Random(7)
    for _ in range(500):
        names = []
        for _ in range(rnd.randrange(1, 12)):
            num = rnd.randrange(0, 130)
            width = rnd.choice([0, 0, 2, 3])
            names.append(rnd.choice(["n", "r1n", "gpu"]) + str(num).zfill(width))
        assert expand_hostlist(compress_hostlist(names)) == names, names


# ---- SlurmAllocation.from_env ------------------------------------------------------------------
def _alloc_env(nodelist: str, cpus: str, tasks: str, **extra: str) -> Dict[str, str]:
    """What a batch script sees (NOTES.md, "Env formats"), here from sbatch on n1."""
    env = {"SLURM_JOB_ID": "42", "SLURM_JOBID": "42", "SLURM_JOB_NODELIST": nodelist, "SLURM_NODELIST": nodelist,
           "SLURM_JOB_CPUS_PER_NODE": cpus, "SLURM_TASKS_PER_NODE": tasks,
           "SLURM_JOB_NUM_NODES": str(len(expand_hostlist(nodelist))), "SLURMD_NODENAME": "n1"}
    env.update(extra)
    return env


@pytest.mark.parametrize("request_, env, names, cpus", [
    ("-N4", _alloc_env("n[1-4]", "1(x4)", "1(x4)"), ["n1", "n2", "n3", "n4"], [1, 1, 1, 1]),
    ("-N4 --ntasks-per-node=4", _alloc_env("n[1-4]", "4(x4)", "4(x4)", SLURM_NTASKS_PER_NODE="4"),
     ["n1", "n2", "n3", "n4"], [4, 4, 4, 4]),
    ("-N3 -n7", _alloc_env("n[1-3]", "4,2,1", "4,2,1", SLURM_NTASKS="7"), ["n1", "n2", "n3"], [4, 2, 1]),
    ("-n5", _alloc_env("n[1-2]", "4,1", "4,1"), ["n1", "n2"], [4, 1]),
    ("-N2 --exclusive", _alloc_env("n[1-2]", "4(x2)", "4(x2)"), ["n1", "n2"], [4, 4]),
    # cores are the job's CPUs, not its tasks
    ("-N4 --ntasks-per-node=2 -c2", _alloc_env("n[1-4]", "4(x4)", "2(x4)", SLURM_CPUS_PER_TASK="2"),
     ["n1", "n2", "n3", "n4"], [4, 4, 4, 4]),
    ("-N2 -n2 -c3", _alloc_env("n[1-2]", "3(x2)", "1(x2)", SLURM_CPUS_PER_TASK="3"), ["n1", "n2"], [3, 3]),
])
def test_from_env_formats(request_: str, env: Dict[str, str], names: list, cpus: list) -> None:
    alloc = SlurmAllocation.from_env(env)
    assert alloc.job_id == "42"
    assert alloc.node_names == names, request_
    assert alloc.cpus == cpus, request_
    nodes = alloc.nodes()
    assert [n.name for n in nodes] == names
    assert [n.total for n in nodes] == cpus
    assert [n.core_ids for n in nodes] == [[str(c) for c in range(k)] for k in cpus]
    assert all(n.gpu_ids == [] for n in nodes)
    assert in_slurm_allocation(env)


def test_from_env_inside_a_step_uses_job_vars() -> None:
    """Inside a step (``srun -N1 -n1 -w n1`` in ``-N4 --ntasks-per-node=4``) the plain vars
    describe the step; the JOB_* ones win."""
    env = {
        "SLURM_JOB_ID": "9", "SLURM_JOBID": "9", "SLURM_STEP_ID": "0",
        "SLURM_NODELIST": "n[1-4]", "SLURM_JOB_NODELIST": "n[1-4]", "SLURM_STEP_NODELIST": "n1",
        "SLURM_JOB_CPUS_PER_NODE": "4(x4)", "SLURM_NNODES": "1", "SLURM_NTASKS": "1",
        "SLURM_TASKS_PER_NODE": "1", "SLURM_NTASKS_PER_NODE": "4", "SLURM_CPUS_ON_NODE": "4",
    }
    alloc = SlurmAllocation.from_env(env)
    assert alloc.node_names == ["n1", "n2", "n3", "n4"]
    assert alloc.cpus == [4, 4, 4, 4]


def test_from_env_job_nodelist_preferred() -> None:
    env = _alloc_env("n[1-2]", "4(x2)", "1")
    env["SLURM_NODELIST"] = "n1"           # a step's list
    env["SLURM_TASKS_PER_NODE"] = "1"      # a step's count
    alloc = SlurmAllocation.from_env(env)
    assert (alloc.node_names, alloc.cpus) == (["n1", "n2"], [4, 4])


def test_from_env_fallbacks() -> None:
    """Without the JOB_* forms the plain ones are used (SLURM_JOBID, SLURM_NODELIST,
    SLURM_TASKS_PER_NODE)."""
    env = {"SLURM_JOBID": "5", "SLURM_NODELIST": "a[01-02]", "SLURM_TASKS_PER_NODE": "2,3"}
    alloc = SlurmAllocation.from_env(env)
    assert (alloc.job_id, alloc.node_names, alloc.cpus) == ("5", ["a01", "a02"], [2, 3])


@pytest.mark.parametrize("begin, end, names, cpus", [
    (None, None, ["n1", "n2", "n3", "n4"], [4, 3, 2, 1]),
    (0, 4, ["n1", "n2", "n3", "n4"], [4, 3, 2, 1]),
    (1, 3, ["n2", "n3"], [3, 2]),
    (2, None, ["n3", "n4"], [2, 1]),
    (None, 1, ["n1"], [4]),
    (3, 4, ["n4"], [1]),
    (0, 1, ["n1"], [4]),
])
def test_from_env_node_range(begin: object, end: object, names: list, cpus: list) -> None:
    env = _alloc_env("n[1-4]", "4,3,2,1", "4,3,2,1")
    alloc = SlurmAllocation.from_env(env, begin=begin, end=end)  # type: ignore[arg-type]
    assert alloc.node_names == names
    assert alloc.cpus == cpus
    assert [(n.name, n.total) for n in alloc.nodes()] == list(zip(names, cpus))


@pytest.mark.parametrize("begin, end", [(4, None), (5, None), (0, 5), (2, 2), (3, 1), (None, 0), (4, 6)])
def test_from_env_node_range_errors(begin: object, end: object) -> None:
    env = _alloc_env("n[1-4]", "4(x4)", "4(x4)")
    with pytest.raises(ResourceError, match=r"outside the allocation's 4 nodes \(begin inclusive, end exclusive\)"):
        SlurmAllocation.from_env(env, begin=begin, end=end)  # type: ignore[arg-type]


@pytest.mark.parametrize("env, words", [
    ({}, "not inside a Slurm allocation"),
    ({"SLURM_JOB_ID": "1"}, "not inside a Slurm allocation"),
    ({"SLURM_JOB_NODELIST": "n1", "SLURM_JOB_CPUS_PER_NODE": "4"}, "not inside a Slurm allocation"),
    ({"SLURM_JOB_ID": "", "SLURM_JOB_NODELIST": "n1"}, "not inside a Slurm allocation"),
    ({"SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "n[1-2]"}, "SLURM_JOB_CPUS_PER_NODE is not set"),
    ({"SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "n[1-2", "SLURM_JOB_CPUS_PER_NODE": "4(x2)"},
     "cannot read the Slurm allocation: unbalanced"),
    ({"SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_CPUS_PER_NODE": "4x2"},
     "cannot read the Slurm allocation: bad count list"),
    ({"SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "n[1-3]", "SLURM_JOB_CPUS_PER_NODE": "4(x2)"},
     "gives 2 nodes but the node list has 3"),
])
def test_from_env_errors(env: Dict[str, str], words: str) -> None:
    with pytest.raises(ResourceError, match=words):
        SlurmAllocation.from_env(env)


def test_in_slurm_allocation() -> None:
    assert not in_slurm_allocation({})
    assert not in_slurm_allocation({"SLURM_JOB_ID": "1"})
    assert in_slurm_allocation({"SLURM_JOB_ID": "1", "SLURM_NODELIST": "n1"})


def test_from_env_gpus_single_node() -> None:
    env = _alloc_env("n1", "4", "4", SLURM_JOB_GPUS="0,1")
    alloc = SlurmAllocation.from_env(env)
    assert alloc.gpus == {"n1": ["0", "1"]}
    (node,) = alloc.nodes()
    assert (node.name, node.total, node.gpu_ids) == ("n1", 4, ["0", "1"])


def test_from_env_step_gpus_single_node() -> None:
    env = _alloc_env("g7", "2", "2", SLURM_STEP_GPUS="3")
    assert SlurmAllocation.from_env(env).nodes()[0].gpu_ids == ["3"]


def test_from_env_gpus_ignored_on_several_nodes() -> None:
    """SLURM_JOB_GPUS lists only the batch node's GPUs: not spread over other nodes."""
    env = _alloc_env("n[1-2]", "4(x2)", "4(x2)", SLURM_JOB_GPUS="0,1")
    alloc = SlurmAllocation.from_env(env)
    assert alloc.gpus == {}
    assert [n.gpu_ids for n in alloc.nodes()] == [[], []]


# ---- parse_slurm_version -----------------------------------------------------------------------
@pytest.mark.parametrize("text, version", [
    ("slurm-wlm 22.05.8", (22, 5, 8)),
    ("slurm-wlm 22.05.8\n", (22, 5, 8)),
    ("slurm 23.02.1", (23, 2, 1)),
    ("slurm 20.11", (20, 11)),
    ("slurm 24.05.0-0rc1", (24, 5, 0)),
])
def test_parse_slurm_version(text: str, version: tuple) -> None:
    assert parse_slurm_version(text) == version


@pytest.mark.parametrize("text", ["", "garbage", "slurm", "slurm-wlm version unknown", "srun: command not found"])
def test_parse_slurm_version_errors(text: str) -> None:
    with pytest.raises(ResourceError, match="cannot read a Slurm version"):
        parse_slurm_version(text)


# ---- node agent CPU binding (positions Slurm counts -> CPUs the agent may use) ------------------
def _agent(cpus: list) -> Agent:
    agent = Agent("tcp://127.0.0.1:1", "n1")
    agent.cpus = cpus
    return agent


@pytest.mark.parametrize("cpus, cores, bound", [
    ([0, 1, 2, 3], [1, 3], [1, 3]),          # enough CPUs: position i is CPU i
    ([4, 5, 6, 7], [0, 2], [4, 6]),          # positions index the usable CPUs
    ([0, 1], [1], [1]),
    ([0, 1], [2], [0]),                      # wraps around
    ([0, 1], [0, 1, 2, 3], [0, 1]),          # more cores than CPUs: all of them
    ([0, 1], None, None),
])
def test_agent_bind_cpus(cpus: list, cores: object, bound: object) -> None:
    assert _agent(cpus)._bind_cpus(cores) == bound  # type: ignore[arg-type]


def test_regression_agent_wrap_distinct_cpus() -> None:
    """A 2-core task at positions 0 and 2 on a node whose agent may use 2 CPUs was bound to
    CPU 0 alone (both positions wrapped onto it) while CPU 1 stayed unused."""
    agent = _agent([0, 1])
    assert agent._bind_cpus([0, 2]) == [0, 1]
    assert agent._bind_cpus([1, 3]) == [0, 1]
    assert _agent([0, 1, 2])._bind_cpus([0, 3]) == [0, 1]
    for cores in ([0, 2], [1, 3], [2, 3], [0, 1, 2], [3, 2]):
        assert len(agent._bind_cpus(cores) or []) == min(len(cores), 2)
