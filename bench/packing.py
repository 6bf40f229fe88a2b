"""Packing efficiency: makespan ÷ lower bound for mleray's scheduler and for a fixed worker pool.

A simulated cluster (ray.cluster_utils.Cluster in this process; worker nodes with fake CPU/GPU
counts, the first one doubling as the head) runs the same trials, one scheduler after the other:

- mleray: `mleray.sweep.scheduler.Scheduler`, one actor per trial asking for the trial's own shape
  (CPUs, fractional or whole GPUs), through the scheduler's `actor_cls` hook with an actor that
  sleeps for the trial's known duration instead of running an agent; with the scheduler's
  per-tier queues in Ray and its placement rules (mleray.sweep.placement).
- pool: a fixed pool like MLE-bench's runner (`run_agent.py`: N asyncio workers, each taking the
  next trial from a queue and running it in a container of one fixed hardware config). Here N
  long-lived Ray actors, each holding one slot sized for the largest trial (so any trial fits any
  slot, as a fixed config must), N = as many such slots as the cluster holds.

Trials mostly run to their time limit, as MLE-bench agents do: each sleeps time_limit x U(0.85, 1).
Lower bound of the makespan: the larger of the longest trial and, for each resource (CPU, GPU),
the total resource-seconds of all trials divided by the cluster's capacity of it. The measured
makespan is the driver's wall time from the first launch to the last record. Each policy is also
simulated with zero overheads (instant actor start, instant driver), which separates what the
policy leaves on the table from what this machine's process starts cost.

    python bench/packing.py                   # 126 trials of 60 s: about 35 minutes on 2 cores (mleray
                                              # about 11 of them, the fixed pool the rest)
    python bench/packing.py --quick           # about 2 minutes, a smoke run
    python bench/packing.py --runs none       # the simulations only (seconds)

Beyond the fixed pool, the realistic baseline (simulated, zero overheads like mleray's simulated
policy): one MLE-bench-style pool per tier on a static split of the nodes, every maximal way of
cutting each node into slots of the tiers' shapes searched; the split a user would plan (least
makespan at the expected durations) and the best in hindsight. Under three duration models (MODELS):
U(0.85, 1) of the limit, a share of early crashes (bimodal), and a heavy tail.

With few trials per slot the last round is part-filled whatever the policy (trials are indivisible),
so the default sweep is deep enough (about 24 trials per GPU) for the ratio to reflect the policy;
`--scale 1 --seconds 30` is the old 42-trial mix.

Writes bench/results/packing.json and bench/results/packing.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

import ray
from measure import ROOT

from mleray.config import SweepConfig, TierConfig
from mleray.records import Status, TrialResult
from mleray.storage.store import SweepStore
from mleray.sweep.placement import gpu_nodes_to_avoid, plan_launches
from mleray.sweep.scheduler import Scheduler
from mleray.sweep.trials import TrialSpec
from mleray.trial.actor import TrialHost

# Worker nodes of the simulated cluster (fake resources), and the trial shapes (tiers) of the sweep.
NODES = {"cpu8": {"num_cpus": 8, "num_gpus": 0},
         "gpu1": {"num_cpus": 4, "num_gpus": 1},
         "gpu4": {"num_cpus": 8, "num_gpus": 4}}
TIERS = {"cpu2": TierConfig(cpus=2, memory_gb=0.05, gpus=0),
         "gpu-half": TierConfig(cpus=1, memory_gb=0.05, gpus=0.5),
         "gpu1": TierConfig(cpus=2, memory_gb=0.05, gpus=1)}


@ray.remote(max_restarts=0, max_concurrency=2)
class SleepTrial(TrialHost):
    """mleray's trial actor, minus the agent: sleeps for the trial's duration."""

    def work(self, job):
        spec = job.spec
        t0 = time.time()
        time.sleep(float(spec.competition.split("@")[1]))
        record = TrialResult(competition_id=spec.competition, sweep=spec.sweep, trial_id=spec.trial_id,
                             agent=spec.agent, tier=spec.tier, seed=spec.seed, attempt=job.attempt,
                             status=Status.GRADED, node_id=ray.get_runtime_context().get_node_id()).to_dict()
        return {**record, "t_start": t0, "t_end": time.time()}


@ray.remote(max_restarts=0)
class PoolWorker:
    """One slot of a fixed pool: holds the largest shape for the whole run, runs trials in turn."""

    def run(self, seconds: float):
        t0 = time.time()
        time.sleep(seconds)
        return t0, time.time()


# Duration models: a trial's duration as a share of its time limit.
CRASH_SHARE = 0.25  # "crashes": this share of trials end within the first 10 % of their limit
MODELS = {
    "uniform": "U(0.85, 1): agents mostly use their whole time limit",
    "crashes": f"{CRASH_SHARE:.0%} crash early, U(0.01, 0.1); the rest U(0.85, 1) (bimodal)",
    "heavy-tail": "lognormal, median 0.3, sigma 1, cut at the limit (a few run to the limit, most stop well before)",
}


def share(model: str, rng: random.Random, jitter: float = 0.85) -> float:
    """One trial's duration as a share of its time limit, under `model` (MODELS)."""
    if model == "uniform":
        return rng.uniform(jitter, 1.0)
    if model == "crashes":
        return rng.uniform(0.01, 0.1) if rng.random() < CRASH_SHARE else rng.uniform(jitter, 1.0)
    if model == "heavy-tail":
        return min(1.0, max(0.01, rng.lognormvariate(math.log(0.3), 1.0)))
    raise ValueError(f"unknown duration model {model!r} (one of {', '.join(MODELS)})")


