"""Simulated Ray for bench/driver_scale.py --simulate: mleray's real Scheduler, SweepStore and live view
with Ray swapped out of the scheduler (its launchers for `SimLaunchers`, its cluster lookups for `SimRay`),
an in-process stand-in.

SimRay is named as such in every result: the launchers (mleray.sweep.launcher) are replaced by
`SimLaunchers`, a fixed number of slots stands for the cluster (a trial waits for a free slot, as Ray
queues it), a trial starts when it gets a slot and ends after its duration, its events fired by one
timer thread into the queue the scheduler reads, as the real launchers' answers arrive. What it cannot
show is Ray's own cost per call; what it shows is what the driver adds per finished trial (CPU, memory)
and per trial in flight.

Two runs:
- throughput: N trials of a few ms on S slots; driver CPU per trial and RSS growth per finished trial
  (RSS sampled as trials finish; growth is the slope between the 5 % and 100 % marks);
- in flight: 5,000 trials on 5,000 slots, each sleeping longer than the window; the driver's CPU over
  a window once all have started, as a share of one core, with the live view (TTY mode, to a null
  stream, showing its rows' log lines) attached.
"""

from __future__ import annotations

import heapq
import itertools
import os
import platform
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List

from measure import rss_mib, write_report

from mleray.config import SweepConfig, TierConfig
from mleray.records import Status, TrialResult
from mleray.storage.store import SweepStore
from mleray.sweep import scheduler as scheduler_module
from mleray.sweep.callbacks import SweepCallback
from mleray.sweep.launcher import take_all
from mleray.sweep.progress import ProgressCallback
from mleray.sweep.scheduler import Scheduler
from mleray.sweep.trials import TrialSpec


class SimCluster:
    """Slots and a timer thread that fires each trial's events when due; `cpu_s` is the timer thread's own
    CPU time (subtracted from the driver's)."""

    def __init__(self, slots: int):
        self.slots, self.free = slots, slots
        self.waiting: List[tuple] = []  # (key, seconds, record) waiting for a slot, in launch order
        self.heap: List[tuple] = []
        self.seq = itertools.count()
        self.cv = threading.Condition()
        self.events: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        self.cpu_s = 0.0
        self.stopped = False
        threading.Thread(target=self._run, daemon=True, name="simray").start()

    def launch(self, key: int, seconds: float, record: dict) -> None:
        with self.cv:
            self.waiting.append((key, seconds, record))
            self._place()

    def _place(self) -> None:
        while self.free and self.waiting:
            key, seconds, record = self.waiting.pop(0)
            self.free -= 1
            now = time.monotonic()
            heapq.heappush(self.heap, (now, next(self.seq), ("start", key, "10.0.0.1")))
            heapq.heappush(self.heap, (now + seconds, next(self.seq), ("end", key, record, None)))
            self.cv.notify()

    def _run(self) -> None:
        t0 = time.thread_time()
        while not self.stopped:
            with self.cv:
                now = time.monotonic()
                due = []
                while self.heap and self.heap[0][0] <= now:
                    due.append(heapq.heappop(self.heap)[2])
                if not due:
                    self.cv.wait(timeout=(self.heap[0][0] - now) if self.heap else 0.5)
                    self.cpu_s = time.thread_time() - t0
                    continue
                self.free += sum(event[0] == "end" for event in due)
                self._place()
            for event in due:
                self.events.put(event)
            self.cpu_s = time.thread_time() - t0


class SimLaunchers:
    """What the scheduler's `launchers` must offer (mleray.sweep.launcher.RayLaunchers), on SimCluster: a
    trial starts when a slot frees and ends after its duration; a log line asked for is answered at once."""

    def __init__(self, cluster: SimCluster, seconds: float):
        self.cluster, self.seconds = cluster, seconds
        self.next_key = 0
        self.asked = 0

    def launch(self, job, options) -> int:
        spec = job.spec
        record = TrialResult(competition_id=spec.competition, sweep=spec.sweep, trial_id=spec.trial_id,
                             agent=spec.agent, tier=spec.tier, seed=spec.seed, attempt=job.attempt,
                             status=Status.GRADED, score=0.5, valid_submission=True, submission_exists=True,
                             node_id="sim-node", cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb).to_dict()
        key, self.next_key = self.next_key, self.next_key + 1
        self.cluster.launch(key, self.seconds, record)
        return key

    def ask(self, keys) -> None:
        for key in keys:
            self.asked += 1
            self.cluster.events.put(("line", key, f"step {self.asked}"))

    def send(self) -> None:
        pass

    def events(self, timeout: float) -> List[tuple]:
        return take_all(self.cluster.events, timeout)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


