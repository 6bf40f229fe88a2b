"""The scheduler on a multi-node Ray started in this process (ray.cluster_utils.Cluster).

Nodes carry fake GPU counts (no GPU exists here); the trial actor is a sleep-only stand-in passed
through the scheduler's `actor_cls` hook, so no sandbox or Docker is needed. It reports which node
and GPU ids Ray gave it and when it ran. Shown here:
- trials spread over the nodes, and fractional-GPU trials pack within each node's capacity;
- removing a node mid-sweep retries its trials elsewhere and records every trial exactly once;
- a SIGKILLed driver's sweep resumes when the driver runs again;
- an actor that crashes past its retries leaves a failed record with the reason.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
import ray
from helpers import ROOT

from mleray.config import load_sweep
from mleray.records import Status, TrialResult
from mleray.storage.store import SweepStore
from mleray.sweep.progress import ProgressCallback
from mleray.sweep.scheduler import Scheduler
from mleray.sweep.trials import expand
from mleray.trial.actor import TrialHost, TrialStatus

pytestmark = pytest.mark.slow


@ray.remote(max_restarts=0, max_concurrency=2)
class SleepActor(TrialHost):
    """Sleeps for the tier's time_limit seconds (or `@seconds` in the competition id) and reports
    where and when it ran. Competition `crashN` kills its own process on attempts below N."""

    def status(self):
        return TrialStatus(self.node[0], "sleeping")

    def work(self, job):
        spec, attempt = job.spec, job.attempt
        t_start = time.time()
        comp = spec.competition
        if comp.startswith("crash") and attempt < int(comp[len("crash"):]):
            os._exit(1)  # the actor's process dies, as when its node is lost
        if comp.startswith("raise"):
            raise RuntimeError("the grader exploded")
        seconds = float(comp.split("@")[1]) if "@" in comp else float(spec.resources.time_limit)
        time.sleep(seconds)
        record = TrialResult(competition_id=comp, sweep=spec.sweep, trial_id=spec.trial_id, agent=spec.agent,
                             tier=spec.tier, seed=spec.seed, attempt=attempt, status=Status.GRADED,
                             node_id=self.node[0], gpu_ids=[str(g) for g in ray.get_gpu_ids()],
                             agent_s=seconds, cpus=spec.resources.cpus, gpus=spec.resources.gpus).to_dict()
        return {**record, "t_start": t_start, "t_end": time.time()}


class Recorder:
    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        return lambda *args: self.events.append((name, args))


def sweep(overrides, comps, name="mn"):
    cfg = load_sweep(overrides=[f"name={name}", "agents=[dummy]", "seeds=1", "tiers.cpu.cpus=0.5",
                                "tiers.cpu.memory_gb=0.1", *overrides])
    return cfg, expand(cfg, comps)


@pytest.fixture(scope="module")
def cluster():
    """A CPU-less head (the driver's node, like cluster.yaml's) and two workers: 1 and 2 fake GPUs."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    c.workers = {"gpu1": c.add_node(num_cpus=2, num_gpus=1), "gpu2": c.add_node(num_cpus=2, num_gpus=2)}
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def _lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _peak(spans) -> int:
    return max((sum(s <= t < e for s, e in spans) for t, _ in spans), default=0)


