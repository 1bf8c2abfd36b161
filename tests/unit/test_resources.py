"""Unit tests of qcg_pilotjob.resources: node specs and the first-fit pool."""

from __future__ import annotations

from typing import List, Tuple

import pytest

from qcg_pilotjob.errors import ResourceError
from qcg_pilotjob.resources import Allocation, Node, ResourcePool, parse_nodes_spec


def shape(spec: str) -> List[Tuple[str, int, int]]:
    return [(n.name, n.total, len(n.gpu_ids)) for n in parse_nodes_spec(spec)]


def pool(spec: str, **kw: bool) -> ResourcePool:
    return ResourcePool(parse_nodes_spec(spec), **kw)


# ---- parse_nodes_spec ----------------------------------------------------------------------

def test_single_number() -> None:
    assert shape("4") == [("n0", 4, 0)]
    node = parse_nodes_spec("4")[0]
    assert node.core_ids == ["0", "1", "2", "3"]
    assert node.free == [0, 1, 2, 3]


def test_named_node() -> None:
    assert shape("n1:2") == [("n1", 2, 0)]


def test_several_numbers() -> None:
    assert shape("4,2,2") == [("n0", 4, 0), ("n1", 2, 0), ("n2", 2, 0)]


def test_several_named_nodes_with_spaces() -> None:
    assert shape("n1:4, n2:4, n3:4") == [("n1", 4, 0), ("n2", 4, 0), ("n3", 4, 0)]


def test_gpus() -> None:
    assert shape("n1:4:2") == [("n1", 4, 2)]
    assert parse_nodes_spec("n1:4:2")[0].gpu_ids == ["0", "1"]
    assert shape("a:2:0,b:2:1") == [("a", 2, 0), ("b", 2, 1)]


def test_empty_name_gets_default() -> None:
    assert shape(":3") == [("n0", 3, 0)]


@pytest.mark.parametrize("spec,text", [
    ("", "empty node specification"),
    ("   ", "empty node specification"),
    ("4,,2", "empty element at position 2"),
    ("4,", "empty element at position 2"),
    ("a:1:2:3", "cannot parse 'a:1:2:3'; use [NAME:]CORES[:GPUS]"),
    ("four", "cannot parse 'four'; cores and GPUs must be integers"),
    ("n1:x", "cores and GPUs must be integers"),
    ("n1:2:x", "cores and GPUs must be integers"),
    ("n1:0", "'n1:0': a node needs at least one core"),
    ("-2", "a node needs at least one core"),
    ("n1:2,n1:3", "node name 'n1' given twice"),
    ("4,n0:2", "node name 'n0' given twice"),
])
def test_bad_specs(spec: str, text: str) -> None:
    with pytest.raises(ResourceError) as info:
        parse_nodes_spec(spec)
    assert text in str(info.value)
    assert str(info.value).startswith("--nodes: ")


def test_regression_negative_gpus_message() -> None:
    # a negative GPU count was reported as "a node needs at least one core"
    with pytest.raises(ResourceError) as info:
        parse_nodes_spec("n1:4:-1")
    assert "core" not in str(info.value)
    assert "GPU" in str(info.value)


def test_not_a_string() -> None:
    with pytest.raises(ResourceError):
        parse_nodes_spec(4)  # type: ignore[arg-type]


# ---- pool basics -------------------------------------------------------------------------

def test_pool_totals() -> None:
    p = pool("n1:6,n2:4:2")
    assert (p.total_nodes, p.total_cores, p.free_cores, p.used_cores, p.total_gpus) == (2, 10, 10, 0, 2)
    assert (p.max_node_cores, p.max_node_gpus) == (6, 2)
    assert p.usage() == {"total_nodes": 2, "total_cores": 10, "used_cores": 0, "free_cores": 10}


def test_empty_pool_rejected() -> None:
    with pytest.raises(ResourceError):
        ResourcePool([])


# ---- allocate_cores ------------------------------------------------------------------------

def test_first_fit_splits_over_nodes() -> None:
    p = pool("n1:6,n2:4")
    alloc = p.allocate_cores(8, 8)
    assert alloc is not None
    assert str(alloc) == "n1[0:1:2:3:4:5],n2[0:1]"
    assert (alloc.cores, alloc.nodes, alloc.node_names) == (8, 2, ["n1", "n2"])
    assert p.free_cores == 2
    assert p.used_cores == 8


