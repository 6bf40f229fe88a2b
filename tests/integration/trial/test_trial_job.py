"""What the driver hands a trial's actor (a TrialJob, not the SweepConfig) and what the actor answers
(a TrialStatus), through a real local Ray actor."""

import pickle

import pytest
import ray

from mleray.config import load_sweep
from mleray.sweep.trials import TrialJob, expand
from mleray.trial.actor import TrialHost, TrialStatus


def job_and_cfg():
    cfg = load_sweep(overrides=["agents=[dummy]", "seeds=1", "snapshot_interval=5", "grace_period=2",
                                "description=obfuscated", "tiers.cpu.cpus=1", "tiers.cpu.memory_gb=0.1"])
    return TrialJob.of(cfg, expand(cfg, ["titanic"])[0], "/tmp/sweeps/s", "bwrap"), cfg


def test_job_carries_what_a_trial_reads_and_pickles_small():
    job, _ = job_and_cfg()
    assert (job.location, job.attempt, job.sandbox_kind) == ("/tmp/sweeps/s", 0, "bwrap")
    assert (job.description, job.snapshot_interval, job.grace_period) == ("obfuscated", 5, 2)
    blob = pickle.dumps(job)
    assert b"SweepConfig" not in blob
    assert len(blob) < 1000
    assert pickle.loads(blob) == job
    again = job.retry()
    assert again.attempt == 1 and again.spec == job.spec and job.attempt == 0


@ray.remote(max_restarts=0, max_concurrency=2)
class EchoActor(TrialHost):
    def work(self, job):
        self._on_line("working")
        return {"trial_id": job.spec.trial_id, "attempt": job.attempt}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_actor_gets_the_job_and_status_is_named(local_ray):
    job, _ = job_and_cfg()
    actor = EchoActor.options(num_cpus=1).remote(job.retry())
    assert ray.get(actor.result.remote()) == {"trial_id": job.spec.trial_id, "attempt": 1}
    status = ray.get(actor.status.remote())
    assert isinstance(status, TrialStatus)
    assert status.node == ray.util.get_node_ip_address() and status.last_line == "working"
    ray.kill(actor)
