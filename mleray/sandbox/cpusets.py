"""CPU sets shared by the backends: the kernel's list syntax ("0-2,5"), and choosing the cores a new
trial gets, the least taken by the trials already running first, so concurrent trials spread out."""

from __future__ import annotations

from typing import Iterable, List, Sequence


def cpu_list(text: str) -> List[int]:
    """"0-2,5" -> [0, 1, 2, 5]; blank or malformed parts are skipped."""
    cpus: List[int] = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def cpu_text(cpus: Iterable[int]) -> str:
    """[2, 0] -> "0,2"."""
    return ",".join(str(c) for c in sorted(cpus))


def least_taken(usable: Sequence[int], taken: Iterable[str], count: int) -> List[int]:
    """`count` of the `usable` cores (at least one, at most all), the fewest times named in `taken`
    (other trials' cpusets, in list syntax) first; ties go to the highest numbered."""
    load = dict.fromkeys(usable, 0)
    for cpuset in taken:
        for cpu in cpu_list(cpuset):
            if cpu in load:
                load[cpu] += 1
    ranked = sorted(load, key=lambda c: (load[c], -c))
    return sorted(ranked[:max(1, min(count, len(ranked)))])
