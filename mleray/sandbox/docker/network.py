"""The network Docker egress agents get: a bridge of their own (`mleray-egress`, Linux bridge
`mleray-egress0`) with no traffic between its containers, and host firewall rules that reject what
the bridge sends to the host (INPUT: every host address, the gateway included) and to the private and
link-local ranges (DOCKER-USER, before Docker's own forwarding rules). On the default bridge a
container reaches every host service bound to 0.0.0.0 through the gateway; here it reaches only the
outside. Name resolution still works: Docker's embedded DNS answers inside the container's namespace
and resolves from the host's. Needs root and iptables on the node; without them the record says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from typing import List, Optional

import docker

from mleray.errors import one_line
from mleray.sandbox.egress import BLOCKED_CIDRS

NETWORK = "mleray-egress"
BRIDGE = "mleray-egress0"
OPTIONS = {"com.docker.network.bridge.name": BRIDGE, "com.docker.network.bridge.enable_icc": "false"}
HELD = ("bridge mleray-egress: outside only (the host and private, link-local ranges rejected; "
        "no traffic between trials)")
_lock = threading.Lock()


def rules() -> List[List[str]]:
    """The iptables rules (chain first) that make the bridge reach the outside only."""
    return ([["INPUT", "-i", BRIDGE, "-j", "REJECT"]]
            + [["DOCKER-USER", "-i", BRIDGE, "-d", cidr, "-j", "REJECT"] for cidr in BLOCKED_CIDRS])


def problem() -> Optional[str]:
    """None when this node can install the rules; else why not, in a few words."""
    if os.geteuid() != 0:
        return "not root (the firewall rules need root)"
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install -y iptables)"
    return None


def ensure(client: docker.DockerClient) -> str:
    """Makes the network (once per engine) and its rules (once per host); returns what holds, for the
    record's isolation map ("not enforced: ..." when the rules cannot be installed). Raises the engine's
    error when the network cannot be made (the trial cannot start on it)."""
    with _lock:
        try:
            client.networks.get(NETWORK)
        except docker.errors.NotFound:
            try:
                client.networks.create(NETWORK, driver="bridge", options=OPTIONS)
            except docker.errors.APIError as err:  # another process made it first
                if "already exists" not in str(err):
                    raise
        why = problem()
        if why:
            return f"bridge {NETWORK}, host reachable: not enforced: {why}"
        for rule in rules():
            present = subprocess.run(["iptables", "-w", "-C", *rule], capture_output=True).returncode == 0
            if present:
                continue
            done = subprocess.run(["iptables", "-w", "-I", rule[0], "1", *rule[1:]], capture_output=True, text=True)
            if done.returncode != 0:
                return f"bridge {NETWORK}, host reachable: not enforced: iptables {' '.join(rule)}: " \
                       f"{one_line(RuntimeError(done.stderr or 'failed'))}"
        return HELD
