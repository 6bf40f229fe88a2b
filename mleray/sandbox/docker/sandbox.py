"""The Docker backend: one hardened container per agent run, through the docker SDK.

What a container gets (all of it from `container_kwargs(spec)`, a pure function tests inspect):
- limits: CPU quota (nano_cpus), memory with swap included (mem_limit == memswap_limit), pids,
  /dev/shm size; GPUs only as the exact device ids Ray assigned (a DeviceRequest), with
  CUDA_VISIBLE_DEVICES renumbered to what the container sees and MLERAY_GPU_FRACTION set;
- user 1000:1000, every capability dropped, no-new-privileges, an init (docker-init) as PID 1 so
  SIGTERM reaches the agent and zombies are reaped; network none unless the agent needs egress;
- MLE-bench's layout as bind mounts (data and instructions read-only, submission/code/logs
  writable) plus the validation pieces (`validation.inside_mounts`);
- labels `mleray.sweep`, `mleray.trial`, `mleray.attempt` so `reap()` finds leftovers.

Use:
    box = DockerSandbox(spec, grace_period=cfg.grace_period)
    box.start()                      # SandboxError when the engine or the image is missing
    for line in box.logs(): ...      # in a thread of its own, if the caller also waits
    info = box.wait(time_limit)      # SIGTERM at the deadline, kill after the grace period
    box.kill()                       # removes the container; idempotent
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from mleray.sandbox import validation
from mleray.sandbox.base import ExitInfo, Sandbox, SandboxError, SandboxSpec

AGENT_USER = "1000:1000"
AGENT_UID = AGENT_GID = 1000
LABEL_SWEEP = "mleray.sweep"
GIB = 1024**3

# container path -> mode, for the spec's own folders (validation's pieces come from validation.py)
_LAYOUT = (
    ("data_dir", "/home/data", "ro"),
    ("instructions", "/home/instructions.txt", "ro"),
    ("submission_dir", "/home/submission", "rw"),
    ("code_dir", "/home/code", "rw"),
    ("logs_dir", "/home/logs", "rw"),
    ("agent_code", "/home/agent", "ro"),
)
_WRITABLE = ("submission_dir", "code_dir", "logs_dir")


def _client(timeout: int = 120):
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as err:
        raise SandboxError(f"no Docker engine answers ({_short(err)}); start dockerd, or use sandbox=bwrap") from None


_clients: Dict[Optional[int], object] = {}
_clients_lock = threading.Lock()


def _shared_client(timeout: Optional[int]):
    """One docker client per process and read timeout (each new client asks the engine its API version)."""
    import docker

    with _clients_lock:
        client = _clients.get(timeout)
        if client is None:
            try:
                client = docker.from_env(timeout=timeout, max_pool_size=64)
            except Exception as err:
                raise SandboxError(f"no Docker engine answers ({_short(err)}); start dockerd, or use sandbox=bwrap") from None
            _clients[timeout] = client
        return client


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def available() -> Tuple[bool, str]:
    """Whether a Docker engine answers here, and a one-line why."""
    import docker

    try:
        client = docker.from_env(timeout=10)
        version = client.version().get("Version", "?")
        client.close()
        return True, f"Docker engine {version} answers"
    except Exception as err:
        return False, f"no Docker engine answers ({_short(err)})"


def image_exists(tag: str) -> bool:
    """Whether the local engine has this image (False when no engine answers)."""
    import docker

    try:
        client = docker.from_env(timeout=10)
        try:
            client.images.get(tag)
            return True
        finally:
            client.close()
    except Exception:
        return False


def container_name(spec: SandboxSpec) -> str:
    raw = f"mleray-{spec.sweep}-{spec.trial_id}-a{spec.attempt}"
    name = re.sub(r"[^a-zA-Z0-9_.-]", "-", raw)
    return name[:200]


def mounts(spec: SandboxSpec) -> List[Tuple[str, str, str]]:
    """(host path, container path, "ro"|"rw") for every bind mount of this spec."""
    out = []
    for attr, target, mode in _LAYOUT:
        value = getattr(spec, attr)
        if value is not None:
            out.append((str(Path(value).resolve()), target, mode))
    if spec.description is not None:  # e.g. the obfuscated description, over the original
        out.append((str(Path(spec.description).resolve()), "/home/data/description.md", "ro"))
    out += [(str(Path(h).resolve()), c, m) for h, c, m in validation.inside_mounts(spec)]
    return out


def environment(spec: SandboxSpec) -> Dict[str, str]:
    """The container's environment: spec.env (COMPETITION_ID, the agent's own), then what mleray sets."""
    cores = str(max(1, math.ceil(spec.cpus)))
    # os.cpu_count() inside shows the host's CPUs, not the quota (cgroup v1 has no cpu.max to read):
    # say the share, and cap the usual thread pools to it.
    env = {"HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "MLERAY_CPUS": f"{spec.cpus:g}",
           "MLERAY_MEMORY_GB": f"{spec.memory_gb:g}", "OMP_NUM_THREADS": cores, "OPENBLAS_NUM_THREADS": cores,
           "MKL_NUM_THREADS": cores}
    env.update({k: str(v) for k, v in spec.env.items()})
    env["MLERAY_GPU_FRACTION"] = str(spec.gpu_fraction)
    env["MLERAY_GPU_IDS"] = ",".join(spec.gpu_ids)
    # Inside, the runtime shows only the requested devices, numbered from 0.
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(spec.gpu_ids)))
    env.update(validation.inside_env(spec))
    return env


def container_kwargs(spec: SandboxSpec) -> dict:
    """Exactly what `client.containers.create(**kwargs)` receives for this spec. Pure: no engine needed."""
    from docker.types import DeviceRequest, Mount

    if not spec.image:
        raise SandboxError(f"trial {spec.trial_id}: the agent has no docker image (set `image` in its yaml, or use sandbox=bwrap)")
    if not spec.command:
        raise SandboxError(f"trial {spec.trial_id}: empty agent command")
    memory = int(spec.memory_gb * GIB)
    kwargs = dict(
        image=spec.image,
        command=validation.wrap_command(list(spec.command)),
        entrypoint=[],  # run the command as given, whatever the image's ENTRYPOINT
        name=container_name(spec),
        user=AGENT_USER,
        environment=environment(spec),
        labels=dict(spec.labels),
        detach=True,
        tty=False,
        stdin_open=False,
        init=True,
        nano_cpus=int(round(spec.cpus * 1e9)),
        mem_limit=memory,
        memswap_limit=memory,  # swap included: no swap beyond the limit
        pids_limit=int(spec.pids),
        shm_size=int(spec.shm_gb * GIB),
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        network_mode="bridge" if spec.network else "none",
        mounts=[Mount(target=c, source=h, type="bind", read_only=(m == "ro")) for h, c, m in mounts(spec)],
        working_dir="/home",
    )
    if spec.gpu_ids:
        kwargs["device_requests"] = [DeviceRequest(device_ids=[str(g) for g in spec.gpu_ids], capabilities=[["gpu"]])]
    return kwargs


def _make_writable(path: Path) -> None:
    """The agent (uid 1000) must write the submission/code/logs folders bound into the container."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                os.chown(name, AGENT_UID, AGENT_GID, follow_symlinks=False)
    else:
        os.chmod(path, 0o777)


