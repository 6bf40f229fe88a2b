"""The Docker backend's lifecycle: one hardened container per agent run (its arguments: `spec.py`).

Use:
    box = DockerSandbox(spec, grace_period=cfg.grace_period)
    box.start()                      # SandboxError when the engine or the image is missing
    for line in box.logs(): ...      # in a thread of its own, if the caller also waits
    info = box.wait(time_limit)      # SIGTERM at the deadline, kill after the grace period
    box.isolation()                  # what held, measured (engine inspect, the container's cgroup)
    box.kill()                       # removes the container; idempotent
    DockerSandbox.reap(sweep_id)     # removes one sweep's leftover containers (label mleray.sweep_id)

A container outlives no driver: with spec.time_limit it stops itself (spec.limit_command), and every
start() asks, at most once a minute per process and in the background, the node-side reaper
(`reaper.reap_overdue`, also `python -m mleray.sandbox.docker.reaper`) to remove overdue containers.

How it ended (ExitInfo) is read from the engine, not guessed: OOMKilled plus the main process's exit
(137: the main process was killed for memory; otherwise a child was, `child_oom_killed`), the cgroup's
oom_kill count where the host can read it, and the engine's kill events (a signal mleray did not send is
`killed_externally`; so is an exit by SIGKILL/SIGTERM that neither mleray nor memory explains).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Sequence

import docker
import requests
from docker.models.containers import Container, _create_container_args

from mleray.errors import one_line
from mleray.sandbox.base import ExitInfo, NotStarted, Sandbox, SandboxError, SandboxSpec
from mleray.sandbox.disk import tree_bytes
from mleray.sandbox.docker import cores, engine, network, reaper
from mleray.sandbox.docker.engine import EngineError
from mleray.sandbox.docker.logs import LogReader
from mleray.sandbox.docker.logs import frames as log_frames
from mleray.sandbox.docker.spec import container_kwargs, time_limit

if TYPE_CHECKING:
    from mleray.config import AgentConfig

AGENT_UID = AGENT_GID = 1000
LABEL_SWEEP = "mleray.sweep"
LABEL_SWEEP_ID = "mleray.sweep_id"
SIGNALS = {"SIGTERM": 15, "SIGKILL": 9, "TERM": 15, "KILL": 9}
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
        self._sent: List[int] = []  # signals mleray sent the container (time limit)
        self._started = 0.0  # epoch second of the start, for the engine's events
        self._t0 = 0.0  # monotonic time of the start
        self._layer = ""  # what bounds the container layer (isolation)
        self._egress = ""  # what holds for an egress trial's network (docker/network.py)
        self._upper: Optional[Path] = None  # the layer's upper folder on the host (Path() when there is none)
        self._watch = _CgroupWatch()
        self._held: Dict[str, str] = {}  # isolation() as read just before kill() removed the container

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
    def prepare_agent(cls, agent: "AgentConfig", log: Optional[Callable[[str], None]] = None) -> "AgentConfig":
        """An MLE-bench-style agent (its code in its image, no code folder) runs on a layer of its image with
        /home writable by uid 1000, as MLE-bench's entrypoint makes it (`mlebench_images.writable_image`, derived
        once per image id); any other agent unchanged."""
        if not (agent.image and not agent.code):
            return agent
        from mleray.sandbox.mlebench_images import writable_image  # the image builder, only when needed

        return dataclasses.replace(agent, image=writable_image(agent.image, log))

    @classmethod
    def reap(cls, sweep_id: str) -> int:
        """Removes the containers labelled with this sweep id (mleray.sweep_id), running or not; a sweep of
        the same name on another storage path has another id, and its containers are left alone."""
        removed = 0
        found = engine.client().containers.list(all=True, filters={"label": f"{LABEL_SWEEP_ID}={sweep_id}"})
        for container in found:
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
        client = engine.client(120)
        bounded, self._layer = engine.layer_bound(client)
        self._started = time.time()
        kwargs = container_kwargs(self.spec, self.grace_period, layer_size=bounded, started=self._started)
        prepare_host(self.spec)
        if self.spec.network:
            self._egress = network.ensure(client)
        reaper.reap_overdue_soon()  # containers whose driver died, on this node's engine; in the background
        # No ping, no image lookup, no inspect: create answers all three (every call costs start-up time).
        api = client.api
        try:
            with cores.choosing():  # the cores, then the container that shows them taken (docker/cores.py)
                kwargs["cpuset_cpus"] = cores.pick(client, self.spec.cpus)  # affinity the agent cannot widen
                kwargs["labels"] = {**kwargs["labels"], cores.LABEL_CPUSET: kwargs["cpuset_cpus"]}
                try:
                    created = self._create(api, kwargs)
                except docker.errors.ImageNotFound:
                    raise SandboxError(f"image {self.spec.image} is not on this engine: {BUILD_HINT}") from None
                except docker.errors.APIError as err:
                    if getattr(err, "status_code", None) != 409:  # 409: a leftover with this name
                        raise
                    api.remove_container(kwargs["name"], force=True)
                    created = self._create(api, kwargs)
            container = client.containers.prepare_model({"Id": created["Id"]})
            self.container = container
            container.start()
            self._t0 = time.monotonic()
            self._watch.begin(container)
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

    def _create(self, api, kwargs: dict) -> dict:
        """create_container; where the engine refuses the layer bound (overlay2 on xfs without pquota),
        again without it, and that is recorded."""
        try:
            return api.create_container(**_create_container_args({**kwargs, "version": api._version}))
        except docker.errors.APIError as err:
            if "storage_opt" not in kwargs or "storage" not in str(err).lower():
                raise
            why = one_line(err)
            engine.no_layer_bound(f"the engine refused storage_opt size ({why})")
            self._layer = engine.layer_bound()[1]
            rest = {k: v for k, v in kwargs.items() if k != "storage_opt"}
            return api.create_container(**_create_container_args({**rest, "version": api._version}))

    # ------------------------------------------------------------------ logs
    def logs(self) -> Iterator[str]:
        """Follows the container's stdout+stderr from its first byte (the engine keeps the log, so
        nothing printed before this call or while the reader is slow is lost), as lines of at most
        LINE_CAP_BYTES, each once; once the container has exited, reads what the follower missed
        (docker/logs.py says why both are needed)."""
        if self.container is None:
            raise NotStarted("logs() before start()")
        client = engine.client(None)  # no read timeout: an agent may be quiet for hours
        container_id = self.container.id
        reader = LogReader()
        try:
            for stream, frame in log_frames(client.api, container_id, follow=True):
                yield from reader.feed(stream, frame)
            try:
                client.api.wait(container_id, timeout=30)
            except requests.exceptions.RequestException:  # still running 30 s after its stream ended
                pass
            else:
                reader.replaying()
                for stream, frame in log_frames(client.api, container_id, follow=False, since=reader.since()):
                    yield from reader.feed(stream, frame)
        except docker.errors.NotFound:
            pass  # removed by kill(): the run is over
        except docker.errors.APIError as err:
            if err.status_code != 409 and not self._killed:  # 409: being removed ("dead or marked for removal")
                raise
        except Exception:
            if not self._killed:
                raise
        yield from reader.rest()

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

    def _signal(self, container: Container, name: str) -> None:
        self._sent.append(SIGNALS[name])
        try:
            container.kill(signal=name)
        except docker.errors.APIError:
            pass  # it exited meanwhile

    def wait(self, timeout: float) -> ExitInfo:
        container = self.container  # kill() on another thread may reset self.container
        if container is None:
            raise NotStarted("wait() before start()")
        timed_out = False
        try:
            result = self._wait_exit(container, timeout)
            if result is None:
                timed_out = True
                self._signal(container, "SIGTERM")
                result = self._wait_exit(container, self.grace_period)
                if result is None:
                    self._signal(container, "SIGKILL")
                    result = self._wait_exit(container, 30.0)
        except docker.errors.NotFound:
            self._watch.stop()
            if self._killed:
                return ExitInfo(exit_code=None, timed_out=timed_out, reason="the container was removed (killed)")
            return ExitInfo(exit_code=None, timed_out=timed_out, killed_externally=True,
                            reason="killed externally: the container was removed from outside mleray")
        self._watch.stop()
        state = self._state(container)
        code = state.get("ExitCode", (result or {}).get("StatusCode"))
        return self._exit_info(container, state, code, timed_out, timeout)

    def _exit_info(self, container: Container, state: dict, code: Optional[int], timed_out: bool,
                   timeout: float) -> ExitInfo:
        """What the engine says happened, named (see the module's docstring)."""
        oom_kills = self._watch.oom_kills
        oom = bool(state.get("OOMKilled", False)) or oom_kills > 0
        main_killed = code == 128 + 9
        limit = time_limit(self.spec)
        elapsed = time.monotonic() - self._t0
        inner_limit = (not timed_out and limit is not None and code in (124, 128 + 9, 128 + 15)
                       and elapsed >= limit + self.grace_period - 1)
        stopped = self._killed  # kill() from another thread (the trial was aborted): mleray's own doing
        foreign = [] if (timed_out or inner_limit or stopped) else self._foreign_signals(container)
        memory = f"the limit is {self.spec.memory_gb:g} GB, swap included"
        counted = f", {oom_kills} OOM kill(s) in the container's cgroup" if oom_kills else ""
        info = ExitInfo(exit_code=code, timed_out=timed_out or inner_limit)
        if timed_out:
            info.reason = f"killed at the time limit ({timeout:g} s)"
        elif inner_limit:
            info.reason = (f"stopped by its own in-container time limit ({limit:g} s + {self.grace_period:g} s "
                           "grace): mleray's driver was not there to stop it")
        elif stopped:
            info.reason = f"stopped by mleray (the trial was aborted); exit {code}"
        elif foreign:
            info.killed_externally = True
            info.reason = (f"killed externally: signal {', '.join(map(str, foreign))} sent to the container from "
                           f"outside mleray (not its time limit, not out of memory); exit {code}")
        elif oom and main_killed:
            info.oom_killed = True
            info.reason = f"out of memory: the agent's main process was killed ({memory}{counted})"
        elif code in (128 + 9, 128 + 15) and not self._sent:
            info.killed_externally = True
            info.reason = (f"killed externally: exit {code} (signal {code - 128}) that neither mleray's time "
                           "limit nor the memory limit sent")
        elif code is None:
            info.reason = "ended without an exit code"
        elif code >= 128:
            info.reason = f"exit {code} (killed by signal {code - 128})"
        else:
            info.reason = f"exit {code}"
        if oom and not info.oom_killed:
            info.child_oom_killed = True
            info.reason += f"; a child process was killed for memory, the agent went on ({memory}{counted})"
        if state.get("Error"):
            info.reason += f"; engine: {state['Error']}"
        return info

    def _foreign_signals(self, container: Container) -> List[int]:
        """Signals the engine delivered to the container (docker kill / stop / rm -f) that mleray did not
        send, from the engine's event log since the start; [] when the engine cannot say."""
        try:
            events = engine.client(30).api.events(since=int(self._started) - 1, until=int(time.time()) + 1,
                                                  filters={"container": container.id, "event": "kill"},
                                                  decode=True)
            sent = [int((e.get("Actor", {}).get("Attributes", {}) or {}).get("signal", 0) or 0) for e in events]
        except Exception:
            return []
        ours = list(self._sent)
        foreign = []
        for sig in sent:
            if sig in ours:
                ours.remove(sig)
            else:
                foreign.append(sig)
        return foreign

    # ------------------------------------------------------------------ isolation
    def isolation(self) -> Dict[str, str]:
        """What held for this container, read back from the engine (HostConfig as applied) and, where the
        host sees the container's cgroup, from the kernel's own files. Never raises."""
        try:
            return self._isolation()
        except Exception as err:  # the engine went away: say so rather than claim anything
            return {"engine": f"not measured: {one_line(err)}"}

    def _isolation(self) -> Dict[str, str]:
        container = self.container
        if container is None:
            return dict(self._held)
        attrs = engine.client(30).api.inspect_container(container.id)
        host, config = attrs.get("HostConfig", {}), attrs.get("Config", {})
        seen = self._watch.limits
        declared = set(container_kwargs(self.spec, self.grace_period)["environment"])
        names = {entry.split("=", 1)[0] for entry in config.get("Env") or []}
        out: Dict[str, str] = {}
        out["env"] = (f"declared only: {len(names & declared)} variables from mleray and the agent's yaml, "
                      f"{len(names - declared)} from the image (nothing of the host's)")
        pids = host.get("PidsLimit")
        out["pids"] = (f"pids_limit={pids}" + (f" (pids.max={seen['pids']})" if "pids" in seen else "")
                       if pids else "not enforced: no pids limit")
        memory, swap = host.get("Memory") or 0, host.get("MemorySwap") or 0
        out["memory"] = (f"{memory / 1024**3:g} GiB, swap included (memory+swap {swap / 1024**3:g} GiB"
                         + (f"; cgroup limit {_gib(seen['memory'])}" if "memory" in seen else "")
                         + ")" if memory else "not enforced: no memory limit")
        nano = host.get("NanoCpus") or 0
        cpuset = host.get("CpusetCpus") or ""
        out["cpu"] = (f"nano_cpus={nano} ({nano / 1e9:g} CPUs" + (f"; cfs quota {seen['cpu']}" if "cpu" in seen else "")
                      + (f"; cpuset {cpuset}" if cpuset else "")
                      + ")" if nano else "not enforced: no CPU quota")
        mode = host.get("NetworkMode", "?")
        out["network"] = "none (loopback only)" if mode == "none" else (self._egress or f"{mode} (egress)")
        out["user"] = f"uid {str(config.get('User') or 'root (image default)').split(':')[0]}"
        dropped = host.get("CapDrop") or []
        out["capabilities"] = ("all dropped" if "ALL" in dropped and not host.get("CapAdd")
                               else f"not all dropped: drop {dropped}, add {host.get('CapAdd')}")
        security = host.get("SecurityOpt") or []
        out["no_new_privileges"] = "set" if "no-new-privileges" in security else "not set"
        out["seccomp"] = ("not enforced: unconfined" if "seccomp=unconfined" in security
                          else seen.get("seccomp", "the engine's default profile"))
        limit = time_limit(self.spec)
        grace = self.grace_period
        out["time_limit_inside"] = (f"the container stops itself: SIGTERM at {limit + grace:g} s, SIGKILL "
                                    f"{max(grace, 1):g} s later" if limit else "not set: no time limit given")
        log = host.get("LogConfig") or {}
        opts = log.get("Config") or {}
        out["engine_log"] = (f"{log.get('Type')}, max-size {opts['max-size']} x {opts.get('max-file', 1)} files"
                             if opts.get("max-size") else f"not capped: {log.get('Type')} without max-size")
        size = (host.get("StorageOpt") or {}).get("size")
        polled = f"its upper folder polled by the runner against disk_gb (engine: {self._layer or 'no bound'})"
        out["layer_disk"] = (f"storage_opt size={size}" if size else
                             polled if self._upper_dir() else (self._layer or "not enforced"))
        return out

    def _upper_dir(self) -> Optional[Path]:
        """The host folder of the container layer's writes (overlay2's UpperDir), looked up once."""
        if self._upper is None and self.container is not None:
            try:
                data = engine.client(30).api.inspect_container(self.container.id)["GraphDriver"]["Data"] or {}
                self._upper = Path(data["UpperDir"]) if data.get("UpperDir") else Path()
            except Exception:  # engine gone, another storage driver: nothing to poll
                self._upper = Path()
        return self._upper if self._upper not in (None, Path()) else None

    def written_outside(self) -> int:
        """Bytes in the container layer (what the agent wrote to /tmp, /home outside its mounts, ...)."""
        upper = self._upper_dir()
        return tree_bytes(upper) if upper is not None else 0

    # ------------------------------------------------------------------ kill
    def kill(self) -> None:
        self._watch.stop()
        with self._lock:
            self._killed = True
            if self.container is None:
                return
            self._held = self._held or self.isolation()  # a record of a killed trial still says what held
            try:
                self.container.remove(force=True)
            except Exception:
                pass  # gone already, or the engine is gone: reap() catches leftovers
            self.container = None


def _gib(value: str) -> str:
    return f"{int(value) / 1024**3:g} GiB" if value.isdigit() else value


class _CgroupWatch:
    """Reads the running container's memory cgroup from the host once a second: its OOM kill count
    (cgroup v1 memory.oom_control, v2 memory.events) and, once, the limits the kernel holds (memory, pids,
    CPU quota) and the agent's seccomp mode. Nothing when the host cannot see the container's processes
    (a remote engine, another PID namespace); the engine's OOMKilled flag still answers then."""

    def __init__(self) -> None:
        self.oom_kills = 0
        self.limits: Dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def begin(self, container: Container) -> None:
        self._thread = threading.Thread(target=self._run, args=(container.id,), name="docker-cgroup", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self, container_id: str) -> None:
        try:
            pid = engine.client(30).api.inspect_container(container_id)["State"]["Pid"]
            groups = self._groups(pid, container_id)
        except Exception:
            return
        if not groups:
            return
        self._read_limits(pid, groups)
        while True:
            count = self._oom_count(groups)
            if count is None:
                return  # the cgroup is gone: the container ended
            self.oom_kills = max(self.oom_kills, count)
            if self._stop.wait(1.0):
                count = self._oom_count(groups)  # a last look: a kill just before the end
                if count is not None:
                    self.oom_kills = max(self.oom_kills, count)
                return

    @staticmethod
    def _groups(pid: int, container_id: str) -> Dict[str, Path]:
        """controller -> the container's cgroup folder on this host ("" for the v2 unified one)."""
        out: Dict[str, Path] = {}
        root = Path("/sys/fs/cgroup")
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if container_id not in path:
                continue
            for name in controllers.split(",") if controllers else [""]:
                folder = root / name / path.lstrip("/") if name else root / path.lstrip("/")
                if folder.is_dir():
                    out[name] = folder
        return out

    @staticmethod
    def _oom_count(groups: Dict[str, Path]) -> Optional[int]:
        for name, file in (("memory", "memory.oom_control"), ("", "memory.events")):
            if name in groups:
                try:
                    text = (groups[name] / file).read_text()
                except OSError:
                    return None
                for line in text.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return None

    def _read_limits(self, pid: int, groups: Dict[str, Path]) -> None:
        def read(name: str, file: str) -> Optional[str]:
            try:
                return (groups[name] / file).read_text().strip() if name in groups else None
            except OSError:
                return None

        memory = (read("memory", "memory.memsw.limit_in_bytes") or read("memory", "memory.limit_in_bytes")
                  or read("", "memory.max"))
        pids = read("pids", "pids.max") or read("", "pids.max")
        quota, period = read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")
        cpu = f"{quota}/{period} us" if quota and period else read("", "cpu.max")
        for key, value in (("memory", memory), ("pids", pids), ("cpu", cpu)):
            if value is not None:
                self.limits[key] = value
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Seccomp:"):
                    mode = line.split()[1]
                    modes = {"2": "filter (the engine's default profile)", "0": "not enforced: off"}
                    self.limits["seccomp"] = modes.get(mode, f"mode {mode}")
        except OSError:
            pass