def test_consecutive_allocations_first_fit() -> None:
    p = pool("n1:2,n2:2")
    a = p.allocate_cores(1, 1)
    b = p.allocate_cores(2, 2)
    c = p.allocate_cores(1, 1)
    assert [str(a), str(b), str(c)] == ["n1[0]", "n1[1],n2[0]", "n2[1]"]
    assert p.free_cores == 0
    assert p.allocate_cores(1, 1) is None


def test_range_takes_as_much_as_free() -> None:
    p = pool("10")
    alloc = p.allocate_cores(2, 20)
    assert alloc is not None and alloc.cores == 10
    assert p.free_cores == 0


def test_range_capped_by_max() -> None:
    p = pool("10")
    alloc = p.allocate_cores(2, 4)
    assert alloc is not None and alloc.cores == 4
    assert p.free_cores == 6


def test_unbounded_range_takes_everything_free() -> None:
    p = pool("3,3")
    assert p.allocate_cores(1, 1) is not None
    alloc = p.allocate_cores(2, None)
    assert alloc is not None
    assert str(alloc) == "n0[1:2],n1[0:1:2]"


def test_not_enough_free_returns_none_without_change() -> None:
    p = pool("4")
    assert p.allocate_cores(3, 3) is not None
    assert p.allocate_cores(2, 5) is None
    assert p.free_cores == 1


def test_release_restores_and_reuses_lowest_cores() -> None:
    p = pool("n1:2,n2:2")
    a = p.allocate_cores(3, 3)
    b = p.allocate_cores(1, 1)
    assert a is not None and b is not None
    assert p.free_cores == 0
    p.release(a)
    assert p.free_cores == 3
    assert [n.free for n in p.nodes] == [[0, 1], [0]]
    again = p.allocate_cores(3, 3)
    assert str(again) == "n1[0:1],n2[0]"
    p.release(b)
    assert p.free_cores == 1
    assert str(p.allocate_cores(1, 1)) == "n2[1]"


def test_release_all_makes_nodes_idle_again() -> None:
    p = pool("2,2")
    a = p.allocate_cores(4, 4)
    assert a is not None
    assert p.allocate_nodes(1, 1, None, None, 0) is None
    p.release(a)
    whole = p.allocate_nodes(2, 2, None, None, 0)
    assert str(whole) == "n0[0:1],n1[0:1]"


# ---- allocate_nodes ------------------------------------------------------------------------

def test_whole_node_allocation_skips_partly_used_nodes() -> None:
    p = pool("n1:4,n2:4,n3:2")
    assert str(p.allocate_cores(1, 1)) == "n1[0]"
    alloc = p.allocate_nodes(1, 1, None, None, 0)
    assert str(alloc) == "n2[0:1:2:3]"
    alloc = p.allocate_nodes(1, 1, None, None, 0)
    assert str(alloc) == "n3[0:1]"
    assert p.allocate_nodes(1, 1, None, None, 0) is None
    assert p.free_cores == 3


def test_whole_node_range_takes_all_idle_nodes() -> None:
    p = pool("2,2,2")
    alloc = p.allocate_nodes(1, None, None, None, 0)
    assert alloc is not None and alloc.nodes == 3 and alloc.cores == 6


def test_nodes_with_cores_per_node() -> None:
    p = pool("n1:4,n2:2,n3:4")
    alloc = p.allocate_nodes(2, 2, 3, 3, 0)
    # n2 has only 2 cores, so n1 and n3 are taken, 3 cores each
    assert str(alloc) == "n1[0:1:2],n3[0:1:2]"
    assert p.free_cores == 4


def test_nodes_with_core_range_per_node() -> None:
    p = pool("n1:4,n2:2")
    alloc = p.allocate_nodes(2, 2, 1, None, 0)
    assert str(alloc) == "n1[0:1:2:3],n2[0:1]"


def test_nodes_not_enough_returns_none() -> None:
    p = pool("n1:4,n2:2")
    assert p.allocate_nodes(2, 2, 3, 3, 0) is None
    assert p.free_cores == 6


