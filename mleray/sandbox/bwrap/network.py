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

import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO, List, Optional

from mleray.sandbox.bwrap.cgroup import Layout
from mleray.sandbox.bwrap.launch import launch_env

NET_CGROUP = "mleray-net"
BLOCKED_CIDRS = ("169.254.0.0/16",)
RESOLV_CONF = Path(__file__).parent / "etc" / "resolv-slirp.conf"  # slirp4netns's DNS forwarder, 10.0.2.3
SETUP_TIMEOUT = 10.0


class NetworkError(RuntimeError):
    """The trial's network namespace could not be connected (the message says why)."""


def _rules() -> List[List[str]]:
    match = ["OUTPUT", "-m", "cgroup", "--path", NET_CGROUP]
    rules = [[*match, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "REJECT"]]
    rules += [[*match, "-d", cidr, "-j", "REJECT"] for cidr in BLOCKED_CIDRS]
    return rules


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


def install_firewall() -> None:
    """Makes the `mleray-net` cgroup and inserts the rules once (idempotent). Raises NetworkError."""
    _cgroup_dir().mkdir(exist_ok=True)
    for rule in _rules():
        if subprocess.run(["iptables", "-w", "-C", *rule], capture_output=True).returncode == 0:
            continue
        done = subprocess.run(["iptables", "-w", "-I", *rule], capture_output=True, text=True)
        if done.returncode != 0:
            raise NetworkError(f"iptables -I {' '.join(rule)}: {done.stderr.strip()[-200:]}")


def remove_firewall() -> None:
    """Removes the rules and the cgroup (for tests and a node's teardown; never while trials run)."""
    for rule in _rules():
        while subprocess.run(["iptables", "-w", "-C", *rule], capture_output=True).returncode == 0:
            subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True)
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
