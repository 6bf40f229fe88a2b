"""Where trials may go and what to queue: how many of a shape the cluster holds, which tiers to hand
Ray next (plan_launches), keeping GPU nodes' CPUs for GPU trials, and tiers no node can hold.

Ray places a CPU-only actor on any node with free CPUs, GPU nodes included. In a mixed sweep that
strands GPUs: two CPU-only trials on a 4-CPU, 1-GPU node leave its GPU idle for a whole trial, and
GPUs are what a sweep runs short of. So while GPU trials still wait, CPU-only trials are confined to
nodes without GPUs, provided one of those can hold them; afterwards they may go anywhere.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional

from mleray.config import TierConfig

GIB = 1024**3
NODE_ID_LABEL = "ray.io/node-id"  # every Ray node carries it


def fits(total: dict, tier: TierConfig) -> int:
    """How many trials of this tier the given resources (a cluster's or a node's) hold at once."""
    counts = [total.get("CPU", 0) / tier.cpus if tier.cpus else math.inf]
    if tier.gpus:
        counts.append(total.get("GPU", 0) / tier.gpus)
    if total.get("memory") and tier.memory_gb:
        counts.append(total["memory"] / (tier.memory_gb * GIB))
    best = min(counts)
    return 0 if best == math.inf else int(math.floor(best + 1e-9))


def alive_nodes() -> List[dict]:
    """Each alive node's id and total resources, from Ray."""
    import ray

    return [{"id": n["NodeID"], "resources": n.get("Resources", {})} for n in ray.nodes() if n.get("Alive")]


def gpu_nodes_to_avoid(tier: TierConfig, nodes: Iterable[dict], gpu_trials_waiting: bool) -> List[str]:
    """The ids of the GPU nodes a CPU-only trial must keep off now; none when it may go anywhere
    (it needs a GPU itself, no GPU trial waits, there are no GPU nodes, or no GPU-free node holds it)."""
    if tier.gpus or not gpu_trials_waiting:
        return []
    nodes = list(nodes)
    gpu_nodes = [n["id"] for n in nodes if n["resources"].get("GPU", 0) > 0]
    if not any(fits(n["resources"], tier) for n in nodes if n["id"] not in gpu_nodes):
        return []
    return gpu_nodes


def cpu_only_selector(tier: TierConfig, nodes: Iterable[dict], gpu_trials_waiting: bool) -> Optional[Dict[str, str]]:
    """A Ray `label_selector` that keeps a CPU-only trial off GPU nodes (gpu_nodes_to_avoid), or None."""
    avoid = gpu_nodes_to_avoid(tier, nodes, gpu_trials_waiting)
    return {NODE_ID_LABEL: "!in(" + ",".join(avoid) + ")"} if avoid else None


def placeable(tier: TierConfig, nodes: Iterable[dict]) -> bool:
    """Whether some alive node could hold one trial of this tier."""
    return any(fits(n["resources"], tier) for n in nodes)


def plan_launches(tiers: Dict[str, TierConfig], pending: Dict[str, int], waiting: Dict[str, int], total: dict,
                  nodes: List[dict]) -> Dict[str, int]:
    """How many more trials of each tier to hand to Ray now.

    Each tier keeps as many trials waiting in Ray as the cluster could start at once, so a freed slot
    is refilled by Ray itself, without a round trip to the driver. Larger GPU shares go first, and a
    tier with a smaller GPU share waits while a placeable tier with a larger one still has trials
    waiting: half-GPU trials refilling every freed half would otherwise starve whole-GPU trials (a
    whole GPU never comes free) and leave them all for the end, the worst order for the last round.
    First-fit decreasing, the bin-packing rule; durations are unknown, so longer time limits break ties.
    """
    order = sorted(tiers, key=lambda t: (-tiers[t].gpus, -tiers[t].time_limit, -tiers[t].cpus))
    plan: Dict[str, int] = {}
    larger_waiting = 0.0  # the largest GPU share among placeable tiers with trials waiting
    for name in order:
        tier = tiers[name]
        if tier.gpus and tier.gpus < larger_waiting:
            continue
        room = min(pending.get(name, 0), max(1, fits(total, tier)) - waiting.get(name, 0))
        if room > 0:
            plan[name] = room
        if tier.gpus and waiting.get(name, 0) + plan.get(name, 0) > 0 and placeable(tier, nodes):
            larger_waiting = max(larger_waiting, tier.gpus)
    return plan


def unplaceable(tiers: Dict[str, TierConfig], nodes: List[dict]) -> List[str]:
    """One line per tier that no node can hold (its trials would wait for ever on a fixed cluster)."""
    have = "; ".join(", ".join(f"memory {round(v / GIB, 1):g} GiB" if k == "memory" else f"{k} {v:g}"
                               for k, v in sorted(n["resources"].items()) if k in ("CPU", "GPU", "memory"))
                     for n in nodes) or "no nodes"
    return [f"tier {name!r} asks for {t.cpus:g} CPU, {t.gpus:g} GPU, {t.memory_gb:g} GiB, but no node has that "
            f"(nodes: {have})" for name, t in tiers.items() if not placeable(t, nodes)]
