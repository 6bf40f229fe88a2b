"""Ray-native observability on a real local Ray: trial actors carry their trial id as their Ray name
(a later attempt `#<attempt>`), the sweep's progress is on a named actor other drivers can read, and
the driver asks only the trials a callback shows for their log line.

The actor is a probe standing in for a trial (it sleeps, says a log line, reports its own Ray name);
nothing else is faked."""

import os
import time

import pytest
import ray
from helpers import dummy_sweep as sweep

from mleray.records import Status
from mleray.storage.store import SweepStore
from mleray.sweep.callbacks import SweepCallback
from mleray.sweep.progress import RAY_NAMESPACE, progress_actor_name, sweep_progress
from mleray.sweep.scheduler import Scheduler
from mleray.trial.actor import TrialHost


@ray.remote(max_restarts=0, max_concurrency=2)
class NamedProbe(TrialHost):
    def work(self, job):
        spec = job.spec
        if spec.competition == "crash" and job.attempt == 0:
            os._exit(1)  # the actor's process dies: the trial is retried, a second actor for one trial
        self._on_line(f"working on {spec.competition}")
        time.sleep(float(spec.resources.time_limit))
        return {"trial_id": spec.trial_id, "competition_id": spec.competition, "attempt": job.attempt,
                "status": Status.GRADED, "actor_name": ray.get_runtime_context().get_actor_name()}


def test_trial_actors_are_named_by_trial_id_and_a_retry_by_its_attempt(local_ray, tmp_path):
    cfg, trials = sweep(["tiers.cpu.time_limit=0.1", "retries=1"], ["a", "crash"])
    store = SweepStore(tmp_path)
    assert Scheduler(cfg, store, "bwrap", [], actor_cls=NamedProbe).run(trials)
    names = {r["competition_id"]: (r["actor_name"], r["trial_id"], r["attempt"]) for r in store.records}
    assert names["a"] == ("dummy__a__cpu__s0", "dummy__a__cpu__s0", 0)
    assert names["crash"] == ("dummy__crash__cpu__s0#1", "dummy__crash__cpu__s0", 1)


def test_the_sweeps_progress_is_on_a_named_actor_while_it_runs(local_ray, tmp_path):
    cfg, trials = sweep(["tiers.cpu.time_limit=2.5", "name=watched"], ["a", "b", "c"])
    seen = []

    class Watch(SweepCallback):
        def on_trial_end(self, record):
            named = ray.util.list_named_actors(all_namespaces=True)
            seen.append(({"name": progress_actor_name("watched"), "namespace": RAY_NAMESPACE} in named,
                         sweep_progress("watched")))

    assert Scheduler(cfg, SweepStore(tmp_path), "bwrap", [Watch()], actor_cls=NamedProbe).run(trials)
    assert seen and all(listed for listed, _ in seen)
    last = seen[-1][1]
    assert last["sweep"] == "watched" and last["total"] == 3 and last["running"] + last["recorded"] <= 3
    assert last["running"] >= 1 or last["recorded"] >= 1  # counts pushed while it ran, not only the start
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(a["name"] == progress_actor_name("watched")
                                              for a in ray.util.list_named_actors(all_namespaces=True)):
        time.sleep(0.2)
    with pytest.raises(ValueError):  # gone once the sweep ended
        sweep_progress("watched")


def test_log_lines_are_asked_only_of_the_trials_a_callback_shows(local_ray, tmp_path):
    cfg, trials = sweep(["tiers.cpu.time_limit=5"], ["shown", "hidden"])
    shown_id = next(t.trial_id for t in trials if t.competition == "shown")
    logs = []

    class ShowsOne(SweepCallback):
        def shown_trials(self):
            return [shown_id]

        def on_trial_log(self, trial_id, line):
            logs.append((trial_id, line))

    assert Scheduler(cfg, SweepStore(tmp_path), "bwrap", [ShowsOne()], actor_cls=NamedProbe).run(trials)
    assert logs and {trial for trial, _ in logs} == {shown_id}
    assert logs[0][1] == "working on shown"
