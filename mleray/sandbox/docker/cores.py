"""CPU cores for Docker trials: each container gets a cpuset of ceil(cpus) of the engine's cores, the
ones least taken by this engine's running mleray containers first, so an agent cannot widen its
affinity past its share and concurrent trials spread over the machine; the CPU quota (nano_cpus)
still bounds fractional shares. Trials start in separate processes (one Ray actor each), so a choice
and the container that makes it visible (its label, counted from the moment it is created) happen
under one lock for the whole host, `choosing()`: before it, two 1-CPU trials starting together were
both given core 1 and ran at half speed (measured in the laptop study)."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from typing import Dict, Iterator

import docker

from mleray import paths
from mleray.sandbox.cpusets import cpu_text, least_taken

LABEL_CPUSET = "mleray.cpuset"
_ncpu: Dict[str, int] = {}
_lock = threading.Lock()


def engine_cpus(client: docker.DockerClient) -> int:
    """How many cores the engine's machine has (asked once per engine address and process)."""
    key = os.environ.get("DOCKER_HOST", "")
    if key not in _ncpu:
        _ncpu[key] = max(1, int(client.info().get("NCPU") or 1))
    return _ncpu[key]


@contextlib.contextmanager
def choosing() -> Iterator[None]:
    """Held from pick() until the container is created: one choice at a time on this host (every
    process; an flock in the node cache, which the agents never see)."""
    with _lock, paths.node_lock(paths.cache_dir() / ".docker-cpuset.lock"):
        yield


def pick(client: docker.DockerClient, cpus: float) -> str:
    """The cpuset (e.g. "1" or "0,2") for a new container asking for `cpus` CPUs; call it inside
    choosing() and create the container before leaving it. Created containers count as taken."""
    live = client.api.containers(all=True, filters={"label": LABEL_CPUSET, "status": ["created", "running"]})
    taken = ((container.get("Labels") or {}).get(LABEL_CPUSET, "") for container in live)
    return cpu_text(least_taken(range(engine_cpus(client)), taken, math.ceil(cpus)))