class SimRay:
    """The one name scheduler.py still takes from `ray` itself: the cluster's resources."""

    def __init__(self, cluster: SimCluster):
        self.cluster = cluster

    def cluster_resources(self) -> dict:
        return {"CPU": float(self.cluster.slots), "memory": float(self.cluster.slots) * 2**30}


class Sampler(SweepCallback):
    def __init__(self, every: int):
        self.every, self.count, self.points = every, 0, []
        self.t0, self.cpu0 = time.monotonic(), time.process_time()

    def on_trial_end(self, record: dict) -> None:
        self.count += 1
        if self.count % self.every == 0:
            self.points.append({"trials": self.count, "wall_s": round(time.monotonic() - self.t0, 2),
                                "cpu_s": round(time.process_time() - self.cpu0, 2), "rss_mib": round(rss_mib(), 1)})


def _patched(cluster: SimCluster):
    saved = (scheduler_module.ray, scheduler_module.alive_nodes)
    scheduler_module.ray = SimRay(cluster)  # type: ignore[assignment]
    scheduler_module.alive_nodes = lambda: [{"id": "sim-node", "resources": SimRay(cluster).cluster_resources()}]
    return saved


def _restore(saved) -> None:
    scheduler_module.ray, scheduler_module.alive_nodes = saved