def test_gpus_per_node() -> None:
    p = pool("a:4:0,b:4:2,c:4:2")
    alloc = p.allocate_nodes(1, 1, 1, 1, 2)
    assert alloc is not None
    assert alloc.node_names == ["b"]
    assert alloc.parts[0].gpu_ids == ["0", "1"]
    # b has no free GPU left: the next 1-GPU request goes to c
    alloc2 = p.allocate_nodes(1, 1, 1, 1, 1)
    assert alloc2 is not None and alloc2.node_names == ["c"]
    assert alloc2.parts[0].gpu_ids == ["0"]
    alloc3 = p.allocate_nodes(1, 1, 1, 1, 1)
    assert alloc3 is not None and alloc3.node_names == ["c"]
    assert alloc3.parts[0].gpu_ids == ["1"]
    assert p.allocate_nodes(1, 1, 1, 1, 1) is None
    p.release(alloc)
    again = p.allocate_nodes(1, 1, 1, 1, 2)
    assert again is not None and again.node_names == ["b"]


def test_whole_node_gets_all_gpus() -> None:
    p = pool("a:2:3")
    alloc = p.allocate_nodes(1, 1, None, None, 0)
    assert alloc is not None and alloc.parts[0].gpu_ids == ["0", "1", "2"]


def test_whole_node_gpu_requirement_skips_nodes_without() -> None:
    p = pool("a:2:0,b:2:1")
    alloc = p.allocate_nodes(1, 1, None, None, 1)
    assert alloc is not None and alloc.node_names == ["b"]
    assert alloc.parts[0].gpu_ids == ["0"]


def test_node_busy_with_gpus_only_is_not_idle() -> None:
    p = pool("a:2:1")
    alloc = p.allocate_nodes(1, 1, 1, 1, 1)
    assert alloc is not None
    assert p.allocate_nodes(1, 1, None, None, 0) is None
    p.release(alloc)
    assert p.allocate_nodes(1, 1, None, None, 0) is not None


# ---- system core -------------------------------------------------------------------------

def test_system_core_reserves_first_core_of_first_node() -> None:
    p = pool("n1:4,n2:2", system_core=True)
    assert p.total_cores == 5
    assert p.nodes[0].core_ids == ["1", "2", "3"]
    assert p.nodes[1].core_ids == ["0", "1"]
    alloc = p.allocate_cores(4, 4)
    assert str(alloc) == "n1[1:2:3],n2[0]"


def test_system_core_needs_two_cores() -> None:
    with pytest.raises(ResourceError) as info:
        pool("n1:1,n2:4", system_core=True)
    assert "n1" in str(info.value) and "nothing left for jobs" in str(info.value)


# ---- never_fits -----------------------------------------------------------------------------

def test_never_fits_cores() -> None:
    p = pool("4,4")
    assert p.never_fits((8, 8), None, 0) is None
    assert p.never_fits((9, None), None, 0) == "requested 9 cores but the resources have 8 in total"


def test_never_fits_nodes() -> None:
    p = pool("4,2")
    assert p.never_fits(None, (2, 2), 0) is None
    assert p.never_fits(None, (3, 3), 0) == "requested 3 nodes but the resources have 2"
    assert p.never_fits((4, 4), (2, 2), 0) == \
        "requested 2 node(s) with 4 cores each but only 1 node(s) have that"
    assert p.never_fits((2, 2), (2, 2), 0) is None


def test_never_fits_gpus() -> None:
    p = pool("a:4:0,b:4:1")
    assert p.never_fits((1, 1), (1, 1), 1) is None
    msg = p.never_fits((1, 1), (1, 1), 2)
    assert msg == ("requested 1 node(s) with 1 cores and 2 gpu each but only 0 node(s) have that "
                   "(GPUs per node: 0, 1)")


def test_never_fits_ignores_current_usage() -> None:
    p = pool("4")
    assert p.allocate_cores(4, 4) is not None
    assert p.never_fits((4, 4), None, 0) is None


# ---- nodes -------------------------------------------------------------------------------

def test_node_dict_round_trip() -> None:
    node = Node("x", ["0", "2"], ["g0"])
    back = Node.from_dict(node.to_dict())
    assert (back.name, back.core_ids, back.gpu_ids, back.free, back.free_gpus) == \
        ("x", ["0", "2"], ["g0"], [0, 1], [0])
    assert (back.total, back.used) == (2, 0)


def test_allocation_str_empty() -> None:
    assert str(Allocation([])) == ""
