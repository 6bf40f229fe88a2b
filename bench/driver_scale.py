"""Driver scale: N trials (trivial work) through one mleray driver; its memory and per-trial cost.

A local Ray (one node, fake CPUs) and mleray's real `Scheduler`, `SweepStore` and launchers
(mleray.sweep.launcher), with a trial actor that returns a full TrialResult record at once.
Measured on the driver process: resident memory (RSS, sampled every 0.2 s and at every 20th of the
records), CPU time (the driver's own threads, Ray's core worker included, the bench's RSS sampler
thread left out), and wall time; hence driver CPU-ms per trial and trials per second. The launchers,
which own the trial actors and so pay Ray's cost per actor, are measured apart: each reports its
process's CPU time and RSS as it is retired (`MeasuredLauncher`). Every trial still costs a Ray actor
(a worker process start on its node); that cost lands on the nodes, and on this 2-core machine it
bounds the throughput.

Baseline in the same process, before and again after the sweep: bare Ray actors of the same class and shape,
created, asked and killed by the driver itself with plain Ray calls, what a driver that owned its trials' actors
would pay (`--baseline N`, a tenth of --trials by default). Ray's own core worker keeps memory per actor
it created (measured here 6 to 89 KiB, depending on glibc's malloc arenas: MALLOC_ARENA_MAX=2 gives the low
end), and its CPU per actor grows with the actors it has made; the run after the sweep shows how much. Every run's
driver CPU is also split by thread (from /proc/self/task): the main thread (mleray's loop and Ray's Python
API), the other Python threads, and Ray's native threads (core worker event loop, gRPC polling, task events).

    python bench/driver_scale.py              # 2,000 trials
    python bench/driver_scale.py --trials 200
    python bench/driver_scale.py --simulate   # simulated Ray: 10k and 100k trials, 5,000 in flight

`--simulate` swaps Ray out of the scheduler for an in-process stand-in (`SimRay`, named so in the
results): actors are objects, their refs complete from a timer thread after the trial's duration, a
fixed number of slots stands for the cluster. Ray's own per-call cost is then absent, so these runs
measure what the driver itself adds per trial and per trial in flight (its loop, the store, the live
view), which the real run cannot reach at 10k+ trials on this machine (a Ray actor start costs 0.3 to
0.8 s of its two shared cores). The timer thread's CPU is measured and subtracted.

Writes bench/results/driver_scale.json and bench/results/driver_scale.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

import ray
from measure import ROOT, cpu_s, rss_mib, write_report

from mleray.config import SweepConfig, TierConfig
from mleray.records import Status, TrialResult
from mleray.storage.store import SweepStore
from mleray.sweep.callbacks import SweepCallback
from mleray.sweep.driver import prepare_driver_process
from mleray.sweep.launcher import RayLaunchers, TrialLauncher
from mleray.sweep.scheduler import Scheduler
from mleray.sweep.trials import TrialJob, TrialSpec
from mleray.trial.actor import TrialHost


@ray.remote(max_restarts=0, max_concurrency=2)
class InstantTrial(TrialHost):
    """Returns a complete record at once: the trial's work is trivial."""

    def work(self, job):
        spec = job.spec
        return TrialResult(competition_id=spec.competition, sweep=spec.sweep, trial_id=spec.trial_id,
                           agent=spec.agent, tier=spec.tier, seed=spec.seed, attempt=job.attempt,
                           status=Status.GRADED, score=0.5, valid_submission=True, submission_exists=True,
                           node_id=ray.get_runtime_context().get_node_id(), cpus=spec.resources.cpus,
                           memory_gb=spec.resources.memory_gb).to_dict()


@ray.remote(num_cpus=0, max_restarts=0)
class MeasuredLauncher(TrialLauncher):
    """mleray's launcher, answering for its own process's CPU time and RSS before it is killed."""

    def usage(self) -> tuple:
        return cpu_s(), rss_mib()


class MeasuredLaunchers(RayLaunchers):
    """The scheduler's launchers, keeping each launcher's CPU seconds and RSS (MiB) as it is killed."""

    launcher_actor = MeasuredLauncher

    def __init__(self, actor_cls):
        super().__init__(actor_cls)
        self.usage: List[tuple] = []

    def _kill(self, launcher) -> None:
        try:
            self.usage.append(ray.get(launcher.handle.usage.remote(), timeout=30))
        except ray.exceptions.RayError:
            pass
        super()._kill(launcher)


