"""How bwrap is launched: who the agent is, and what environment anything in the sandbox can see.

As root (a node's worker), bwrap runs without a user namespace, keeps only CAP_SETUID, CAP_SETGID and
CAP_SETPCAP, and execs `setpriv` inside, which becomes uid/gid 1000 with no supplementary groups, no
inheritable capabilities, an empty bounding set and no_new_privs: the agent is uid 1000 on the host too,
with no capabilities (measured: root plus `--unshare-user --uid 1000` leaves the agent kernel uid 0, able
to read root-only files; CAP_SETPCAP is what lets setpriv empty the bounding set). Not root, bwrap maps
the caller to uid 1000 in a user namespace of its own.

bwrap itself is started with `launch_env()` (PATH only): its PID-1 reaper inside the sandbox keeps
bwrap's environment, so `--clearenv` alone would leave the driver's whole environment in
/proc/1/environ. The agent gets `--clearenv` and only the declared variables.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Dict, List, Mapping

AGENT_UID = AGENT_GID = 1000
LAUNCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SETPRIV = "/usr/bin/setpriv"


def launch_env() -> Dict[str, str]:
    """The environment of bwrap (and slirp4netns) itself: nothing of the caller's."""
    return {"PATH": LAUNCH_PATH}


def is_root() -> bool:
    return os.geteuid() == 0


def namespace_args(root: bool, own_network: bool) -> List[str]:
    """Namespaces and capabilities. `own_network`: a network namespace of the sandbox's own (no network,
    or slirp4netns for egress); False shares the host's (egress without slirp4netns)."""
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if own_network:
        args.append("--unshare-net")
    if root:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SETPCAP"]
    else:
        args += ["--unshare-user", "--uid", str(AGENT_UID), "--gid", str(AGENT_GID), "--cap-drop", "ALL"]
    return args


def drop_prefix(root: bool) -> List[str]:
    """What runs first inside the sandbox: as root, setpriv down to uid 1000 without capabilities."""
    if not root:
        return []
    return [SETPRIV, f"--reuid={AGENT_UID}", f"--regid={AGENT_GID}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


def user_description(root: bool) -> str:
    """The `user` entry of isolation()."""
    if root:
        return f"uid {AGENT_UID}, no capabilities (setpriv: empty bounding set, no_new_privs)"
    return f"uid {AGENT_UID} in a user namespace (host uid {os.geteuid()}), no capabilities"


def env_args(env: Mapping[str, str]) -> List[str]:
    """`--clearenv` plus one `--setenv` per declared variable. Raises ValueError for a name bwrap
    cannot set (empty, with '=' or a NUL) or a value with a NUL."""
    args = ["--clearenv"]
    for key, value in env.items():
        if not key or "=" in key or "\0" in key or "\0" in str(value):
            raise ValueError(f"environment variable {key!r} cannot be passed to the sandbox")
        args += ["--setenv", key, str(value)]
    return args


def read_info(fd: int, timeout: float = 10.0) -> dict:
    """The JSON bwrap writes on `--info-fd` (its `child-pid`); raises TimeoutError when none comes
    (bwrap failed before making the sandbox: its output says why)."""
    buf, end = b"", time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        try:
            return json.JSONDecoder().raw_decode(buf.decode().lstrip())[0]
        except ValueError:
            continue
    raise TimeoutError("bwrap made no sandbox")
