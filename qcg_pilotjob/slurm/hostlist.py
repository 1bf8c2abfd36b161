"""Slurm host lists and per-node counts, in pure Python (no ``scontrol``).

>>> expand_hostlist("n[1-3,7],login")
['n1', 'n2', 'n3', 'n7', 'login']
>>> expand_hostlist("a[01-03]b,c")
['a01b', 'a02b', 'a03b', 'c']
>>> expand_hostlist("r[1-2]n[1-2]")
['r1n1', 'r1n2', 'r2n1', 'r2n2']
>>> expand_counts("4(x2),2")
[4, 4, 2]
>>> compress_hostlist(["n1", "n2", "n3", "n7"])
'n[1-3,7]'
"""

from __future__ import annotations

import re
from typing import List, Sequence, Tuple

__all__ = ["HostlistError", "compress_hostlist", "expand_counts", "expand_hostlist"]


class HostlistError(ValueError):
    """A host list or count list Slurm would not write."""


def _split_top(text: str) -> List[str]:
    """Split on commas that are not inside brackets."""
    parts: List[str] = []
    cur: List[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError(f"unbalanced ']' in host list {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise HostlistError(f"unbalanced '[' in host list {text!r}")
    parts.append("".join(cur))
    return parts


def _range(spec: str, whole: str) -> List[str]:
    out: List[str] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise HostlistError(f"empty range in host list {whole!r}")
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if m is None:
            raise HostlistError(f"bad range {item!r} in host list {whole!r}")
        lo_s, hi_s = m.group(1), m.group(2)
        if hi_s is None:
            out.append(lo_s)
            continue
        lo, hi = int(lo_s), int(hi_s)
        if hi < lo:
            raise HostlistError(f"descending range {item!r} in host list {whole!r}")
        if hi - lo > 1_000_000:
            raise HostlistError(f"range {item!r} too large in host list {whole!r}")
        width = len(lo_s) if lo_s.startswith("0") and len(lo_s) > 1 else 0
        out.extend(str(i).zfill(width) for i in range(lo, hi + 1))
    return out


def _expand_one(pattern: str, whole: str) -> List[str]:
    m = re.search(r"\[([^\[\]]*)\]", pattern)
    if m is None:
        if "[" in pattern or "]" in pattern:
            raise HostlistError(f"bad brackets in host list {whole!r}")
        return [pattern]
    head, tail = pattern[:m.start()], pattern[m.end():]
    return [head + v + rest for v in _range(m.group(1), whole) for rest in _expand_one(tail, whole)]


def expand_hostlist(text: str) -> List[str]:
    """All host names of a Slurm host list, in order (duplicates kept, as Slurm does)."""
    text = text.strip()
    if not text:
        return []
    out: List[str] = []
    for part in _split_top(text):
        part = part.strip()
        if not part:
            raise HostlistError(f"empty element in host list {text!r}")
        out.extend(_expand_one(part, text))
    return out


def expand_counts(text: str) -> List[int]:
    """``SLURM_JOB_CPUS_PER_NODE`` / ``SLURM_TASKS_PER_NODE`` form: ``4(x2),2`` -> [4, 4, 2]."""
    out: List[int] = []
    for item in text.strip().split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", item)
        if m is None:
            raise HostlistError(f"bad count list {text!r}")
        out.extend([int(m.group(1))] * int(m.group(2) or 1))
    return out


def compress_hostlist(names: Sequence[str]) -> str:
    """The short form of a list of names (one bracket group per common prefix)."""
    groups: List[Tuple[str, List[str]]] = []
    for name in names:
        m = re.fullmatch(r"(.*?)(\d+)", name)
        prefix, num = (m.group(1), m.group(2)) if m else (name, "")
        if num and groups and groups[-1][0] == prefix and groups[-1][1] and groups[-1][1][0] != "":
            groups[-1][1].append(num)
        else:
            groups.append((prefix, [num] if num else [""]))
    out = []
    for prefix, nums in groups:
        if nums == [""]:
            out.append(prefix)
        elif len(nums) == 1:
            out.append(prefix + nums[0])
        else:
            ranges: List[List[str]] = []
            for n in nums:
                # joined only if expanding the range gives n back: 9,10 -> 9-10, 09,10 -> 09-10, 1,02 -> 1,02
                start = ranges[-1][0] if ranges else ""
                width = len(start) if len(start) > 1 and start.startswith("0") else 0
                if ranges and int(n) == int(ranges[-1][-1]) + 1 and n == str(int(n)).zfill(width):
                    ranges[-1].append(n)
                else:
                    ranges.append([n])
            body = ",".join(r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in ranges)
            out.append(f"{prefix}[{body}]")
    return ",".join(out)
