"""The Docker backend's lifecycle: one hardened container per agent run (its arguments: `spec.py`).

Use:
    box = DockerSandbox(spec, grace_period=cfg.grace_period)
    box.start()                      # SandboxError when the engine or the image is missing
    for line in box.logs(): ...      # in a thread of its own, if the caller also waits
    info = box.wait(time_limit)      # SIGTERM at the deadline, kill after the grace period
    box.kill()                       # removes the container; idempotent
    DockerSandbox.reap(sweep)        # removes a sweep's leftover containers (by label)
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import docker
import requests
from docker.models.containers import Container, _create_container_args

from mleray.errors import one_line
from mleray.sandbox.base import ExitInfo, NotStarted, Sandbox, SandboxError, SandboxSpec
from mleray.sandbox.docker import engine
from mleray.sandbox.docker.engine import EngineError
from mleray.sandbox.docker.spec import container_kwargs

AGENT_UID = AGENT_GID = 1000
LABEL_SWEEP = "mleray.sweep"
BUILD_HINT = "run `mleray images build --offline` (no registry) or `mleray images build`"


def _make_writable(path: Path) -> None:
    """The agent (uid 1000) must write the submission/code/logs folders bound into the container."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                os.chown(name, AGENT_UID, AGENT_GID, follow_symlinks=False)
    else:
        os.chmod(path, 0o777)


def prepare_host(spec: SandboxSpec) -> None:
    """Makes the writable folders the agent's and checks the read-only inputs exist.
    Raises SandboxError naming a missing input."""
    for folder in (spec.submission_dir, spec.code_dir, spec.logs_dir):
        _make_writable(Path(folder))
    for attr in ("data_dir", "instructions"):
        if not Path(getattr(spec, attr)).exists():
            raise SandboxError(f"trial {spec.trial_id}: {attr} {getattr(spec, attr)} does not exist")
    if spec.agent_code is not None and not Path(spec.agent_code).is_dir():
        raise SandboxError(f"trial {spec.trial_id}: agent_code {spec.agent_code} is not a folder")


class DockerSandbox(Sandbox):
    """One agent run in one container. See the module's docstring."""

    def __init__(self, spec: SandboxSpec, grace_period: float = 10.0):
        super().__init__(spec, grace_period)
        self.container: Optional[Container] = None
        self._killed = False
        self._lock = threading.Lock()

    @classmethod
    def problem(cls, agents: Sequence) -> Optional[str]:
        """None when an engine answers and has every agent's image."""
        unreachable = engine.problem()
        if unreachable:
            return unreachable
        no_image = [a.name for a in agents if not a.image]
        if no_image:
            return (f"agent(s) {', '.join(no_image)} declare no docker image "
                    "(set `image` in the agent's yaml, or use sandbox=bwrap)")
        missing = [f"{a.image} ({a.name})" for a in agents if not engine.image_exists(a.image)]
        if missing:
            return f"image(s) missing on the Docker engine: {', '.join(missing)}; {BUILD_HINT}"
        return None

    @classmethod
    def reap(cls, sweep: str) -> int:
        """Removes the containers labelled with this sweep, running or not."""
        removed = 0
        for container in engine.client().containers.list(all=True, filters={"label": f"{LABEL_SWEEP}={sweep}"}):
            try:
                container.remove(force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as err:
                if "already in progress" not in str(err):
                    raise SandboxError(f"cannot remove container {container.name}: {one_line(err)}") from None
        return removed

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        kwargs = container_kwargs(self.spec)
        prepare_host(self.spec)
        # No ping, no image lookup, no inspect: create answers all three (every call costs start-up time).
        client = engine.client(120)
        api = client.api
        create_args = _create_container_args({**kwargs, "version": api._version})
        try:
            try:
                created = api.create_container(**create_args)
            except docker.errors.ImageNotFound:
                raise SandboxError(f"image {self.spec.image} is not on this engine: {BUILD_HINT}") from None
            except docker.errors.APIError as err:
                if getattr(err, "status_code", None) != 409:  # 409: a leftover with this name
                    raise
                api.remove_container(kwargs["name"], force=True)
                created = api.create_container(**create_args)
            container = client.containers.prepare_model({"Id": created["Id"]})
            self.container = container
            container.start()
        except requests.exceptions.ConnectionError as err:
            self.kill()
            raise EngineError(engine.no_engine(err)) from None
        except docker.errors.APIError as err:
            self.kill()
            hint = ""
            if self.spec.gpu_ids and ("device driver" in str(err) or "nvidia" in str(err).lower()):
                hint = " (GPU containers need the NVIDIA Container Toolkit on this node: nvidia-ctk runtime configure)"
            raise SandboxError(f"trial {self.spec.trial_id}: docker could not start the container: "
                               f"{one_line(err)}{hint}") from None

    # ------------------------------------------------------------------ logs
    def logs(self) -> Iterator[str]:
        """Follows the container's stdout+stderr from its first byte (the engine keeps the log, so
        nothing printed before this call or while the reader is slow is lost)."""
        if self.container is None:
            raise NotStarted("logs() before start()")
        client = engine.client(None)  # no read timeout: an agent may be quiet for hours
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
    def _wait_exit(self, container: Container, timeout: float) -> Optional[dict]:
        """The engine's wait answer, or None when `timeout` passed first."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                # the SDK's timeout is an int of seconds for the HTTP read; loop for fractions
                return container.wait(timeout=max(1, min(int(left) or 1, 3600)))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                state = self._state(container)
                if state and not state.get("Running", False) and state.get("Status") in ("exited", "dead"):
                    return {"StatusCode": state.get("ExitCode")}
                continue

    def _state(self, container: Container) -> dict:
        try:
            container.reload()
            return container.attrs.get("State", {})
        except Exception:
            return {}

    def wait(self, timeout: float) -> ExitInfo:
        container = self.container  # kill() on another thread may reset self.container
        if container is None:
            raise NotStarted("wait() before start()")
        timed_out = False
        try:
            result = self._wait_exit(container, timeout)
            if result is None:
                timed_out = True
                try:
                    container.kill(signal="SIGTERM")
                except docker.errors.APIError:
                    pass  # it exited meanwhile
                result = self._wait_exit(container, self.grace_period)
                if result is None:
                    try:
                        container.kill(signal="SIGKILL")
                    except docker.errors.APIError:
                        pass
                    result = self._wait_exit(container, 30.0)
        except docker.errors.NotFound:
            return ExitInfo(exit_code=None, timed_out=timed_out, reason="the container was removed (killed)")
        state = self._state(container)
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