def thread_cpu_s() -> dict:
    """The driver's CPU seconds so far by thread kind: its main thread, its other Python threads (named
    `python` by the kernel), and Ray's native threads (named by Ray: worker.io, client.poll0, ...)."""
    tick, main = os.sysconf("SC_CLK_TCK"), str(os.getpid())
    out = {"main thread": 0.0, "other Python threads": 0.0, "Ray native threads": 0.0}
    for tid in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        kind = "main thread" if tid == main else "other Python threads" if name == "python" else "Ray native threads"
        out[kind] += (int(fields[11]) + int(fields[12])) / tick
    return out


def per_trial_ms(before: dict, after: dict, n: int) -> dict:
    """CPU ms per trial of each thread kind between two thread_cpu_s() readings (a thread that ended between
    them is missing from `after`: its share is then undercounted, never made up)."""
    return {kind: round(1000 * max(after[kind] - before[kind], 0.0) / max(n, 1), 2) for kind in before}


class Sampler(SweepCallback):
    """Driver RSS and CPU at every `every`-th recorded trial, and the peak RSS between."""

    def __init__(self, every: int = 100):
        self.every, self.count, self.points, self.peak, self.own_cpu_s = every, 0, [], 0.0, 0.0
        self._stop = threading.Event()
        self.t0 = time.monotonic()
        self.cpu0 = cpu_s()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        """Samples the peak RSS; its own CPU (`own_cpu_s`) is the bench's, subtracted from the driver's."""
        start = time.thread_time()
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mib())
            self.own_cpu_s = time.thread_time() - start

    def on_trial_end(self, record: dict) -> None:
        self.count += 1
        if self.count % self.every == 0:
            self.points.append({"trials": self.count, "wall_s": round(time.monotonic() - self.t0, 2),
                                "driver_cpu_s": round(cpu_s() - self.cpu0 - self.own_cpu_s, 2),
                                "rss_mib": round(rss_mib(), 1)})

    def stop(self):
        self._stop.set()