def throughput(n: int, slots: int, seconds: float) -> dict:
    """N short trials through the driver on simulated Ray: CPU per trial, RSS growth per finished trial."""
    cluster = SimCluster(slots)
    saved = _patched(cluster)
    tier = TierConfig(cpus=1, memory_gb=0.01, time_limit=1)
    cfg = SweepConfig(name="driver-sim", tiers={"t": tier}, retries=1)
    trials = [TrialSpec(cfg.name, "instant", f"comp{i:06d}", "t", 0, tier) for i in range(n)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = SweepStore(Path(tmp))
            sampler = Sampler(every=max(n // 20, 1))
            progress = ProgressCallback(stream=open(os.devnull, "w"), tty=False, ticker=False)
            scheduler = Scheduler(cfg, store, "bwrap", [sampler, progress], launchers=SimLaunchers(cluster, seconds),
                                  report_to_ray=False)
            rss0, t0, c0 = rss_mib(), time.monotonic(), time.process_time()
            assert scheduler.run(trials)
            wall, cpu = time.monotonic() - t0, time.process_time() - c0 - cluster.cpu_s
            assert len(store) == n
    finally:
        cluster.stopped = True
        _restore(saved)
    first, last = sampler.points[0], sampler.points[-1]
    return {"trials": n, "slots": slots, "trial_s": seconds, "wall_s": round(wall, 1),
            "driver_cpu_ms_per_trial": round(1000 * cpu / n, 3), "simray_thread_cpu_s": round(cluster.cpu_s, 2),
            "rss_start_mib": round(rss0, 1), "rss_end_mib": last["rss_mib"],
            "rss_growth_kib_per_finished_trial": round(1024 * (last["rss_mib"] - first["rss_mib"])
                                                       / max(last["trials"] - first["trials"], 1), 3),
            "samples": sampler.points}


def in_flight(n: int, window: float) -> dict:
    """N trials in flight at once, each sleeping past the window: the driver's share of a core over it."""
    cluster = SimCluster(n)
    saved = _patched(cluster)
    tier = TierConfig(cpus=1, memory_gb=0.01, time_limit=3600)
    cfg = SweepConfig(name="driver-sim-inflight", tiers={"t": tier}, retries=1)
    trials = [TrialSpec(cfg.name, "sleeper", f"comp{i:06d}", "t", 0, tier) for i in range(n)]
    view = ProgressCallback(stream=open(os.devnull, "w"), tty=True, interval=0.5, ticker=True)
    started = threading.Event()

    class Started(SweepCallback):
        count = 0

        def on_trial_start(self, trial_id, attempt, node):
            Started.count += 1
            if Started.count == n:
                started.set()

    logs = {"lines": 0}

    class Logs(SweepCallback):
        def on_trial_log(self, trial_id, line):
            logs["lines"] += 1

    result: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = SweepStore(Path(tmp))
            scheduler = Scheduler(cfg, store, "bwrap", [Started(), view, Logs()],
                                  launchers=SimLaunchers(cluster, window * 3 + 60), report_to_ray=False)
            runner = threading.Thread(target=lambda: result.setdefault("ok", scheduler.run(trials)), daemon=True)
            t_start = time.monotonic()
            runner.start()
            assert started.wait(600), "not all trials started"
            ramp = time.monotonic() - t_start
            time.sleep(1.0)
            c0, s0, l0, w0 = time.process_time(), cluster.cpu_s, logs["lines"], time.monotonic()
            time.sleep(window)
            wall = time.monotonic() - w0
            cpu = (time.process_time() - c0) - (cluster.cpu_s - s0)
            lines = logs["lines"] - l0
            running = len(scheduler.inflight)
            import _thread

            _thread.interrupt_main  # noqa: B018  # (the run is left to die with the process)
    finally:
        cluster.stopped = True
        _restore(saved)
    return {"trials_in_flight": running, "window_s": round(wall, 1), "ramp_up_s": round(ramp, 1),
            "driver_core_share": round(cpu / wall, 4), "log_lines_pulled_per_s": round(lines / wall, 1),
            "simray_thread_cpu_s_in_window": None}


def simulate_main(argv, out: Path) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="driver_scale.py --simulate")
    parser.add_argument("--simulate", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--slots", type=int, default=1000)
    parser.add_argument("--trial-s", type=float, default=0.05)
    parser.add_argument("--in-flight", type=int, default=5000)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--out", default=str(out))
    args, _ = parser.parse_known_args(argv)
    report: dict = {"bench": "driver_scale --simulate",
                    "ray": "SimRay (simulated: no Ray calls; see bench/driver_sim.py)",
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "command": "python bench/driver_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "throughput": [], "in_flight": None}
    for n in args.sizes:
        report["throughput"].append(throughput(n, args.slots, args.trial_s))
        print({k: v for k, v in report["throughput"][-1].items() if k != "samples"}, flush=True)
    if args.in_flight:
        report["in_flight"] = in_flight(args.in_flight, args.window)
        print(report["in_flight"], flush=True)
    write_report(report, Path(args.out), markdown)
    sys.stdout.flush()
    os._exit(0)  # the in-flight run's sweep is still going: end the process without waiting for it


def markdown(r: dict) -> str:
    lines = ["# Driver scale on simulated Ray (SimRay)", "",
             f"Measured {r['date']} on {r['machine']['cpus']} cores (shared with other work), Python "
             f"{r['machine']['python']}. One run: `{r['command'].strip()}`.",
             "mleray's real Scheduler, SweepStore (a local trials.jsonl) and live view; Ray swapped out of the "
             "scheduler (its launchers and cluster lookups) for SimRay, an in-process stand-in "
             "(bench/driver_sim.py): no Ray call costs anything, so "
             "these figures are what the driver itself adds. The stand-in's timer thread's CPU is subtracted.", "",
             "| trials | slots | trial (s) | wall (s) | driver CPU per trial | RSS start / end "
             "| RSS growth per finished trial |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for t in r["throughput"]:
        lines.append(f"| {t['trials']:,} | {t['slots']:,} | {t['trial_s']} | {t['wall_s']} | "
                     f"**{t['driver_cpu_ms_per_trial']} ms** | {t['rss_start_mib']} / {t['rss_end_mib']} MiB | "
                     f"**{t['rss_growth_kib_per_finished_trial']} KiB** |")
    lines += ["", "RSS growth is the slope between the 5 % and the 100 % marks of recorded trials. At 10k the 5 % mark "
              "falls before the 1,000 slots have filled (each trial in flight holds its job and, once done, its "
              "record until the loop takes it), so the fill is in the slope; at 100k it is the steady growth: the "
              "store's index (attempt, final) and the live view's durations per finished trial. The start figure "
              "is after the trial list was built and before the scheduler made a job per trial to run."]
    f = r.get("in_flight")
    if f:
        lines += ["", f"## {f['trials_in_flight']:,} trials in flight", "",
                  f"All {f['trials_in_flight']:,} started (ramp-up {f['ramp_up_s']} s), each sleeping past the "
                  f"window; the live view in TTY mode (to a null stream) redrawing every 0.5 s. Over {f['window_s']} s "
                  f"the driver used **{f['driver_core_share']:.1%} of one core**; {f['log_lines_pulled_per_s']} log "
                  "lines a second were pulled (only for the rows the view shows, at most 20 status() calls a second "
                  "in all: at the 0.37 ms of driver CPU a real status() call was measured to cost, that adds at "
                  "most 0.7 % of a core on real Ray)."]
    return "\n".join(lines) + "\n"
