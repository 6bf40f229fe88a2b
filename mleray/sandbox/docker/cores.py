"""CPU cores for Docker trials: each container gets a cpuset of ceil(cpus) of the engine's cores, the
ones least taken by this engine's running mleray containers first, so an agent cannot widen its
affinity past its share and concurrent trials spread over the machine; the CPU quota (nano_cpus)
still bounds fractional shares. Best effort across processes: two actors starting at the same instant
may pick the same cores (both stay within their quota)."""

from __future__ import annotations

import math
import os
import threading
from typing import Dict

import docker

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


def pick(client: docker.DockerClient, cpus: float) -> str:
    """The cpuset (e.g. "1" or "0,2") for a new container asking for `cpus` CPUs."""
    with _lock:
        running = client.api.containers(filters={"label": LABEL_CPUSET})
        taken = ((container.get("Labels") or {}).get(LABEL_CPUSET, "") for container in running)
        return cpu_text(least_taken(range(engine_cpus(client)), taken, math.ceil(cpus)))
