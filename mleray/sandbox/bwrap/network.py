"""Egress for bwrap agents that need it (spec.network): a network namespace of the trial's own, joined to
the outside by slirp4netns, with the host itself out of reach.

The sandbox unshares its network (its own loopback: two trials never share ports, a trial's
validation port is its own); slirp4netns, started by the host once bwrap has made the namespace, gives
it a user-mode NAT to the outside. `--disable-host-loopback` makes the host's 127.0.0.1 unreachable
through slirp's gateway; the host's other addresses (its own interface, docker0: every service bound
to 0.0.0.0) would still be reachable, so slirp4netns runs in the cgroup2 folder `mleray-net`, and one
iptables rule rejects what processes of that folder send to a LOCAL address (and to link-local
169.254.0.0/16, where clouds answer with credentials). The rule and the folder stay for the node's
life: removing them while another trial runs would open the hole for it.

Sequence (measured, bubblewrap 0.8): bwrap `--unshare-net --info-fd --block-fd`, read the child pid,
wait until bwrap has brought up the namespace's loopback (else bwrap dies "loopback: Failed
RTM_NEWADDR"), start slirp4netns on `/proc/<pid>/ns/net` (the path form joins only the network
namespace), read its ready byte, release bwrap.
"""

from __future__ import annotations

import ipaddress
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, ContextManager, List, Optional

from mleray.paths import node_lock
from mleray.sandbox.bwrap.cgroup import Layout
from mleray.sandbox.bwrap.launch import launch_env
from mleray.sandbox.egress import BLOCKED_CIDRS

NET_CGROUP = "mleray-net"
# Private, shared-address and link-local ranges: the cluster's other nodes (Ray's ports, which run code as
# root), the cloud's metadata service (169.254.169.254: credentials). Egress is for the public internet.
RESOLV_CONF = Path(__file__).parent / "etc" / "resolv-slirp.conf"  # slirp4netns's DNS forwarder, 10.0.2.3
HOST_RESOLV = Path("/etc/resolv.conf")
SETUP_TIMEOUT = 10.0
DESCRIPTION = "slirp4netns, host unreachable (and private, link-local ranges)"


class NetworkError(RuntimeError):
    """The trial's network namespace could not be connected (the message says why)."""


def nameservers() -> List[str]:
    """The host's IPv4 resolvers: slirp4netns forwards the sandbox's DNS (10.0.2.3) to them."""
    found: List[str] = []
    try:
        lines = HOST_RESOLV.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                if isinstance(ipaddress.ip_address(parts[1]), ipaddress.IPv4Address):
                    found.append(parts[1])
            except ValueError:
                continue
    return found


def rules() -> List[List[str]]:
    """The OUTPUT rules for slirp4netns's cgroup, in the order they apply: DNS to the host's resolvers,
    then nothing to the host's own addresses or the blocked ranges."""
    match = ["OUTPUT", "-m", "cgroup", "--path", NET_CGROUP]
    out = [[*match, "-d", ns, "-p", proto, "--dport", "53", "-j", "ACCEPT"]
           for ns in nameservers() for proto in ("udp", "tcp")]
    out.append([*match, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "REJECT"])
    out += [[*match, "-d", cidr, "-j", "REJECT"] for cidr in BLOCKED_CIDRS]
    return out


def problem() -> Optional[str]:
    """None when egress trials can have their own namespace with the host unreachable; else why not."""
    if os.geteuid() != 0:
        return "not root (slirp4netns in a namespace the host makes, and the firewall rule, need root)"
    if shutil.which("slirp4netns") is None:
        return "slirp4netns is not installed (apt-get install -y slirp4netns)"
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install -y iptables)"
    if not Path("/dev/net/tun").exists():
        return "the kernel offers no /dev/net/tun (TUN/TAP)"
    if Layout().v2 is None:
        return "no cgroup2 mount for the firewall's cgroup match (xt_cgroup --path)"
    return None


def _cgroup_dir() -> Path:
    v2 = Layout().v2
    if v2 is None:
        raise NetworkError("no cgroup2 mount for the firewall's cgroup match")
    return v2 / NET_CGROUP


def _present(rule: List[str]) -> bool:
    return subprocess.run(["iptables", "-w", "-C", *rule], capture_output=True).returncode == 0


def _firewall_lock() -> ContextManager[None]:
    """One process at a time edits the rules (two trials starting together)."""
    return node_lock(Path(tempfile.gettempdir()) / "mleray-net.lock")


def install_firewall() -> None:
    """Makes the `mleray-net` cgroup and puts the rules at the top of OUTPUT in their order (a no-op
    when they are all there). Raises NetworkError."""
    _cgroup_dir().mkdir(exist_ok=True)
    wanted = rules()
    if all(_present(rule) for rule in wanted):
        return
    with _firewall_lock():
        if all(_present(rule) for rule in wanted):
            return
        _delete(wanted)
        for rule in reversed(wanted):  # each -I goes first: insert the last rule first
            done = subprocess.run(["iptables", "-w", "-I", rule[0], "1", *rule[1:]], capture_output=True, text=True)
            if done.returncode != 0:
                raise NetworkError(f"iptables -I {' '.join(rule)}: {done.stderr.strip()[-200:]}")


def _delete(wanted: List[List[str]]) -> None:
    for rule in wanted:
        while _present(rule):
            if subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True).returncode != 0:
                break


def remove_firewall() -> None:
    """Removes the rules and the cgroup (for tests and a node's teardown; never while trials run)."""
    with _firewall_lock():
        _delete(rules())
    try:
        _cgroup_dir().rmdir()
    except (OSError, NetworkError):
        pass


def _has_loopback(pid: int) -> bool:
    try:
        return "127.0.0.1" in Path(f"/proc/{pid}/net/fib_trie").read_text()
    except OSError:
        return False


class Slirp:
    """slirp4netns serving one sandbox's namespace; `close()` ends it (its exit fd closes)."""

    def __init__(self, child_pid: int, bwrap: subprocess.Popen, log: IO[bytes]):
        end = time.monotonic() + SETUP_TIMEOUT
        while not _has_loopback(child_pid):
            if bwrap.poll() is not None or time.monotonic() > end:
                raise NetworkError("bwrap did not bring up the sandbox's loopback")
            time.sleep(0.01)
        ready_r, ready_w = os.pipe()
        exit_r, self._exit_w = os.pipe()
        cgroup_procs = str(_cgroup_dir() / "cgroup.procs")

        def join_net_cgroup() -> None:
            fd = os.open(cgroup_procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

        try:
            self.proc = subprocess.Popen(
                ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
                 "--enable-seccomp", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
                 "--netns-type=path", f"/proc/{child_pid}/ns/net", "tap0"],
                pass_fds=[ready_w, exit_r], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=launch_env(), preexec_fn=join_net_cgroup, start_new_session=True)
        except OSError as err:
            os.close(self._exit_w)
            raise NetworkError(f"cannot start slirp4netns: {err}") from err
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            ready = _read_byte(ready_r, SETUP_TIMEOUT)
        finally:
            os.close(ready_r)
        if ready != b"1":
            self.close()
            log.seek(0)
            raise NetworkError(f"slirp4netns did not start: {log.read().decode(errors='replace')[-300:].strip()}")

    def close(self) -> None:
        """Ends slirp4netns (idempotent)."""
        if self._exit_w >= 0:
            os.close(self._exit_w)
            self._exit_w = -1
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _read_byte(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 1) if ready else b""
