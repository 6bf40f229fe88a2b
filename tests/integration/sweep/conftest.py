"""Fixtures of the driver's tests on a real local Ray."""

import pytest
import ray


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 4 CPUs for one test module."""
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