def test_trials_spread_and_fractional_gpus_pack(cluster, tmp_path):
    # 0.5 CPU + 0.5 GPU per trial: node gpu1 holds 2 at once, node gpu2 holds 4 (CPU 2/0.5, GPU 2/0.5)
    cfg, trials = sweep(["tiers.cpu.gpus=0.5", "tiers.cpu.time_limit=3"], [f"c{i}" for i in range(12)])
    store = SweepStore(tmp_path)
    view = io.StringIO()
    progress = ProgressCallback(stream=view, tty=False, interval=2)
    assert Scheduler(cfg, store, "bwrap", [progress], actor_cls=SleepActor).run(trials)  # ends the view too
    recs = store.records
    assert len(recs) == 12
    capacity = {cluster.workers["gpu1"].node_id: 2, cluster.workers["gpu2"].node_id: 4}
    assert {r["node_id"] for r in recs} == set(capacity)  # both nodes got trials, the head none
    for node, cap in capacity.items():
        spans = [(r["t_start"], r["t_end"]) for r in recs if r["node_id"] == node]
        assert _peak(spans) <= cap
        for gpu in {g for r in recs if r["node_id"] == node for g in r["gpu_ids"]}:  # two per device
            assert _peak([(r["t_start"], r["t_end"]) for r in recs
                          if r["node_id"] == node and gpu in r["gpu_ids"]]) <= 2
    assert all(len(r["gpu_ids"]) == 1 for r in recs)
    # packed: the whole cluster (6 at once) was used, so 12 trials of 3 s took about two rounds
    assert _peak([(r["t_start"], r["t_end"]) for r in recs]) == 6
    # two rounds of 3 s trials plus actor starts: a quiet 2-core CI run measured 12.5 s. Six at once is
    # the peak assertion's job; this bound only catches a sweep that stalls (serial would take 36 s)
    assert max(r["t_end"] for r in recs) - min(r["t_start"] for r in recs) < 4 * 3 + 4
    # the live view, as a CI log: a few one-line summaries, the last one complete
    lines = [line for line in view.getvalue().splitlines() if "[mn] " in line]  # status lines, not per-trial results
    assert 2 <= len(lines) <= 20
    assert "[mn] 12/12 done, 0 failed, 0 running, 0 pending" in lines[-1] and lines[-1].endswith("(finished)")


def test_whole_gpu_trials_land_where_they_fit(cluster, tmp_path):
    # a 2-GPU trial fits only on node gpu2; 1-GPU trials anywhere
    cfg, trials = sweep(["tiers.cpu.gpus=2", "tiers.cpu.time_limit=1", "tiers.one.gpus=1", "tiers.one.cpus=0.5",
                         "tiers.one.memory_gb=0.1", "tiers.one.time_limit=1"], ["a", "b"])
    store = SweepStore(tmp_path)
    assert Scheduler(cfg, store, "bwrap", [], actor_cls=SleepActor).run(trials)
    two = [r for r in store.records if r["tier"] == "cpu"]
    assert {r["node_id"] for r in two} == {cluster.workers["gpu2"].node_id}
    assert all(sorted(r["gpu_ids"]) == ["0", "1"] for r in two)


def test_cpu_only_trials_leave_gpu_nodes_to_gpu_trials_while_any_wait(cluster, tmp_path):
    # A CPU-only node joins the two GPU nodes. 1-CPU trials would fit on the GPU nodes' CPUs and, placed
    # there first, keep 1-GPU trials waiting; mleray confines them to the CPU node until no GPU trial waits.
    cpu_node = cluster.add_node(num_cpus=2, num_gpus=0)
    cluster.wait_for_nodes()
    try:
        cfg, trials = sweep(["tiers.cpu.cpus=1", "tiers.cpu.time_limit=2", "tiers.gpu.cpus=1", "tiers.gpu.gpus=1",
                             "tiers.gpu.memory_gb=0.1", "tiers.gpu.time_limit=2"], [f"c{i}" for i in range(6)])
        store = SweepStore(tmp_path)
        assert Scheduler(cfg, store, "bwrap", [], actor_cls=SleepActor).run(trials)
    finally:
        cluster.remove_node(cpu_node)
    recs = store.records
    assert len(recs) == 12
    last_gpu_start = max(r["t_start"] for r in recs if r["tier"] == "gpu")
    for r in recs:
        if r["tier"] == "cpu" and r["node_id"] != cpu_node.node_id:
            assert r["t_start"] >= last_gpu_start - 0.5, (
                "a CPU-only trial took a GPU node's CPUs while GPU trials waited")
    # the three GPUs ran six 2 s GPU trials in about two rounds
    gpu_spans = [(r["t_start"], r["t_end"]) for r in recs if r["tier"] == "gpu"]
    assert _peak(gpu_spans) == 3