def mean_share(model: str, jitter: float = 0.85) -> float:
    """The expected share under `model` (what a user planning a static split can know beforehand)."""
    rng = random.Random(12345)
    return sum(share(model, rng, jitter) for _ in range(20000)) / 20000


def make_trials(counts: dict, seconds: float, jitter: float, seed: int, model: str = "uniform"):
    """`counts[tier]` trials of each tier, each sleeping `seconds` x a share of its time limit drawn
    from the duration model (by default U(jitter, 1): agents mostly use their whole time limit; some
    stop early), in a sweep's order (seed-major, tiers interleaved), as TrialSpecs whose competition
    id carries the duration."""
    rng = random.Random(seed)
    trials = []
    for i in range(max(counts.values())):
        for tier_name, tier in TIERS.items():
            if i < counts.get(tier_name, 0):
                sleep = round(seconds * share(model, rng, jitter), 2)
                trials.append(TrialSpec("packing", "sleep", f"c{i:03d}-{tier_name}@{sleep}", tier_name, 0, tier))
    return trials


def duration(spec: TrialSpec) -> float:
    return float(spec.competition.split("@")[1])


def node_capacity(nodes: dict) -> dict:
    """The simulated cluster's total CPUs and GPUs."""
    return {"CPU": sum(r["num_cpus"] for r in nodes.values()), "GPU": sum(r["num_gpus"] for r in nodes.values())}


def lower_bound(trials, capacity: dict) -> dict:
    cpu_work = sum(duration(t) * t.resources.cpus for t in trials)
    gpu_work = sum(duration(t) * t.resources.gpus for t in trials)
    bounds = {"longest_trial_s": max(duration(t) for t in trials),
              "cpu_work_over_capacity_s": cpu_work / capacity["CPU"],
              "gpu_work_over_capacity_s": gpu_work / capacity["GPU"] if capacity.get("GPU") else 0.0}
    bounds["lower_bound_s"] = max(bounds.values())
    return bounds


def run_mleray(trials, workdir: Path) -> dict:
    cfg = SweepConfig(name="packing", tiers=dict(TIERS), retries=0)
    store = SweepStore(workdir)
    scheduler = Scheduler(cfg, store, "bwrap", [], actor_cls=SleepTrial)
    t0 = time.time()
    assert scheduler.run(trials)
    wall = time.time() - t0
    recs = store.records
    assert len(recs) == len(trials) and all(r["status"] == Status.GRADED for r in recs)
    spans = [(r["t_start"], r["t_end"]) for r in recs]
    return {"makespan_s": wall, "actor_span_s": max(e for _, e in spans) - min(s for s, _ in spans),
            "peak_concurrency": _peak(spans), "mean_concurrency": sum(e - s for s, e in spans) / wall,
            "mean_start_latency_s": _start_latency(recs, t0)}


