"""The launchers that own the trial actors (mleray.sweep.launcher), on a real local Ray: retired and
killed as they fill, their death retried, and nothing of a sweep left alive after Ctrl-C or its end.

The trial actor is a probe that sleeps for its tier's time limit, standing in for an agent.
"""

import time

import ray
from helpers import dummy_sweep as sweep
from ray._private.state import actors as actor_table  # the GCS's table: no dashboard needed

from mleray.records import Status
from mleray.storage.store import SweepStore
from mleray.sweep.launcher import RayLaunchers
from mleray.sweep.scheduler import Scheduler
from mleray.trial.actor import TrialHost


@ray.remote(max_restarts=0, max_concurrency=2)
class SleepProbe(TrialHost):
    def work(self, job):
        time.sleep(float(job.spec.resources.time_limit))
        return {"trial_id": job.spec.trial_id, "competition_id": job.spec.competition, "attempt": job.attempt,
                "status": Status.GRADED, "node_id": ray.get_runtime_context().get_node_id()}


def of_class(class_name):
    return [a for a in actor_table().values() if a["ActorClassName"].endswith(class_name)]


def alive(class_name):
    return [a for a in of_class(class_name) if a["State"] != "DEAD"]


def launchers_made():
    return len(of_class("TrialLauncher"))


def wait_until_gone(*class_names, within=20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = [a for name in class_names for a in alive(name)]
        if not left:
            return []
        time.sleep(0.5)
    return left


def test_launchers_are_retired_as_they_fill_and_none_outlives_the_sweep(local_ray, tmp_path):
    cfg, trials = sweep(["tiers.cpu.time_limit=0.2"], [f"c{i}" for i in range(5)])
    before = launchers_made()
    store = SweepStore(tmp_path)
    assert Scheduler(cfg, store, "bwrap", [], launchers=RayLaunchers(SleepProbe, per_launcher=2)).run(trials)
    assert sorted(r["competition_id"] for r in store.records) == [f"c{i}" for i in range(5)]
    assert launchers_made() - before == 3  # 2 + 2 + 1 trials
    assert wait_until_gone("TrialLauncher", "SleepProbe") == []


def test_a_dead_launchers_trials_are_retried_on_a_new_one(local_ray, tmp_path):
    class KillLauncherOnFirstStart:
        def __init__(self):
            self.scheduler, self.killed = None, False

        def on_trial_start(self, *args):
            if not self.killed:
                self.killed = True
                for launcher in self.scheduler.launchers._live:
                    ray.kill(launcher.handle, no_restart=True)

        def __getattr__(self, name):
            return lambda *args: None

    cfg, trials = sweep(["tiers.cpu.time_limit=3", "retries=1"], ["a", "b"])
    killer = KillLauncherOnFirstStart()
    store = SweepStore(tmp_path)
    # the launcher killed was the active one: the retries must go to a new one
    scheduler = Scheduler(cfg, store, "bwrap", [killer], launchers=RayLaunchers(SleepProbe))
    killer.scheduler = scheduler
    assert scheduler.run(trials)
    assert killer.killed
    assert sorted((r["competition_id"], r["attempt"], r["status"]) for r in store.records) == [
        ("a", 1, Status.GRADED), ("b", 1, Status.GRADED)]


def test_ctrl_c_leaves_no_trial_actor_or_launcher_alive(local_ray, tmp_path):
    class CtrlC:
        def on_trial_start(self, *args):
            raise KeyboardInterrupt

        def __getattr__(self, name):
            return lambda *args: None

    cfg, trials = sweep(["tiers.cpu.time_limit=60"], ["a", "b", "c"])
    started = time.monotonic()
    assert not Scheduler(cfg, SweepStore(tmp_path), "bwrap", [CtrlC()], launchers=RayLaunchers(SleepProbe)).run(trials)
    assert time.monotonic() - started < 30
    assert wait_until_gone("TrialLauncher", "SleepProbe") == []
