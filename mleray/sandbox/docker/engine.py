"""Access to the Docker engine: the one client factory of the project (the sandbox, image building and
the tests use it), and the questions asked of the engine before a sweep."""

from __future__ import annotations

import os
import threading
from typing import Dict, Optional

import docker

from mleray.errors import one_line
from mleray.sandbox.base import SandboxError

_ADDRESS = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")  # what docker.from_env reads
_clients: Dict[tuple, docker.DockerClient] = {}
_lock = threading.Lock()


class EngineError(SandboxError):
    """No Docker engine answers at the configured address."""


def no_engine(err: BaseException) -> str:
    """The one-line message for an engine that does not answer, with `err` as the cause."""
    return f"no Docker engine answers ({one_line(err)}); start dockerd, or use sandbox=bwrap"


def client(timeout: Optional[int] = 120) -> docker.DockerClient:
    """The process's client for the engine at $DOCKER_HOST with this read timeout in seconds (None:
    none, for following logs), made once: each new client asks the engine its API version, which costs
    start-up time. Thread-safe. Raises EngineError when no engine answers."""
    key = (timeout, *(os.environ.get(name) for name in _ADDRESS))
    with _lock:
        if key not in _clients:
            try:
                _clients[key] = docker.from_env(timeout=timeout, max_pool_size=64)
            except Exception as err:
                raise EngineError(no_engine(err)) from None
        return _clients[key]


def problem() -> Optional[str]:
    """Why no Docker engine answers here, as one line naming the fix; None when one does."""
    try:
        client(timeout=10).ping()
        return None
    except EngineError as err:
        return str(err)
    except Exception as err:  # a client made earlier, and the engine went away since
        return no_engine(err)


_layer: Dict[str, tuple] = {}


def layer_bound(engine: Optional[docker.DockerClient] = None) -> tuple[bool, str]:
    """Whether this engine can bound a container's writable layer (`storage_opt={"size": ...}`), and the
    measured why: overlay2 only on xfs (mounted with pquota, which create tells), btrfs, zfs and
    devicemapper always. Asked once per engine address and process; (False, why) when the engine does not
    answer."""
    key = os.environ.get("DOCKER_HOST", "")
    if key in _layer:
        return _layer[key]
    try:
        info = (engine or client(timeout=10)).info()
    except Exception as err:
        return False, f"not enforced: the engine's storage driver is unknown ({one_line(err)})"
    driver = info.get("Driver", "?")
    backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem", "?")
    if driver in ("btrfs", "zfs", "devicemapper", "windowsfilter") or (driver == "overlay2" and backing == "xfs"):
        answer = (True, f"storage_opt size ({driver} on {backing})")
    else:
        answer = (False, f"not enforced: {driver} on {backing} (the engine bounds a container layer only "
                         "on xfs with pquota, btrfs, zfs or devicemapper)")
    _layer[key] = answer
    return answer


def no_layer_bound(why: str) -> None:
    """Records that create refused the layer bound (overlay2 on xfs without pquota): not asked again."""
    _layer[os.environ.get("DOCKER_HOST", "")] = (False, f"not enforced: {why}")


def image_exists(tag: str, engine: Optional[docker.DockerClient] = None) -> bool:
    """Whether the engine (`engine`, else the local one) has this image; False when no engine answers."""
    try:
        (engine or client(timeout=10)).images.get(tag)
        return True
    except Exception:
        return False
