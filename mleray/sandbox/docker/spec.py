"""The container for a SandboxSpec, as the docker SDK's create arguments: a pure function tests inspect.

What a container gets (all of it from `container_kwargs(spec)`):
- limits: CPU quota (nano_cpus), memory with swap included (mem_limit == memswap_limit), pids,
  /dev/shm size; GPUs only as the exact device ids Ray assigned (a DeviceRequest), with
  CUDA_VISIBLE_DEVICES renumbered to what the container sees and MLERAY_GPU_FRACTION set;
- user 1000:1000, every capability dropped, no-new-privileges, an init (docker-init) as PID 1 so
  SIGTERM reaches the agent and zombies are reaped; network none unless the agent needs egress;
- MLE-bench's layout as bind mounts (data and instructions read-only, submission/code/logs
  writable) plus the validation pieces (`validation.inside_mounts`);
- labels `mleray.sweep`, `mleray.trial`, `mleray.attempt` so `DockerSandbox.reap()` finds leftovers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict, List, Tuple

from docker.types import DeviceRequest, Mount

from mleray.sandbox import validation
from mleray.sandbox.base import SandboxError, SandboxSpec

AGENT_USER = "1000:1000"
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
    """Exactly what `client.containers.create(**kwargs)` receives for this spec. No engine needed.
    Raises SandboxError when the spec has no image or an empty command."""
    if not spec.image:
        raise SandboxError(f"trial {spec.trial_id}: the agent has no docker image "
                           "(set `image` in its yaml, or use sandbox=bwrap)")
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