def _start_latency(recs, t0) -> float:
    """Mean gap between a trial's start and the moment its resources last became free (a proxy for
    per-trial scheduling overhead): for each trial after the first wave, start - previous end on
    the same node, clipped at 0."""
    by_node = {}
    for r in sorted(recs, key=lambda r: r["t_start"]):
        by_node.setdefault(r["node_id"], []).append(r)
    gaps = []
    for rs in by_node.values():
        ends = []
        for r in rs:
            earlier = [e for e in ends if e <= r["t_start"]]
            if earlier and r["t_start"] - t0 > 1.0:
                gaps.append(r["t_start"] - max(earlier))
            ends.append(r["t_end"])
    return sum(gaps) / len(gaps) if gaps else 0.0


def _peak(spans) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def pool_slots(nodes: dict, cpus: float, gpus: float) -> int:
    """How many fixed slots of (cpus, gpus) the nodes hold."""
    total = 0
    for res in nodes.values():
        fit = res["num_cpus"] // cpus if cpus else float("inf")
        if gpus:
            fit = min(fit, res["num_gpus"] // gpus)
        total += int(fit)
    return total


def run_pool(trials) -> dict:
    cpus = max(t.resources.cpus for t in trials)
    gpus = max(t.resources.gpus for t in trials)
    n = pool_slots(NODES, cpus, gpus)
    workers = [PoolWorker.options(num_cpus=cpus, num_gpus=gpus).remote() for _ in range(n)]
    queue = deque(trials)
    t0 = time.time()
    busy = {}
    spans = []
    for w in workers:  # each worker takes the next trial
        busy[w.run.remote(duration(queue[0]))] = w
        queue.popleft()
    while busy:
        [ref], _ = ray.wait(list(busy), num_returns=1)
        w = busy.pop(ref)
        spans.append(ray.get(ref))
        if queue:
            busy[w.run.remote(duration(queue.popleft()))] = w
    wall = time.time() - t0
    for w in workers:
        ray.kill(w)
    return {"makespan_s": wall, "workers": n, "slot": {"CPU": cpus, "GPU": gpus},
            "peak_concurrency": _peak(spans), "mean_concurrency": sum(e - s for s, e in spans) / wall}


def simulate_mleray(trials, nodes: dict) -> float:
    """Makespan of mleray's policy with zero overheads (instant actor start, instant driver): the
    driver hands Ray what mleray.sweep.placement.plan_launches asks for; whenever resources free up,
    trials waiting in Ray, in launch order, take the first node they fit on (Ray places any pending
    actor that fits), CPU-only ones only on GPU-free nodes while GPU trials wait."""
    capacity = node_capacity(nodes)
    node_list = [{"id": n, "resources": {"CPU": r["num_cpus"], "GPU": r["num_gpus"]}} for n, r in nodes.items()]
    free = {name: [float(r["num_cpus"]), float(r["num_gpus"])] for name, r in nodes.items()}
    queues, tiers = {}, {}
    for t in trials:
        queues.setdefault(t.tier, deque()).append(t)
        tiers[t.tier] = t.resources
    waiting, running, now = [], [], 0.0
    while any(queues.values()) or waiting or running:
        plan = plan_launches(tiers, {k: len(q) for k, q in queues.items()}, Counter(w.tier for w in waiting),
                             capacity, node_list)
        for tier, count in plan.items():
            waiting += [queues[tier].popleft() for _ in range(count)]
        for t in list(waiting):
            gpu_waiting = (any(w.resources.gpus for w in waiting)
                           or any(q and q[0].resources.gpus for q in queues.values()))
            avoid = gpu_nodes_to_avoid(t.resources, node_list, gpu_waiting)
            for name in [n for n in free if n not in avoid]:
                cpu, gpu = free[name]
                if cpu + 1e-9 >= t.resources.cpus and gpu + 1e-9 >= t.resources.gpus:
                    free[name][0] -= t.resources.cpus
                    free[name][1] -= t.resources.gpus
                    running.append((now + duration(t), name, t))
                    waiting.remove(t)
                    break
        if not running:
            raise ValueError("a trial fits no node")
        running.sort(key=lambda x: x[0])
        end, name, t = running.pop(0)
        now = end
        free[name][0] += t.resources.cpus
        free[name][1] += t.resources.gpus
    return now


def simulate_pool(trials, slots: int) -> float:
    """Makespan of N identical slots each taking the next trial in order, with zero overheads."""
    import heapq

    ends = [0.0] * slots
    for t in trials:
        start = heapq.heappop(ends)
        heapq.heappush(ends, start + duration(t))
    return max(ends)


def node_splits(res: dict) -> list:
    """Every maximal way to cut one node into fixed slots of the tiers' shapes: {tier: slots}, each
    slot holding its tier's CPUs and GPUs for the whole run (no slot could be added)."""
    shapes = [(name, tier.cpus, tier.gpus) for name, tier in TIERS.items()]
    ranges = [range(int(res["num_cpus"] // c) + 1 if c else 1) for _, c, _ in shapes]
    fits = []
    for counts in itertools.product(*ranges):
        cpu = sum(n * c for n, (_, c, _) in zip(counts, shapes))
        gpu = sum(n * g for n, (_, _, g) in zip(counts, shapes))
        if cpu <= res["num_cpus"] + 1e-9 and gpu <= res["num_gpus"] + 1e-9:
            fits.append(counts)
    maximal = [f for f in fits if not any(o != f and all(a >= b for a, b in zip(o, f)) for o in fits)]
    return [{name: n for (name, _, _), n in zip(shapes, counts) if n} for counts in maximal]


def cluster_splits(nodes: dict) -> list:
    """Every combination of per-node splits: the cluster's slots per tier ({tier: slots})."""
    seen, out = set(), []
    for combo in itertools.product(*(node_splits(r) for r in nodes.values())):
        total: Counter = Counter()
        for split in combo:
            total.update(split)
        key = tuple(sorted(total.items()))
        if key not in seen:
            seen.add(key)
            out.append(dict(total))
    return out


def simulate_split(trials, slots: dict) -> float:
    """Makespan of one MLE-bench-style pool per tier (FIFO over that tier's trials, in sweep order) on
    `slots[tier]` fixed slots each, with zero overheads; infinite when a tier with trials has none."""
    by_tier: dict = {}
    for t in trials:
        by_tier.setdefault(t.tier, []).append(t)
    if any(not slots.get(tier) for tier in by_tier):
        return math.inf
    return max(simulate_pool(ts, slots[tier]) for tier, ts in by_tier.items())


def best_splits(trials, nodes: dict, expected: float, seconds: float) -> dict:
    """The static split a user would pick and the best one in hindsight: `planned`, the split whose
    makespan is least with every trial taking its expected duration (`expected` x the time limit: the
    durations are unknown up front), and `oracle`, the least on the actual durations."""
    splits = cluster_splits(nodes)
    planned_trials = [TrialSpec(t.sweep, t.agent, t.competition.split("@")[0] + f"@{expected * seconds}", t.tier,
                                t.seed, t.resources) for t in trials]
    planned = min(splits, key=lambda sp: simulate_split(planned_trials, sp))
    oracle = min(splits, key=lambda sp: simulate_split(trials, sp))
    return {"splits_searched": len(splits),
            "planned": {"slots": planned, "makespan_s": simulate_split(trials, planned)},
            "oracle": {"slots": oracle, "makespan_s": simulate_split(trials, oracle)}}


def model_table(counts: dict, seconds: float, jitter: float, seeds: list) -> dict:
    """For each duration model and seed (zero overheads, simulated): makespan ÷ lower bound of mleray's
    policy, the fixed pool, and the static split by tier (planned and in hindsight)."""
    capacity = node_capacity(NODES)
    out = {}
    for model in MODELS:
        expected = mean_share(model, jitter)
        rows = []
        for seed in seeds:
            trials = make_trials(counts, seconds, jitter, seed, model)
            bound = lower_bound(trials, capacity)["lower_bound_s"]
            slots = pool_slots(NODES, max(t.resources.cpus for t in trials), max(t.resources.gpus for t in trials))
            split = best_splits(trials, NODES, expected, seconds)
            rows.append({"seed": seed, "lower_bound_s": round(bound, 1),
                         "mleray": simulate_mleray(trials, NODES) / bound,
                         "fixed_pool": simulate_pool(trials, slots) / bound,
                         "split_planned": split["planned"]["makespan_s"] / bound,
                         "split_oracle": split["oracle"]["makespan_s"] / bound,
                         "planned_slots": split["planned"]["slots"], "oracle_slots": split["oracle"]["slots"],
                         "splits_searched": split["splits_searched"]})
        mean = {k: sum(r[k] for r in rows) / len(rows)
                for k in ("mleray", "fixed_pool", "split_planned", "split_oracle")}
        out[model] = {"description": MODELS[model], "expected_share": round(expected, 3), "seeds": rows,
                      "mean": mean,
                      "lead_over_split_planned": mean["split_planned"] / mean["mleray"],
                      "lead_over_split_oracle": mean["split_oracle"] / mean["mleray"],
                      "lead_over_fixed_pool": mean["fixed_pool"] / mean["mleray"]}
    return out


def scaling_sims(counts: dict, seconds: float, jitter: float, seed: int) -> list:
    """Zero-overhead ratios of the same mix at 1x to 8x the trials: how both policies approach the
    bound as sweeps grow (deeper chains of trials per slot)."""
    capacity = node_capacity(NODES)
    rows = []
    for scale in (1, 2, 4, 8):
        trials = make_trials({k: v * scale for k, v in counts.items()}, seconds, jitter, seed)
        bound = lower_bound(trials, capacity)["lower_bound_s"]
        slots = pool_slots(NODES, max(t.resources.cpus for t in trials), max(t.resources.gpus for t in trials))
        rows.append({"trials": len(trials), "mleray": round(simulate_mleray(trials, NODES) / bound, 3),
                     "fixed_pool": round(simulate_pool(trials, slots) / bound, 3)})
    return rows


DEFAULT_COUNTS = "cpu2=12,gpu-half=24,gpu1=6"
MLERAY, POOL = "mleray", "fixed pool (MLE-bench style)"


def start_cluster():
    """The simulated cluster in this process; returns (cluster, seconds it took)."""
    from ray.cluster_utils import Cluster

    t0 = time.time()
    names = list(NODES)
    # The first node is the head (it hosts trials too: one raylet fewer competing for 2 cores).
    cluster = Cluster(initialize_head=True, head_node_args={**NODES[names[0]], "include_dashboard": False})
    for name in names[1:]:
        cluster.add_node(**NODES[name])
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster, time.time() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default=DEFAULT_COUNTS, help="trials per tier, e.g. " + DEFAULT_COUNTS)
    parser.add_argument("--scale", type=int, default=3, help="multiply every count by this")
    parser.add_argument("--seconds", type=float, default=60.0, help="a trial's time limit (its longest sleep)")
    parser.add_argument("--jitter", type=float, default=0.85, help="trials sleep seconds x U(jitter, 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="6 s trials, half the counts: a smoke run")
    parser.add_argument("--runs", default="mleray,pool",
                        help="comma list of: mleray, pool (on the simulated Ray cluster); 'none': simulations only")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per duration model in the static-split table")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "packing"))
    args = parser.parse_args(argv)
    base = {k: int(v) for k, v in (item.split("=") for item in args.counts.split(","))}
    counts = {k: v * args.scale for k, v in base.items()}
    if args.quick:
        args.seconds = 6.0
        counts = {k: max(v // 2, 1) for k, v in base.items()}
    runs = [r for r in args.runs.split(",") if r and r != "none"]

    cluster, setup_s = start_cluster() if runs else (None, 0.0)
    capacity = ({k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")} if runs
                else {k: float(v) for k, v in node_capacity(NODES).items()})
    trials = make_trials(counts, args.seconds, args.jitter, args.seed)
    bound = lower_bound(trials, capacity)
    slots = pool_slots(NODES, max(t.resources.cpus for t in trials), max(t.resources.gpus for t in trials))
    sims = {MLERAY: simulate_mleray(trials, NODES), POOL: simulate_pool(trials, slots)}
    results = {"bound": bound, "simulated_ratio": {k: v / bound["lower_bound_s"] for k, v in sims.items()}}
    print(f"{len(trials)} trials, lower bound {bound['lower_bound_s']:.1f} s; zero-overhead simulation: "
          + ", ".join(f"{k} {v:.3f}" for k, v in results["simulated_ratio"].items()), flush=True)
    try:
        if "mleray" in runs:
            with tempfile.TemporaryDirectory() as tmp:
                run = run_mleray(trials, Path(tmp))
            run["ratio"] = run["makespan_s"] / bound["lower_bound_s"]
            results[MLERAY] = run
            print(f"{MLERAY:<30} makespan {run['makespan_s']:7.1f} s  ratio {run['ratio']:.3f}  "
                  f"peak {run['peak_concurrency']}  start gap {run['mean_start_latency_s']:.2f} s", flush=True)
        if "pool" in runs:
            run = run_pool(trials)
            run["ratio"] = run["makespan_s"] / bound["lower_bound_s"]
            results[POOL] = run
            print(f"{POOL:<30} makespan {run['makespan_s']:7.1f} s  ratio {run['ratio']:.3f}  "
                  f"workers {run['workers']}", flush=True)
    finally:
        if cluster is not None:
            ray.shutdown()
            cluster.shutdown()

    report = {
        "bench": "packing", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python bench/packing.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
                    "platform": platform.platform()},
        "cluster": {"nodes": NODES, "head": list(NODES)[0], "capacity": capacity, "setup_s": round(setup_s, 1)},
        "tiers": {k: {"cpus": t.cpus, "gpus": t.gpus} for k, t in TIERS.items()},
        "trials": {"count": len(trials), "per_tier": counts, "time_limit_s": args.seconds, "jitter": args.jitter,
                   "seed": args.seed, "total_sleep_s": round(sum(duration(t) for t in trials), 1)},
        "results": _rounded(results),
        "scaling_simulated": scaling_sims(base, args.seconds, args.jitter, args.seed),
        "static_split_simulated": _rounded(model_table(counts, args.seconds, args.jitter, list(range(args.seeds)))),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not runs and out.with_suffix(".json").exists():  # simulations only: keep the last real run's figures
        last = json.loads(out.with_suffix(".json").read_text())
        real = last.get("previous_real_run") or (
            {"date": last["date"], "command": last["command"], "trials": last["trials"]["count"],
             **{label: last["results"][label] for label in (MLERAY, POOL) if label in last.get("results", {})}}
            if MLERAY in last.get("results", {}) else None)
        if real:
            report["previous_real_run"] = real
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


def _rounded(obj):
    if isinstance(obj, float):
        return round(obj, 3)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj


def markdown(report: dict) -> str:
    b = report["results"]["bound"]
    t = report["trials"]
    lines = [
        "# Packing: makespan ÷ lower bound",
        "",
        f"Measured {report['date']} on {report['machine']['cpus']} cores, Ray {report['machine']['ray']}, "
        f"Python {report['machine']['python']}. One run: `{report['command'].strip()}`.",
        "",
        "Simulated cluster (fake resources): "
        + ", ".join(f"{k} ({v['num_cpus']} CPU, {v['num_gpus']} GPU)" for k, v in report["cluster"]["nodes"].items())
        + f" (the first is the head); capacity {report['cluster']['capacity']}.",
        f"Trials: {t['count']} (" + ", ".join(f"{n} {k}" for k, n in t["per_tier"].items())
        + f"), each sleeping {t['time_limit_s']:g} s x U({t['jitter']:g}, 1) (seed {t['seed']}); tiers "
        + ", ".join(f"{k} = {v['cpus']:g} CPU + {v['gpus']:g} GPU" for k, v in report["tiers"].items()) + ".",
        "",
        f"Lower bound {b['lower_bound_s']:.1f} s = max(longest trial {b['longest_trial_s']:.1f} s, "
        f"CPU-s ÷ CPUs {b['cpu_work_over_capacity_s']:.1f} s, GPU-s ÷ GPUs {b['gpu_work_over_capacity_s']:.1f} s).",
        "",
        "| scheduler | makespan (s) | ÷ lower bound | same policy, zero overheads (simulated) "
        "| peak trials at once | mean trials at once |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label in (MLERAY, POOL):
        run = report["results"].get(label)
        if not run:
            continue
        name = label + (f", {run['workers']} slots of {run['slot']['CPU']:g} CPU + {run['slot']['GPU']:g} GPU"
                        if "workers" in run else "")
        sim = report["results"]["simulated_ratio"][label]
        lines.append(f"| {name} | {run['makespan_s']:.1f} | **{run['ratio']:.3f}** | {sim:.3f} | "
                     f"{run['peak_concurrency']} | {run['mean_concurrency']:.1f} |")
    if not any(label in report["results"] for label in (MLERAY, POOL)):
        lines[-2:] = ["| scheduler | zero overheads (simulated) ÷ lower bound |", "|---|---:|"]
        lines += [f"| {label} | **{ratio:.3f}** |" for label, ratio in report["results"]["simulated_ratio"].items()]
        real = report.get("previous_real_run")
        if real:
            lines += ["", f"This run simulated only (`--runs none`). The last run on the Ray cluster "
                      f"({real['date']}, `{real['command'].strip()}`, {real['trials']} trials) measured "
                      + " and ".join(f"{real[label]['ratio']:.3f} ({label})"
                                     for label in (MLERAY, POOL) if label in real)
                      + " × the bound, actor start-up and the driver's latency included."]
    else:
        lines += ["", "The makespan is the driver's wall time from the first launch to the last record, so it includes",
                  "actor start-up and the driver's own latency; the bound assumes none."]
    run = report["results"].get(MLERAY)
    if run:
        lines += ["", f"mleray's mean gap between a slot freeing and its next trial starting: "
                  f"{run['mean_start_latency_s']:.2f} s (a new Ray worker process per trial, on 2 cores shared by "
                  "3 raylets, the GCS and a dozen actors)."]
    models = report.get("static_split_simulated")
    if models:
        seeds = len(next(iter(models.values()))["seeds"])
        first = next(iter(models.values()))["seeds"][0]
        lines += ["",
                  "## Against the realistic baseline: one MLE-bench-style pool per tier on a static split (simulated)",
                  "",
                  "A user without mleray who knows the tiers runs one pool per tier (MLE-bench's runner: N workers, "
                  "each taking that tier's next trial), each slot cut out of a node for the whole run. Every maximal "
                  f"way of cutting each node into slots of the three shapes was searched ({first['splits_searched']} "
                  "distinct cluster splits): *planned* is the split a user would pick, the least makespan with every "
                  "trial taking the model's expected duration (durations are unknown up front); *hindsight* is the "
                  "least makespan on the actual durations (no user can pick it; an upper bound on the baseline). "
                  f"Zero overheads for every policy; mean over {seeds} seeds of the same mix "
                  f"({t['count']} trials of {t['time_limit_s']:g} s limits).", "",
                  "| durations | mleray | static split, planned | static split, hindsight | fixed pool "
                  "| planned split ÷ mleray - 1 | hindsight ÷ mleray - 1 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, m in models.items():
            mean = m["mean"]
            lines.append(f"| {name}: {m['description']} | **{mean['mleray']:.3f}** | {mean['split_planned']:.3f} | "
                         f"{mean['split_oracle']:.3f} | {mean['fixed_pool']:.3f} | "
                         f"**{(m['lead_over_split_planned'] - 1) * 100:.1f} %** | "
                         f"{(m['lead_over_split_oracle'] - 1) * 100:.1f} % |")
        leads = {name: (m["lead_over_split_planned"] - 1) * 100 for name, m in models.items()}
        same = all(r["planned_slots"] == r["oracle_slots"] for m in models.values() for r in m["seeds"])
        lines += ["", "mleray's real lead is over the static split, not over the fixed pool (whose 2.3-2.4 x is a "
                  "straw man: its 2 CPU + 1 GPU slots leave the CPU-only node idle): the planned split takes "
                  + ", ".join(f"{lead:.1f} % ({name})" for name, lead in leads.items())
                  + " longer than mleray under this simulator. It comes from the end of the sweep: a static split "
                  "strands what a tier's pool holds once that tier's queue runs dry, while mleray hands those "
                  "resources to the tiers still waiting."
                  + (" The split a user would plan is also the best in hindsight in every case here, so knowing the "
                     "durations would not have helped the baseline." if same else "")]
    rows = report.get("scaling_simulated")
    if rows:
        lines += ["", "## The same mix at larger scale (simulated, zero overheads)", "",
                  "| trials | mleray | fixed pool |", "|---:|---:|---:|"]
        lines += [f"| {r['trials']} | {r['mleray']:.3f} | {r['fixed_pool']:.3f} |" for r in rows]
        lines += ["", "With few trials per slot the last round is part-filled whatever the policy (trials are "
                  "indivisible and mostly run to their limit); the ratio falls as chains of trials per slot grow."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
