"""The container for a SandboxSpec, as the docker SDK's create arguments: a pure function tests inspect.

What a container gets (all of it from `container_kwargs(spec)`):
- limits: CPU quota (nano_cpus), memory with swap included (mem_limit == memswap_limit), pids,
  /dev/shm size; GPUs only as the exact device ids Ray assigned (a DeviceRequest), with
  CUDA_VISIBLE_DEVICES renumbered to what the container sees and MLERAY_GPU_FRACTION set;
- user 1000:1000, every capability dropped, no-new-privileges, an init (docker-init) as PID 1 so
  SIGTERM reaches the agent and zombies are reaped; network none unless the agent needs egress;
- MLE-bench's layout as bind mounts (data and instructions read-only, submission/code/logs
  writable) plus the validation pieces (`validation.inside_mounts`);
- the time limit enforced inside as well (`limit_command`): with the spec's `time_limit` the command runs
  under `timeout -s TERM -k <grace> <limit + grace>` (a shell watchdog where the image has no `timeout`), so
  a container whose driver or actor died still ends by itself;
- labels `mleray.sweep`, `mleray.sweep_id` (name plus storage location: what `DockerSandbox.reap()`
  matches), `mleray.trial`, `mleray.attempt`, and `mleray.deadline` / `mleray.grace` (the epoch second
  the limit ends, and the grace after it) so the node-side reaper (`reaper.py`) removes overdue ones;
- the engine's log capped: json-file with `max-size` / `max-file` (LOG_MAX_SIZE x LOG_MAX_FILES);
- the container layer bounded to `disk_gb` (storage_opt size) only when the engine can (`layer_size=True`).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from docker.types import DeviceRequest, LogConfig, Mount

from mleray.llm import inside as llm_inside
from mleray.sandbox import validation
from mleray.sandbox.base import SandboxError, SandboxSpec
from mleray.sandbox.docker import network

AGENT_USER = "1000:1000"
GIB = 1024**3
LOG_MAX_SIZE, LOG_MAX_FILES = "10m", 3  # the engine keeps at most 30 MB of an agent's output
LABEL_DEADLINE, LABEL_GRACE = "mleray.deadline", "mleray.grace"
LIMIT_MARK = "mleray-time-limit"
# $1 limit, $2 grace, then the command. GNU timeout puts the command in a process group of its own and
# signals the group (SIGTERM at the limit, SIGKILL `grace` later), and forwards a SIGTERM it receives
# (docker stop, mleray's own time limit) to it. Without `timeout` in the image: the command in the
# background, a forwarding trap, and a watchdog that signals every process (kill -1 spares PID 1, the
# init, which ends the container when its child ends). TIMEOUT is replaced by the probe's name.
_LIMIT_SCRIPT = (
    'l=$1; g=$2; shift 2; '
    'if command -v TIMEOUT >/dev/null 2>&1; then exec TIMEOUT -s TERM -k "$g" "$l" "$@"; fi; '
    '"$@" & c=$!; '
    "trap 'kill -TERM $c 2>/dev/null' TERM INT HUP; "
    '( sleep "$l"; kill -TERM -1 2>/dev/null; sleep "$g"; kill -KILL -1 2>/dev/null ) & w=$!; '
    # wait again after a wait cut short by the forwarded TERM: the agent's own exit status, not 143
    'while :; do wait $c; r=$?; kill -0 $c 2>/dev/null && continue; '
    'wait $c 2>/dev/null; r2=$?; [ $r2 -ne 127 ] && r=$r2; break; done; '
    'kill $w 2>/dev/null; exit $r'
)

# container path -> mode, for the spec's own folders (validation's pieces come from validation.py)
_LAYOUT = (
    ("data_dir", "/home/data", "ro"),
    ("instructions", "/home/instructions.txt", "ro"),
    ("instructions_obfuscated", "/home/instructions_obfuscated.txt", "ro"),
    ("submission_dir", "/home/submission", "rw"),
    ("code_dir", "/home/code", "rw"),
    ("logs_dir", "/home/logs", "rw"),
    ("agent_code", "/home/agent", "ro"),
)


def container_name(spec: SandboxSpec) -> str:
    """Unique per sweep id, trial and attempt: a same-named sweep elsewhere never collides with it."""
    raw = f"mleray-{spec.sweep_id or spec.sweep}-{spec.trial_id}-a{spec.attempt}"
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
    pieces = validation.inside_mounts(spec) + llm_inside.inside_mounts(spec)
    out += [(str(Path(h).resolve()), c, m) for h, c, m in pieces]
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
    env.update(llm_inside.inside_env(spec))
    return env


def time_limit(spec: SandboxSpec) -> Optional[float]:
    """The trial's time limit in seconds: the spec's, else the MLERAY_TIME_LIMIT it declares; None: none."""
    if spec.time_limit is not None:
        return float(spec.time_limit)
    try:
        return float(spec.env["MLERAY_TIME_LIMIT"])
    except (KeyError, ValueError):
        return None


def limit_command(command: List[str], limit: float, grace: float, probe: str = "timeout") -> List[str]:
    """`command` made to stop itself: SIGTERM at `limit` seconds, SIGKILL `grace` seconds later, with
    `probe` (GNU timeout) where the image has it, else a shell watchdog. Idempotent."""
    if len(command) >= 4 and command[:2] == ["/bin/sh", "-c"] and command[3] == LIMIT_MARK:
        return list(command)
    script = _LIMIT_SCRIPT.replace("TIMEOUT", probe)
    return ["/bin/sh", "-c", script, LIMIT_MARK, f"{limit:g}", f"{max(grace, 1.0):g}", *command]


def container_kwargs(spec: SandboxSpec, grace_period: float = 10.0, layer_size: bool = False,
                     started: Optional[float] = None) -> dict:
    """Exactly what `client.containers.create(**kwargs)` receives for this spec. No engine needed.
    `grace_period`: seconds between SIGTERM and SIGKILL; with a time limit the command stops itself at
    limit + grace (SIGTERM) and limit + 2 x grace (SIGKILL), after mleray's own signals from outside.
    `layer_size`: bound the container layer to `spec.disk_gb` (only engines that support it).
    `started`: the epoch the deadline label counts from (now). Raises SandboxError when the spec has no
    image or an empty command."""
    if not spec.image:
        raise SandboxError(f"trial {spec.trial_id}: the agent has no docker image "
                           "(set `image` in its yaml, or use sandbox=bwrap)")
    if not spec.command:
        raise SandboxError(f"trial {spec.trial_id}: empty agent command")
    memory = int(spec.memory_gb * GIB)
    command = validation.wrap_command(llm_inside.wrap(spec, list(spec.command)))
    labels = dict(spec.labels)
    limit = time_limit(spec)
    if limit is not None and limit > 0:
        command = limit_command(command, limit + grace_period, grace_period)
        labels[LABEL_DEADLINE] = f"{(time.time() if started is None else started) + limit:.0f}"
        labels[LABEL_GRACE] = f"{grace_period:g}"
    kwargs = dict(
        image=spec.image,
        command=command,
        entrypoint=[],  # run the command as given, whatever the image's ENTRYPOINT
        name=container_name(spec),
        user=AGENT_USER,
        environment=environment(spec),
        labels=labels,
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
        network_mode=network.NETWORK if spec.network else "none",  # egress: a bridge of its own
        mounts=[Mount(target=c, source=h, type="bind", read_only=(m == "ro")) for h, c, m in mounts(spec)],
        working_dir="/home",
        log_config=LogConfig(type="json-file", config={"max-size": LOG_MAX_SIZE, "max-file": str(LOG_MAX_FILES)}),
    )
    if layer_size:
        kwargs["storage_opt"] = {"size": f"{max(1, int(math.ceil(spec.disk_gb)))}G"}
    if spec.gpu_ids:
        kwargs["device_requests"] = [DeviceRequest(device_ids=[str(g) for g in spec.gpu_ids], capabilities=[["gpu"]])]
    return kwargs