def reap(sweep: Optional[str] = None) -> int:
    """Removes the containers labelled with this sweep (every mleray container when None). Returns how many."""
    import docker

    client = _client()
    label = f"{LABEL_SWEEP}={sweep}" if sweep is not None else LABEL_SWEEP
    removed = 0
    for container in client.containers.list(all=True, filters={"label": label}):
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            if "already in progress" not in str(err):
                raise SandboxError(f"cannot remove container {container.name}: {_short(err)}") from None
    client.close()
    return removed


class DockerSandbox(Sandbox):
    """One agent run in one container. See the module's docstring."""

    available = staticmethod(available)
    image_exists = staticmethod(image_exists)
    reap = staticmethod(reap)

    def __init__(self, spec: SandboxSpec, grace_period: float = 10.0):
        super().__init__(spec)
        self.grace_period = float(grace_period)
        self.container = None
        self.started_at: Optional[float] = None
        self._client = None
        self._killed = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        import docker
        import requests
        from docker.models.containers import _create_container_args

        kwargs = container_kwargs(self.spec)
        for attr in _WRITABLE:
            _make_writable(Path(getattr(self.spec, attr)))
        for attr in ("data_dir", "instructions"):
            if not Path(getattr(self.spec, attr)).exists():
                raise SandboxError(f"trial {self.spec.trial_id}: {attr} {getattr(self.spec, attr)} does not exist")
        if self.spec.agent_code is not None and not Path(self.spec.agent_code).is_dir():
            raise SandboxError(f"trial {self.spec.trial_id}: agent_code {self.spec.agent_code} is not a folder")
        # No ping, no image lookup, no inspect: create answers all three (every call costs start-up time).
        self._client = _shared_client(120)
        api = self._client.api
        create_args = _create_container_args({**kwargs, "version": api._version})
        try:
            try:
                created = api.create_container(**create_args)
            except docker.errors.ImageNotFound:
                raise SandboxError(f"image {self.spec.image} is not on this engine: run `mleray images build --offline` "
                                   "(or `mleray images build` with a registry)") from None
            except docker.errors.APIError as err:
                if getattr(err, "status_code", None) != 409:  # 409: a leftover with this name
                    raise
                api.remove_container(kwargs["name"], force=True)
                created = api.create_container(**create_args)
            self.container = self._client.containers.prepare_model({"Id": created["Id"]})
            self.container.start()
        except requests.exceptions.ConnectionError as err:
            self.kill()
            raise SandboxError(f"no Docker engine answers ({_short(err)}); start dockerd, or use sandbox=bwrap") from None
        except docker.errors.APIError as err:
            self.kill()
            hint = ""
            if self.spec.gpu_ids and ("device driver" in str(err) or "nvidia" in str(err).lower()):
                hint = " (GPU containers need the NVIDIA Container Toolkit on this node: nvidia-ctk runtime configure)"
            raise SandboxError(f"trial {self.spec.trial_id}: docker could not start the container: {_short(err)}{hint}") from None
        self.started_at = time.monotonic()

    # ------------------------------------------------------------------ logs
    def logs(self) -> Iterator[str]:
        """Follows the container's stdout+stderr from its first byte (the engine keeps the log, so
        nothing printed before this call or while the reader is slow is lost)."""
        if self.container is None:
            raise SandboxError("logs() before start()")
        import docker

        client = _shared_client(None)  # no read timeout: an agent may be quiet for hours
        buffer = b""
        try:
            stream = client.api.logs(self.container.id, stdout=True, stderr=True, stream=True, follow=True)
            for chunk in stream:
                buffer += chunk
                if b"\n" not in chunk:
                    continue
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace").rstrip("\r")
        except docker.errors.NotFound:
            pass  # removed by kill(): the run is over
        except Exception:
            if not self._killed:
                raise
        if buffer:
            yield buffer.decode("utf-8", "replace").rstrip("\r")

    # ------------------------------------------------------------------ wait
    def _wait_exit(self, timeout: float) -> Optional[dict]:
        """The engine's wait answer, or None when `timeout` passed first."""
        import requests

        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                # the SDK's timeout is an int of seconds for the HTTP read; loop for fractions
                return self.container.wait(timeout=max(1, min(int(left) or 1, 3600)))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                state = self._state()
                if state and not state.get("Running", False) and state.get("Status") in ("exited", "dead"):
                    return {"StatusCode": state.get("ExitCode")}
                continue

    def _state(self) -> dict:
        try:
            self.container.reload()
            return self.container.attrs.get("State", {})
        except Exception:
            return {}

    def wait(self, timeout: float) -> ExitInfo:
        if self.container is None:
            raise SandboxError("wait() before start()")
        import docker

        timed_out = False
        try:
            result = self._wait_exit(timeout)
            if result is None:
                timed_out = True
                try:
                    self.container.kill(signal="SIGTERM")
                except docker.errors.APIError:
                    pass  # it exited meanwhile
                result = self._wait_exit(self.grace_period)
                if result is None:
                    try:
                        self.container.kill(signal="SIGKILL")
                    except docker.errors.APIError:
                        pass
                    result = self._wait_exit(30.0)
        except docker.errors.NotFound:
            return ExitInfo(exit_code=None, timed_out=timed_out, reason="the container was removed (killed)")
        state = self._state()
        code = state.get("ExitCode", (result or {}).get("StatusCode"))
        oom = bool(state.get("OOMKilled", False))
        if timed_out:
            reason = f"killed at the time limit ({timeout:g} s)"
        elif oom:
            reason = f"out of memory (the limit is {self.spec.memory_gb:g} GB, swap included)"
        elif code is None:
            reason = "ended without an exit code"
        elif code >= 128:
            reason = f"exit {code} (killed by signal {code - 128})"
        else:
            reason = f"exit {code}"
        if state.get("Error"):
            reason += f"; engine: {state['Error']}"
        return ExitInfo(exit_code=code, timed_out=timed_out, oom_killed=oom, reason=reason)

    # ------------------------------------------------------------------ kill
    def kill(self) -> None:
        with self._lock:
            self._killed = True
            if self.container is None:
                return
            try:
                self.container.remove(force=True)
            except Exception:
                pass  # gone already, or the engine is gone: reap() catches leftovers
            self.container = None
