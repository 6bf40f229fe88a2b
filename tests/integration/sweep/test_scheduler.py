"""The driver on a local Ray with fake GPUs: fractional packing, the window, records, retries.

The GPUs are fake (`ray.init(num_gpus=2)`); the actor here is a probe that sleeps and reports when it
ran and which GPU ids Ray gave it, standing in for a trial because no GPU exists on this machine.
"""

import time

import pytest
import ray
from helpers import dummy_sweep as sweep

from mleray.records import Status
from mleray.storage.store import SweepStore
from mleray.sweep.scheduler import Scheduler
from mleray.trial.actor import TrialHost


@ray.remote(max_restarts=0, max_concurrency=2)
class ProbeActor(TrialHost):
    def work(self, job):
        spec, attempt = job.spec, job.attempt
        start = time.time()
        if spec.competition.startswith("crash") and attempt < int(spec.competition[-1]):
            import os

            os._exit(1)  # the actor's process dies, as on a lost node
        time.sleep(float(spec.resources.time_limit))
        return {"trial_id": spec.trial_id, "competition_id": spec.competition, "start": start, "end": time.time(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "attempt": attempt, "status": Status.GRADED}


@pytest.fixture(scope="module")
def fake_gpus():
    ray.init(address="local", num_cpus=8, num_gpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


class Recorder:
    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        return lambda *args: self.events.append((name, args))


def test_four_half_gpu_trials_share_two_gpus_and_a_fifth_waits(fake_gpus, tmp_path):
    cfg, trials = sweep(["tiers.cpu.gpus=0.5", "tiers.cpu.time_limit=3"], [f"c{i}" for i in range(5)])
    store = SweepStore(tmp_path)
    assert Scheduler(cfg, store, "bwrap", [], actor_cls=ProbeActor).run(trials)
    recs = sorted(store.records, key=lambda r: r["start"])
    assert len(recs) == 5
    first_four, fifth = recs[:4], recs[4]
    assert max(r["start"] for r in first_four) < min(r["end"] for r in first_four)  # all four overlapped
    assert fifth["start"] >= min(r["end"] for r in first_four) - 0.2  # the fifth waited for a free share
    gpu_use = [g for r in first_four for g in r["gpu_ids"]]
    assert sorted(gpu_use) == ["0", "0", "1", "1"]  # two trials per device


def test_max_in_flight_caps_concurrency(fake_gpus, tmp_path):
    cfg, trials = sweep(["max_in_flight=2", "tiers.cpu.time_limit=1"], [f"c{i}" for i in range(4)])
    store = SweepStore(tmp_path)
    Scheduler(cfg, store, "bwrap", [], actor_cls=ProbeActor).run(trials)
    spans = [(r["start"], r["end"]) for r in store.records]
    peak = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert peak == 2


def test_dead_actor_is_retried_then_recorded_failed(fake_gpus, tmp_path):
    cfg, trials = sweep(["retries=1", "tiers.cpu.time_limit=0.1"], ["crash1", "crash9", "ok"])
    store, recorder = SweepStore(tmp_path), Recorder()
    Scheduler(cfg, store, "bwrap", [recorder], actor_cls=ProbeActor).run(trials)
    by_comp = {r["competition_id"]: r for r in store.records}
    assert len(store.records) == 3
    assert by_comp["crash1"]["status"] == Status.GRADED and by_comp["crash1"]["attempt"] == 1
    assert by_comp["crash9"]["status"] == Status.FAILED and by_comp["crash9"]["attempt"] == 1
    assert "no retries left" in by_comp["crash9"]["reason"] and "died" in by_comp["crash9"]["reason"]
    assert sum(name == "on_trial_retry" for name, _ in recorder.events) == 2
    assert sum(name == "on_trial_end" for name, _ in recorder.events) == 3


def test_finished_trials_are_not_rerun(fake_gpus, tmp_path):
    cfg, trials = sweep(["tiers.cpu.time_limit=0.1"], ["a", "b", "c"])
    store = SweepStore(tmp_path)
    store.append({"trial_id": trials[0].trial_id, "competition_id": "a"})
    recorder = Recorder()
    Scheduler(cfg, store, "bwrap", [recorder], actor_cls=ProbeActor).run(trials)
    assert ("on_sweep_start", (cfg.name, 3, 1)) in recorder.events
    assert sorted(r["competition_id"] for r in SweepStore(tmp_path).records) == ["a", "b", "c"]
    assert "start" not in SweepStore(tmp_path).records[0]  # the recorded one was kept, not rerun


def test_short_trials_still_show_as_started_before_they_end(fake_gpus, tmp_path):
    cfg, trials = sweep(["tiers.cpu.time_limit=0.05"], ["a", "b", "c"])
    recorder = Recorder()
    Scheduler(cfg, SweepStore(tmp_path), "bwrap", [recorder], actor_cls=ProbeActor).run(trials)
    order = [(name, args[0] if name == "on_trial_start" else args[0]["trial_id"])
             for name, args in recorder.events if name in ("on_trial_start", "on_trial_end")]
    for trial in trials:
        assert order.index(("on_trial_start", trial.trial_id)) < order.index(("on_trial_end", trial.trial_id))
    starts = [args for name, args in recorder.events if name == "on_trial_start"]
    assert [node for _, _, node in starts] == [ray.util.get_node_ip_address()] * 3


def test_scheduler_fires_plan_first_and_sweep_end_once(fake_gpus, tmp_path):
    cfg, trials = sweep(["tiers.cpu.time_limit=0.05"], ["a", "b"])
    recorder = Recorder()
    assert Scheduler(cfg, SweepStore(tmp_path), "bwrap", [recorder], actor_cls=ProbeActor).run(trials)
    names = [name for name, _ in recorder.events]
    assert names[:2] == ["on_sweep_plan", "on_sweep_start"] and names[-1] == "on_sweep_end"
    assert recorder.events[0][1] == (trials,) and names.count("on_sweep_end") == 1
    records, interrupted = recorder.events[-1][1]
    assert len(records) == 2 and interrupted is False


def test_interrupted_sweep_ends_once_as_interrupted(fake_gpus, tmp_path):
    class CtrlC(Recorder):
        def on_trial_start(self, *args):
            raise KeyboardInterrupt

    cfg, trials = sweep(["tiers.cpu.time_limit=5"], ["a", "b"])
    recorder = CtrlC()
    assert not Scheduler(cfg, SweepStore(tmp_path), "bwrap", [recorder], actor_cls=ProbeActor).run(trials)
    ends = [args for name, args in recorder.events if name == "on_sweep_end"]
    assert ends == [([], True)]