def bare_ray(jobs: list, at_once: int) -> dict:
    """The baseline, in the same process before the sweep: the same actors, created, asked for their result and
    killed `at_once` at a time with plain Ray calls (no Scheduler, no SweepStore, no callbacks). What the
    driver's memory and CPU grow by here is Ray's own cost per actor (its core worker's state for each actor it
    created and talked to); what the sweep grows by beyond it is mleray's."""
    rss0, cpu0, threads0, t0 = rss_mib(), cpu_s(), thread_cpu_s(), time.monotonic()
    live: dict = {}
    pending = list(jobs)
    while pending or live:
        while pending and len(live) < at_once:
            job = pending.pop()
            actor = InstantTrial.options(num_cpus=job.spec.resources.cpus, name=f"bare-{job.spec.trial_id}").remote(job)
            live[actor.result.remote()] = actor
        ready, _ = ray.wait(list(live), num_returns=1)
        for ref in ready:
            ray.get(ref)
            ray.kill(live.pop(ref), no_restart=True)
    n = max(len(jobs), 1)
    return {"actors": len(jobs), "wall_s": round(time.monotonic() - t0, 1),
            "driver_cpu_ms_per_actor": round(1000 * (cpu_s() - cpu0) / n, 2),
            "cpu_ms_per_actor_by_thread": per_trial_ms(threads0, thread_cpu_s(), n),
            "rss_growth_kib_per_actor": round(1024 * (rss_mib() - rss0) / n, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", action="store_true", help="simulated Ray (see the module docstring)")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--num-cpus", type=int, default=8, help="fake CPUs of the local Ray (trials at once)")
    parser.add_argument("--baseline", type=int, default=None, metavar="N",
                        help="bare Ray actors before and after the sweep, in the same process "
                             "(default: a tenth of --trials; 0: none)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "driver_scale"))
    args, rest = parser.parse_known_args(argv)
    if not args.simulate and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.simulate:
        from driver_sim import simulate_main

        return simulate_main(argv, ROOT / "bench" / "results" / "driver_scale_sim")

    prepare_driver_process(metrics=False)  # as mleray.sweep.driver.connect does before ray.init, by default
    t_init = time.monotonic()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_s = time.monotonic() - t_init
    tier = TierConfig(cpus=1, memory_gb=0.01, time_limit=1)
    cfg = SweepConfig(name="driver-scale", tiers={"t": tier}, retries=1)
    trials = [TrialSpec(cfg.name, "instant", f"comp{i:05d}", "t", 0, tier) for i in range(args.trials)]
    time.sleep(2)  # let the node's prestarted workers settle
    n_bare = args.trials // 10 if args.baseline is None else args.baseline
    bare_specs = [TrialSpec(cfg.name, "bare", f"comp{i:05d}", "t", 0, tier) for i in range(n_bare)]
    warm = [TrialSpec(cfg.name, "warm", f"comp{i:05d}", "t", 0, tier) for i in range(20)]
    bare_ray([TrialJob.of(cfg, t, "/nonexistent", "bwrap", 0) for t in warm], args.num_cpus)  # warm-up
    bare = bare_ray([TrialJob.of(cfg, t, "/nonexistent", "bwrap", 0) for t in bare_specs], args.num_cpus) \
        if n_bare else None
    rss_before = rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        store = SweepStore(Path(tmp))
        sampler = Sampler(every=max(args.trials // 20, 1))
        launchers = MeasuredLaunchers(InstantTrial)
        scheduler = Scheduler(cfg, store, "bwrap", [sampler], launchers=launchers, report_to_ray=False)
        t0, c0, threads0 = time.monotonic(), cpu_s(), thread_cpu_s()
        assert scheduler.run(trials)
        sampler.stop()
        wall, cpu, threads1 = time.monotonic() - t0, cpu_s() - c0 - sampler.own_cpu_s, thread_cpu_s()
        threads1["other Python threads"] -= sampler.own_cpu_s  # the bench's sampler thread, not the driver's
        by_thread = per_trial_ms(threads0, threads1, args.trials)
        records = len(store.records)
        jsonl_bytes = store.path.stat().st_size
        # resume cost: reopening the store and skipping every finished trial
        t1 = time.monotonic()
        reopened = SweepStore(Path(tmp))
        todo = [t for t in trials if t.trial_id not in reopened.done]
        resume_s = time.monotonic() - t1
    rss_after = rss_mib()
    bare_after = bare_ray([TrialJob.of(cfg, t, "/nonexistent", "bwrap", 0) for t in bare_specs], args.num_cpus) \
        if n_bare else None
    ray.shutdown()
    assert records == args.trials and not todo

    report = {
        "bench": "driver_scale", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python bench/driver_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
                    "platform": platform.platform()},
        "trials": args.trials, "trials_at_once": args.num_cpus, "ray_init_s": round(init_s, 1),
        "wall_s": round(wall, 1), "trials_per_s": round(args.trials / wall, 2),
        "wall_ms_per_trial": round(1000 * wall / args.trials, 1),
        "driver_cpu_s": round(cpu, 1), "sampler_cpu_s_subtracted": round(sampler.own_cpu_s, 2),
        "driver_cpu_ms_per_trial": round(1000 * cpu / args.trials, 2),
        "cpu_ms_per_trial_by_thread": by_thread,
        "driver_rss_mib": {"before": round(rss_before, 1), "peak": round(max(sampler.peak, rss_after), 1),
                           "after": round(rss_after, 1)},
        "rss_growth_kib_per_trial": round(1024 * (sampler.points[-1]["rss_mib"] - sampler.points[0]["rss_mib"])
                                          / max(sampler.points[-1]["trials"] - sampler.points[0]["trials"], 1), 2)
        if len(sampler.points) > 1 else None,
        "rss_growth_kib_per_trial_second_half": second_half_kib(sampler.points),
        "trials_jsonl_bytes": jsonl_bytes, "resume_scan_s": round(resume_s, 3),
        "launchers": {"count": len(launchers.usage), "per_launcher": launchers._per_launcher,
                      "cpu_s": round(sum(c for c, _ in launchers.usage), 1),
                      "cpu_ms_per_trial": round(1000 * sum(c for c, _ in launchers.usage) / args.trials, 2),
                      "peak_rss_mib": round(max((r for _, r in launchers.usage), default=0.0), 1)},
        "bare_ray": bare, "bare_ray_after": bare_after,
        "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX") or "2, by mallopt (as mleray's driver sets it)",
        "ray_metrics": os.environ.get("RAY_enable_metrics_collection", "1") != "0",
        "samples": sampler.points,
    }
    write_report(report, Path(args.out), markdown)
    return 0


def second_half_kib(points: List[dict]) -> Optional[float]:
    """RSS growth per trial between the sample nearest the half-way mark and the last: the steady state,
    past the fill of the first trials in flight and of glibc's arenas."""
    if len(points) < 3:
        return None
    last = points[-1]
    mid = min(points[:-1], key=lambda p: abs(p["trials"] - last["trials"] / 2))
    return round(1024 * (last["rss_mib"] - mid["rss_mib"]) / max(last["trials"] - mid["trials"], 1), 2)


def thread_table(r: dict) -> List[str]:
    """Driver CPU ms per trial (or per bare actor) by thread kind, for each run that has the split."""
    runs = [("bare Ray before", (r.get("bare_ray") or {}).get("cpu_ms_per_actor_by_thread")),
            ("mleray sweep", r.get("cpu_ms_per_trial_by_thread")),
            ("bare Ray after", (r.get("bare_ray_after") or {}).get("cpu_ms_per_actor_by_thread"))]
    runs = [(name, split) for name, split in runs if split]
    if not runs:
        return []
    kinds = list(runs[0][1])
    return ["Driver CPU ms per trial (per actor for bare Ray), by thread:", "",
            "| thread | " + " | ".join(name for name, _ in runs) + " |",
            "|---|" + "---:|" * len(runs),
            *[f"| {kind} | " + " | ".join(str(split.get(kind, "")) for _, split in runs) + " |" for kind in kinds],
            ""]


def mleray_kib(r: dict) -> float:
    return round(r["rss_growth_kib_per_trial"] - r["bare_ray"]["rss_growth_kib_per_actor"], 2)


def mleray_ms(r: dict) -> float:
    return round(r["driver_cpu_ms_per_trial"] - r["bare_ray"]["driver_cpu_ms_per_actor"], 2)


def markdown(r: dict) -> str:
    lines = [
        f"# Driver scale: {r['trials']:,} trials through one driver",
        "",
        f"Measured {r['date']} on {r['machine']['cpus']} cores, Ray {r['machine']['ray']}, "
        f"Python {r['machine']['python']}. One run: `{r['command'].strip()}`.",
        f"A local Ray with {r['trials_at_once']} fake CPUs (trials of 1 CPU: {r['trials_at_once']} at once); "
        "each trial is a real Ray actor returning a full TrialResult at once, through mleray's Scheduler and "
        "SweepStore.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| wall time | {r['wall_s']} s ({r['trials_per_s']} trials/s, {r['wall_ms_per_trial']} ms per trial) |",
        f"| driver CPU time | {r['driver_cpu_s']} s (**{r['driver_cpu_ms_per_trial']} ms per trial**; the bench's "
        f"RSS sampler thread's {r.get('sampler_cpu_s_subtracted', 0)} s subtracted) |",
        f"| driver RSS before / peak / after | {r['driver_rss_mib']['before']} / **{r['driver_rss_mib']['peak']}** / "
        f"{r['driver_rss_mib']['after']} MiB |",
        f"| RSS growth | {r['rss_growth_kib_per_trial']} KiB per recorded trial "
        f"(second half of the sweep: **{r.get('rss_growth_kib_per_trial_second_half')} KiB**) |",
        *([f"| launchers (they own the trial actors; {r['launchers']['per_launcher']:,} trials each) | "
           f"{r['launchers']['count']} processes, {r['launchers']['cpu_s']} s CPU ("
           f"{r['launchers']['cpu_ms_per_trial']} ms per trial), at most {r['launchers']['peak_rss_mib']} MiB RSS "
           "each when retired |"] if r.get("launchers") else []),
        *([f"| bare Ray, same process, before the sweep ({r['bare_ray']['actors']:,} actors, no mleray) | "
           f"{r['bare_ray']['rss_growth_kib_per_actor']} KiB and {r['bare_ray']['driver_cpu_ms_per_actor']} ms "
           "driver CPU per actor |",
           f"| sweep driver minus bare Ray's | {mleray_kib(r)} KiB and {mleray_ms(r)} ms per trial |"]
          if r.get("bare_ray") else []),
        *([f"| bare Ray again, after the sweep ({r['bare_ray_after']['actors']:,} actors) | "
           f"{r['bare_ray_after']['rss_growth_kib_per_actor']} KiB and "
           f"{r['bare_ray_after']['driver_cpu_ms_per_actor']} ms driver CPU per actor |"]
          if r.get("bare_ray_after") else []),
        f"| glibc malloc arenas (MALLOC_ARENA_MAX) | {r.get('malloc_arena_max') or 'unset (glibc default)'} |",
        *([f"| Ray's metric export (RAY_enable_metrics_collection) | {'on' if r['ray_metrics'] else 'off'} |"]
          if "ray_metrics" in r else []),
        f"| trials.jsonl | {r['trials_jsonl_bytes']:,} bytes |",
        f"| resume scan (reopen store, skip all) | {r['resume_scan_s']} s |",
        "",
        *thread_table(r),
        "| trials recorded | wall (s) | driver CPU (s) | driver RSS (MiB) |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {p['trials']} | {p['wall_s']} | {p['driver_cpu_s']} | {p['rss_mib']} |" for p in r["samples"]]
    lines += ["", "The wall time per trial is bounded by starting one actor (a Python worker process) per trial on",
              "this 2-core machine, not by the driver: the driver's own CPU per trial is the scheduling cost."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