def test_removed_node_trials_retry_elsewhere(cluster, tmp_path):
    doomed = cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    cfg, trials = sweep(["retries=2", "tiers.cpu.time_limit=4"], [f"c{i}" for i in range(10)])
    store, recorder = SweepStore(tmp_path), Recorder()
    scheduler = Scheduler(cfg, store, "bwrap", [recorder], actor_cls=SleepActor)

    import threading

    def kill_when_busy():  # once a trial reports running on the doomed node (status() gives the node id)
        deadline = time.time() + 60
        while time.time() < deadline and not any(
                name == "on_trial_start" and args[2] == doomed.node_id for name, args in list(recorder.events)):
            time.sleep(0.1)
        cluster.remove_node(doomed, allow_graceful=False)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    assert scheduler.run(trials)
    killer.join()
    lines = _lines(store.path)
    counts = Counter(r["trial_id"] for r in lines)
    assert set(counts) == {t.trial_id for t in trials} and set(counts.values()) == {1}  # each exactly once
    retried = [args for name, args in recorder.events if name == "on_trial_retry"]
    assert retried, "some trials were on the removed node"
    retried_ids = {trial_id for trial_id, _, _ in retried}
    for r in lines:
        assert r["status"] == Status.GRADED
        assert r["node_id"] != doomed.node_id  # no record claims the dead node
        if r["trial_id"] in retried_ids:
            assert r["attempt"] >= 1
    assert all("died" in reason for _, _, reason in retried)


def test_crash_past_retries_leaves_failed_record(cluster, tmp_path):
    cfg, trials = sweep(["retries=1", "tiers.cpu.time_limit=0.2"], ["crash1", "crash5", "raise", "ok"])
    store = SweepStore(tmp_path)
    assert Scheduler(cfg, store, "bwrap", [], actor_cls=SleepActor).run(trials)
    by_comp = {r["competition_id"]: r for r in _lines(store.path)}
    assert len(by_comp) == 4
    assert by_comp["crash1"]["status"] == Status.GRADED and by_comp["crash1"]["attempt"] == 1
    failed = by_comp["crash5"]
    assert failed["status"] == Status.FAILED and failed["attempt"] == 1
    assert "died" in failed["reason"] and "no retries left" in failed["reason"]
    assert by_comp["raise"]["status"] == Status.FAILED and "the grader exploded" in by_comp["raise"]["reason"]
    assert by_comp["ok"]["status"] == Status.GRADED


DRIVER = textwrap.dedent('''
    import sys, time, ray
    sys.path.insert(0, {tests!r})
    from test_cluster_multinode import SleepActor, sweep
    from mleray.sweep.scheduler import Scheduler
    from mleray.storage.store import SweepStore

    class Say:
        def __getattr__(self, name):
            return lambda *a: print(name, *a, flush=True) if name in ("on_sweep_start", "on_trial_end") else None

    ray.init(address={address!r}, log_to_driver=False)
    cfg, trials = sweep(["tiers.cpu.time_limit=1.5", "max_in_flight=2"], [f"c{{i}}" for i in range(8)], name="resume")
    done = Scheduler(cfg, SweepStore({store!r}), "bwrap", [Say()], actor_cls=SleepActor).run(trials)
    print("completed", done, flush=True)
''')


def test_killed_driver_resumes(cluster, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(Path(__file__).parent), address=cluster.address,
                                    store=str(tmp_path / "store")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}  # mleray, helpers
    first = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    ended = 0
    for line in first.stdout:  # kill it after 3 trials are recorded, with more in flight
        ended += line.startswith("on_trial_end")
        if ended == 3:
            os.kill(first.pid, signal.SIGKILL)
            break
    first.wait(30)
    assert first.returncode == -signal.SIGKILL
    recorded = _lines(tmp_path / "store" / "trials.jsonl")
    assert 3 <= len(recorded) < 8

    second = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"on_sweep_start resume 8 {len(recorded)}" in second.stdout  # resumed: the recorded ones skipped
    assert "completed True" in second.stdout
    lines = _lines(tmp_path / "store" / "trials.jsonl")
    counts = Counter(r["trial_id"] for r in lines)
    assert len(counts) == 8 and set(counts.values()) == {1}
    assert lines[: len(recorded)] == recorded  # what the killed driver wrote is kept as it was
