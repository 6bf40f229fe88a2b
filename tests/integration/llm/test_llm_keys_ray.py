"""How the upstream keys travel from the driver to a trial's actor on Ray: as a reference to an object the
driver put (keys.ship), never in the actor's creation arguments in clear; the actor gets the key back
with keys.receive, and a repr of the job shows no key on either side."""

from __future__ import annotations

import pytest
import ray

from mleray.config import LLMConfig
from mleray.llm import LLMJob
from mleray.llm.keys import Upstream, receive

KEY = "sk-mleray-ray-canary-31d4"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote(num_cpus=0)
class Holder:
    def __init__(self, job: LLMJob):
        self.job = job

    def key(self) -> str:
        return receive(self.job.upstream).key("openai")

    def shown(self) -> str:
        return repr(self.job)


def test_without_ray_the_job_carries_the_masked_upstream():
    assert not ray.is_initialized()  # runs before the Ray fixture starts it
    job = LLMJob.of(LLMConfig(), env={"OPENAI_API_KEY": KEY})
    assert isinstance(job.upstream, Upstream) and KEY not in repr(job) and receive(job.upstream).key("openai") == KEY


def test_the_key_reaches_the_actor_as_a_reference(local_ray):
    job = LLMJob.of(LLMConfig(upstream="http://upstream.invalid/v1"), env={"OPENAI_API_KEY": KEY})
    assert isinstance(job.upstream, ray.ObjectRef)  # not the Upstream itself
    assert KEY not in repr(job)
    holder = Holder.remote(job)
    assert ray.get(holder.key.remote()) == KEY
    assert KEY not in ray.get(holder.shown.remote())
    again = LLMJob.of(LLMConfig(upstream="http://upstream.invalid/v1"), env={"OPENAI_API_KEY": KEY})
    assert again.upstream == job.upstream  # one put per sweep, not one per trial


def test_a_later_ray_session_gets_a_reference_of_its_own():
    """ray.shutdown then ray.init (a second sweep in one process, as the test suite runs them): the job
    must not carry the first session's reference, whose owner is gone (job ids repeat across sessions)."""
    if ray.is_initialized():
        ray.shutdown()
    keys = []
    for _ in range(2):
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        try:
            job = LLMJob.of(LLMConfig(), env={"OPENAI_API_KEY": KEY})
            keys.append(ray.get(Holder.remote(job).key.remote(), timeout=60))
        finally:
            ray.shutdown()
    assert keys == [KEY, KEY]
