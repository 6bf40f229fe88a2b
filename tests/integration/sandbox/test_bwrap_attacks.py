"""Hostile agents against the bwrap sandbox, for real: each attack is contained, or skipped naming the
kernel feature this machine lacks (never a silent pass). The driver's environment, uid and capabilities,
the seccomp filter, a fork bomb, a memory hog split over processes, an OOM of the main process, affinity
widening, a CPU quota, SIGTERM with grace, egress trials probing the host and sharing ports."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
from helpers import as_user, require

from mleray.sandbox.base import SandboxSpec
from mleray.sandbox.bwrap import BwrapSandbox, cgroup, network, seccomp


def spec_for(tmp_path: Path, script: str, name: str = "t", **kw) -> SandboxSpec:
    """A sandbox spec running `script` as /home/agent/agent.py, with its own trial folders."""
    base = tmp_path / name
    data = base / "public"
    data.mkdir(parents=True)
    (data / "description.md").write_text("the task\n")
    (base / "instructions.txt").write_text("do it\n")
    (base / "agent").mkdir()
    (base / "agent" / "agent.py").write_text(textwrap.dedent(script))
    fields = dict(sweep="attacks", sweep_id="attacks-" + uuid.uuid4().hex[:6], trial_id=name, attempt=0,
                  command=["python3", "/home/agent/agent.py"], data_dir=data, instructions=base / "instructions.txt",
                  submission_dir=base / "sub", code_dir=base / "code", logs_dir=base / "logs",
                  agent_code=base / "agent", env={"COMPETITION_ID": "demo"}, cpus=1.0, memory_gb=1.0, pids=128)
    fields.update(kw)
    return SandboxSpec(**fields)


def run(spec: SandboxSpec, timeout: float = 60, grace: float = 2.0):
    box = BwrapSandbox(spec, grace_period=grace)
    box.start()
    try:
        lines = list(box.logs())
        return lines, box.wait(timeout), box
    finally:
        box.kill()


def last_json(lines):
    return json.loads(next(line for line in reversed(lines) if line.startswith("{")))


@pytest.fixture
def root(bwrap_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: the uid drop, cgroups and the network namespace are set up as root")


def need_limit(box_isolation: dict, key: str) -> None:
    """Skips, naming what is missing, when this machine could not enforce `key`."""
    value = box_isolation.get(key, "not enforced: unknown")
    if value.startswith("not enforced"):
        pytest.skip(f"{key} {value} on this machine")


@pytest.fixture
def cgroup_limits(root):
    lay = cgroup.Layout()
    for controller in ("pids", "memory"):
        if lay.where(controller) is None:
            pytest.skip(f"the kernel offers no cgroup {controller} controller here")
    return lay


# -- environment, user ----------------------------------------------------------------------------

ENV_PROBE = """
    import json, os
    seen = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for part in ("environ", "cmdline"):
                try:
                    seen[pid + "/" + part] = open(f"/proc/{pid}/{part}", "rb").read().decode(errors="replace")
                except OSError as e:
                    seen[pid + "/" + part] = "ERR " + e.strerror
    status = open("/proc/self/status").read()
    field = lambda k: status.split(k + ":")[1].split()[0]
    print(json.dumps(dict(seen=seen, env=dict(os.environ), uid=os.getuid(), gid=os.getgid(), groups=os.getgroups(),
                          CapEff=field("CapEff"), CapBnd=field("CapBnd"), NoNewPrivs=field("NoNewPrivs"),
                          Seccomp=field("Seccomp"))))
"""


def test_driver_environment_is_nowhere_inside(tmp_path, bwrap_path, monkeypatch):
    canary = "canary-" + uuid.uuid4().hex
    monkeypatch.setenv("MLERAY_TEST_CANARY_SECRET", canary)
    lines, exit_info, box = run(spec_for(tmp_path, ENV_PROBE, env={"COMPETITION_ID": "demo", "DECLARED": "yes"}))
    assert exit_info.exit_code == 0, lines
    probe = last_json(lines)
    assert "1/environ" in probe["seen"] and len(probe["seen"]) >= 4  # bwrap's PID 1 and the agent at least
    leaked = [where for where, text in probe["seen"].items() if canary in text or "MLERAY_TEST_CANARY" in text]
    assert leaked == [] and canary not in json.dumps(probe["env"])
    declared = {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "COMPETITION_ID", "DECLARED"}
    assert set(probe["env"]) - declared <= {"PWD", "LC_CTYPE"}, probe["env"]  # bwrap's --chdir, PEP 538
    assert probe["env"]["DECLARED"] == "yes"
    assert box.isolation()["env"].startswith("declared only")


UNPRIVILEGED_DRIVER = """
import json, sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import test_bwrap_attacks as t
from pathlib import Path
spec = t.spec_for(Path(sys.argv[1]), t.ENV_PROBE, command=["/usr/bin/python3", "/home/agent/agent.py"])
lines, exit_info, box = t.run(spec)
print(json.dumps(dict(lines=lines, code=exit_info.exit_code, user=box.isolation()["user"])))
"""


def test_driver_environment_is_nowhere_inside_when_not_root(tmp_path, root, monkeypatch):
    """Not root, bwrap maps the caller into a user namespace: there its PID 1 is the agent's to read,
    so bwrap's own environment must be clean (measured: it held the driver's 36 variables)."""
    import subprocess
    import sys

    canary = "canary-" + uuid.uuid4().hex
    work = Path(tempfile.mkdtemp(prefix="mleray-unpriv-"))
    try:
        os.chown(work, 1000, 1000)
        env = {**os.environ, "MLERAY_TEST_CANARY_SECRET": canary, "HOME": str(work)}
        probe = subprocess.run(as_user(1000, [sys.executable, "-c", UNPRIVILEGED_DRIVER, str(work),
                                              str(Path(__file__).parent), str(Path(__file__).parents[2])]),
                               env=env, capture_output=True, text=True, timeout=60,
                               cwd=str(Path(__file__).parents[3]))
        if probe.returncode != 0 and "namespace" in probe.stdout + probe.stderr:
            pytest.skip(f"unprivileged user namespaces are off here: {probe.stderr.strip()[-200:]}")
        assert probe.returncode == 0, probe.stderr[-2000:]
        out = json.loads(probe.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert out["code"] == 0 and "user namespace" in out["user"], out
    seen = last_json(out["lines"])["seen"]
    assert not seen["1/environ"].startswith("ERR")  # readable here: what it holds is what counts
    assert [where for where, text in seen.items() if canary in text] == []


def test_agent_is_uid_1000_without_capabilities(tmp_path, root):
    spec = spec_for(tmp_path, ENV_PROBE.replace("print(json", "import time; time.sleep(1.5); print(json"))
    box = BwrapSandbox(spec, grace_period=1)
    box.start()
    try:
        time.sleep(0.8)
        host_uids = {psutil.Process(p).uids().real for p in box.agent_pids() if psutil.pid_exists(p)}
        lines = list(box.logs())
        assert box.wait(30).exit_code == 0, lines
    finally:
        box.kill()
    probe = last_json(lines)
    assert host_uids == {1000}  # uid 1000 on the host too, not a mapped root
    assert probe["uid"] == 1000 and probe["gid"] == 1000 and probe["groups"] == []
    assert probe["CapEff"] == "0000000000000000" and probe["CapBnd"] == "0000000000000000"
    assert probe["NoNewPrivs"] == "1"
    assert probe["seen"]["1/environ"].startswith("ERR")  # bwrap's root-owned PID 1 is not the agent's to read


# -- seccomp --------------------------------------------------------------------------------------

SYSCALLS = """
    import ctypes, errno, fcntl, json, os, termios
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def call(nr, *args):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # in a child: a clone that worked must not go on as a second agent
            rv = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
            e = ctypes.get_errno()
            if rv == 0 and nr == 56:
                os._exit(0)
            os.write(w, (errno.errorcode.get(e, str(e)) if rv < 0 else "OK").encode()); os._exit(0)
        os.close(w); out = os.read(r, 64).decode(); os.close(r); os.waitpid(pid, 0)
        return out or "OK"
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSTI, b"x"); tiocsti = "OK"
    except OSError as e:
        tiocsti = errno.errorcode[e.errno]
    child = os.fork()
    if child == 0:
        os._exit(7)
    forked = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 7 and "OK"
    print(json.dumps(dict(
        ptrace=call(101, 0, 0, 0, 0), unshare_user=call(272, 0x10000000),
        clone_newuser=call(56, 0x10000000 | 17, 0, 0, 0, 0),
        unshare_net=call(272, 0x40000000), keyctl=call(250, 0, 0xfffffffd, 0), bpf=call(321, 0, 0, 0),
        perf_event_open=call(298, 0, 0, 0, 0, 0), mount=call(165, 0, 0, 0, 0, 0), io_uring_setup=call(425, 1, 0),
        tiocsti=tiocsti, getpid=call(39), fork=forked,
        seccomp=open("/proc/self/status").read().split("Seccomp:")[1].split()[0])))
"""


def test_seccomp_refuses_kernel_attack_surface(tmp_path, bwrap_path):
    why = seccomp.supported()
    if why:
        pytest.skip(f"seccomp: {why}")
    lines, exit_info, box = run(spec_for(tmp_path, SYSCALLS))
    assert exit_info.exit_code == 0, lines
    got = last_json(lines)
    blocked = ("ptrace", "unshare_user", "clone_newuser", "unshare_net", "keyctl", "bpf", "perf_event_open", "mount",
               "io_uring_setup", "tiocsti")
    assert {k: got[k] for k in blocked} == dict.fromkeys(blocked, "EPERM"), got
    assert got["getpid"] == "OK" and got["fork"] == "OK" and got["seccomp"] == "2"
    assert box.isolation()["seccomp"].startswith("on")


# -- pids, memory ---------------------------------------------------------------------------------

FORK_BOMB = """
    import os, time
    print("bomb", flush=True)
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.02)
"""


def test_fork_bomb_stops_at_pids_max(tmp_path, cgroup_limits):
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # other tests' helpers, not this trial's
    box = BwrapSandbox(spec_for(tmp_path, FORK_BOMB, pids=64), grace_period=1)
    box.start()
    peak = 0
    try:
        need_limit(box.isolation(), "pids")
        assert box.isolation()["pids"].endswith("pids.max=64")
        end = time.monotonic() + 3
        while time.monotonic() < end:
            peak = max(peak, len(box.agent_pids()) + 2)  # + bwrap and its PID 1
            time.sleep(0.05)
        exit_info = box.wait(0)
        t0 = time.monotonic()
        lines = list(box.logs())
    finally:
        box.kill()
    assert lines[:1] == ["bomb"] and exit_info.timed_out
    assert 32 < peak <= 64, peak
    assert box.usage["pids_refused"] > 0, box.usage
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert time.monotonic() - t0 < 5 and left == [], left


HOG = """
    import os, time
    kids = []
    for i in range(4):
        pid = os.fork()
        if pid == 0:
            block = bytearray(400 * 2**20)
            for j in range(0, len(block), 4096):
                block[j] = 1
            time.sleep(2)
            os._exit(0)
        kids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids]
    print("children", codes, flush=True)
"""


def test_memory_hog_split_over_processes_stays_under_the_limit(tmp_path, cgroup_limits):
    lines, exit_info, box = run(spec_for(tmp_path, HOG, memory_gb=1.0))
    need_limit(box.isolation(), "memory")
    assert box.isolation()["memory"].endswith("1.0 GiB")
    codes = json.loads(next(line for line in lines if line.startswith("children")).split(" ", 1)[1])
    assert -9 in codes, codes  # at least one child was killed for memory: 4 x 400 MB cannot all fit
    assert exit_info.exit_code == 0 and exit_info.child_oom_killed and not exit_info.oom_killed, exit_info
    assert 0 < box.usage["memory_peak"] <= 2**30, box.usage  # the tree's peak, measured by the kernel
    assert box.usage["oom_kill"] >= 1


SHM_HOG = """
    print("filling", flush=True)
    with open("/dev/shm/fill", "wb") as f:  # tmpfs pages count toward the cgroup, not the address space
        for i in range(1024):
            f.write(b"x" * 2**20)
    print("survived")
"""


def test_main_process_killed_for_memory_is_oom_killed(tmp_path, cgroup_limits):
    lines, exit_info, box = run(spec_for(tmp_path, SHM_HOG, memory_gb=0.25, shm_gb=2.0))
    need_limit(box.isolation(), "memory")
    assert lines[:1] == ["filling"] and "survived" not in lines, lines
    assert exit_info.oom_killed and not exit_info.child_oom_killed and exit_info.exit_code == 137, exit_info
    assert "memory" in exit_info.reason and box.usage["memory_peak"] <= 2**28


# -- CPU ------------------------------------------------------------------------------------------

WIDEN = """
    import json, os, time
    before = sorted(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, range(os.cpu_count())); err = None
    except OSError as e:
        err = e.strerror
    after = sorted(os.sched_getaffinity(0))
    t0 = time.time(); kids = []
    for i in range(2):
        pid = os.fork()
        if pid == 0:
            while time.time() - t0 < 2:
                pass
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    used = os.times()
    print(json.dumps(dict(before=before, after=after, err=err, cpu_s=used.children_user + used.children_system)))
"""


def test_affinity_cannot_be_widened_past_the_cpuset(tmp_path, root):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU here: there is nothing to widen to")
    if cgroup.Layout().where("cpuset") is None:
        pytest.skip("the kernel offers no cgroup cpuset controller here")
    lines, exit_info, box = run(spec_for(tmp_path, WIDEN, cpus=1.0))
    got = last_json(lines)
    assert box.isolation()["cpu"].startswith("cpuset"), box.isolation()
    assert len(got["before"]) == 1 and got["after"] == got["before"], got


def test_fractional_cpus_get_a_quota(tmp_path, root):
    if cgroup.Layout().where("cpu") is None:
        pytest.skip("the kernel offers no cgroup cpu controller here")
    lines, exit_info, box = run(spec_for(tmp_path, WIDEN, cpus=0.5))
    got = last_json(lines)
    assert "quota 0.5" in box.isolation()["cpu"], box.isolation()
    assert got["cpu_s"] < 1.3, got  # 2 busy processes for 2 s: 1.0 CPU-s at 0.5 cpus (about 2 without)
    assert box.usage["cpu_throttled"] > 0, box.usage  # the kernel held the tree back at its quota


def test_concurrent_trials_get_different_cores(tmp_path, root):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU here: two trials cannot get cores of their own")
    if cgroup.Layout().where("cpuset") is None:
        pytest.skip("the kernel offers no cgroup cpuset controller here")
    boxes = [BwrapSandbox(spec_for(tmp_path, "import time; time.sleep(2)", name=f"c{i}", cpus=1.0)) for i in range(2)]
    try:
        for box in boxes:
            box.start()
        cores = [box.isolation()["cpu"] for box in boxes]
    finally:
        for box in boxes:
            box.kill()
    assert all(c.startswith("cpuset ") for c in cores) and cores[0] != cores[1], cores


# -- SIGTERM, grace -------------------------------------------------------------------------------

TRAPS = """
    import os, signal, time
    def on_term(sig, frame):
        open(f"/home/submission/term-{os.getpid()}", "w").write("handled")
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
    if os.fork() == 0:
        while True:
            time.sleep(0.1)
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
"""


def test_sigterm_reaches_every_agent_process_and_its_handler_runs(tmp_path, bwrap_path):
    spec = spec_for(tmp_path, TRAPS)
    box = BwrapSandbox(spec, grace_period=10)
    box.start()
    try:
        t0 = time.monotonic()
        exit_info = box.wait(2)
        elapsed = time.monotonic() - t0
        lines = list(box.logs())
    finally:
        box.kill()
    assert exit_info.timed_out and lines[:1] == ["ready"]
    handled = sorted(p.read_text() for p in Path(spec.submission_dir).glob("term-*"))
    assert handled == ["handled", "handled"]  # the agent and its child: bwrap's own processes were not the target
    assert elapsed < 2 + 5, elapsed  # it ended when the handlers did, not at the end of the grace


IGNORES = """
    import os, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for i in range(3):
        if os.fork() == 0:
            break
    print("ready", os.getpid(), flush=True)
    while True:
        time.sleep(0.1)
"""


def test_sigterm_ignoring_tree_is_killed_after_the_grace(tmp_path, bwrap_path):
    box = BwrapSandbox(spec_for(tmp_path, IGNORES), grace_period=1.5)
    box.start()
    try:
        time.sleep(1)
        pids = box.agent_pids()
        t0 = time.monotonic()
        exit_info = box.wait(0.5)
        elapsed = time.monotonic() - t0
    finally:
        box.kill()
    assert exit_info.timed_out and len(pids) >= 4
    assert 0.5 + 1.5 <= elapsed < 0.5 + 1.5 + 3, elapsed
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_bwrap_killed_from_outside_is_not_the_agents_exit(tmp_path, bwrap_path):
    import signal

    box = BwrapSandbox(spec_for(tmp_path, "import time; print('up', flush=True); time.sleep(60)"), grace_period=1)
    box.start()
    try:
        assert next(iter(box.logs())) == "up"
        os.kill(box.proc.pid, signal.SIGKILL)
        exit_info = box.wait(10)
    finally:
        box.kill()
    assert exit_info.killed_externally and not exit_info.timed_out and "from outside" in exit_info.reason


def test_cgroup_is_removed_after_wait_and_after_kill(tmp_path, cgroup_limits):
    _, _, box = run(spec_for(tmp_path, "print('hi')", name="a"))
    assert box.cgroup is None
    live = BwrapSandbox(spec_for(tmp_path, "import time; time.sleep(60)", name="b"))
    live.start()
    assert live.cgroup is not None
    folders = list(live.cgroup.dirs.values())
    assert folders and all(f.is_dir() for f in folders)
    live.kill()
    assert not any(f.exists() for f in folders) and live.cgroup is None


PARENT_DRIVER = """
import json, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import test_bwrap_attacks as t
from pathlib import Path
spec = t.spec_for(Path(sys.argv[1]), "import os, time\\nos.fork()\\ntime.sleep(60)", sweep_id=sys.argv[4])
box = t.BwrapSandbox(spec)
box.start()
time.sleep(1)
print(json.dumps(dict(pids=[*box.agent_pids(), box.child_pid, box.proc.pid],
                      dirs=[str(d) for d in box.cgroup.dirs.values()])), flush=True)
time.sleep(60)
"""


def test_a_killed_driver_takes_its_sandbox_along_and_reap_removes_the_cgroup(tmp_path, cgroup_limits):
    import subprocess
    import sys

    sweep_id = "dies-" + uuid.uuid4().hex[:6]
    here = Path(__file__)
    driver = subprocess.Popen([sys.executable, "-c", PARENT_DRIVER, str(tmp_path), str(here.parent),
                               str(here.parents[2]), sweep_id], stdout=subprocess.PIPE, text=True)
    try:
        started = json.loads(driver.stdout.readline())
    finally:
        driver.kill()
        driver.wait()
    assert len(started["pids"]) >= 4 and started["dirs"]
    time.sleep(1)
    alive = [p for p in started["pids"] if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []  # --die-with-parent: bwrap and everything in its namespace went with the driver
    assert all(Path(d).is_dir() for d in started["dirs"])  # what a crashed driver leaves: empty cgroups
    assert BwrapSandbox.reap("another-sweep") == 0 and all(Path(d).is_dir() for d in started["dirs"])
    assert BwrapSandbox.reap(sweep_id) == 1 and not any(Path(d).exists() for d in started["dirs"])


# -- network --------------------------------------------------------------------------------------

@pytest.fixture
def egress(root):
    why = network.problem()
    require(not why or "not installed" not in why, f"egress isolation needs its tools: {why}")
    if why:
        pytest.skip(f"egress isolation: {why}")


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"host secret")

    def log_message(self, *args):
        pass


def _host_ip() -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet leaves for a UDP connect
        return probe.getsockname()[0]
    finally:
        probe.close()


NET_PROBE = """
    import json, socket, struct, sys
    def tcp(host, port):
        try:
            socket.create_connection((host, port), timeout=2).close(); return "CONNECTED"
        except OSError as e:
            return type(e).__name__
    def dns():
        query = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\\x07example\\x03com\\x00" + struct.pack(">HH", 1, 1)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.settimeout(3)
        udp.sendto(query, ("10.0.2.3", 53))
        try:
            return "ANSWERED" if udp.recv(512)[:2] == query[:2] else "other"
        except OSError as e:
            return type(e).__name__
    lo, anyport, host_ip = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    print(json.dumps({"127.0.0.1:lo": tcp("127.0.0.1", lo), "10.0.2.2:lo": tcp("10.0.2.2", lo),
                      "host_ip:any": tcp(host_ip, anyport), "172.17.0.1:any": tcp("172.17.0.1", anyport),
                      "tap": "10.0.2.100" in open("/proc/net/fib_trie").read(), "dns": dns()}))
"""


def test_egress_trial_cannot_reach_host_services(tmp_path, egress):
    servers = [http.server.ThreadingHTTPServer((addr, 0), _Quiet) for addr in ("127.0.0.1", "0.0.0.0")]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    lo_port, any_port = (s.server_address[1] for s in servers)
    host_ip = _host_ip()
    try:
        socket.create_connection((host_ip, any_port), timeout=2).close()  # the host itself reaches them
        spec = spec_for(tmp_path, NET_PROBE, network=True,
                        command=["python3", "/home/agent/agent.py", str(lo_port), str(any_port), host_ip])
        lines, exit_info, box = run(spec)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert exit_info.exit_code == 0, lines
    got = last_json(lines)
    assert got["tap"] is True  # slirp4netns did configure the trial's own interface
    assert "CONNECTED" not in [got[k] for k in ("127.0.0.1:lo", "10.0.2.2:lo", "host_ip:any", "172.17.0.1:any")], got
    assert box.isolation()["network"] == network.DESCRIPTION
    if network.nameservers():  # DNS still goes through slirp's forwarder to the host's resolvers
        assert got["dns"] == "ANSWERED", got
    import subprocess

    listed = [rule for rule in network.rules() if "REJECT" in rule]  # other nodes, the metadata service
    assert len(listed) == 1 + len(network.BLOCKED_CIDRS)
    assert all(subprocess.run(["iptables", "-w", "-C", *rule]).returncode == 0 for rule in listed)


SAME_PORT = """
    import socket, sys, time
    token = sys.argv[1]
    server = socket.socket()
    server.bind(("127.0.0.1", 47011)); server.listen()
    print("bound", flush=True)
    client = socket.create_connection(("127.0.0.1", 47011), timeout=2)
    conn, _ = server.accept(); conn.sendall(token.encode()); conn.close()
    print("read", client.recv(100).decode(), flush=True)
    time.sleep(3)  # hold the port while the other trial binds it too
"""


def test_two_egress_trials_bind_the_same_port_at_once(tmp_path, egress):
    boxes, outputs = [], {}
    for token in ("alpha", "beta"):
        spec = spec_for(tmp_path, SAME_PORT, name=token, network=True,
                        command=["python3", "/home/agent/agent.py", token])
        box = BwrapSandbox(spec, grace_period=1)
        box.start()
        boxes.append((token, box))
    try:
        for token, box in boxes:
            outputs[token] = (list(box.logs()), box.wait(30))
    finally:
        for _, box in boxes:
            box.kill()
    for token, (lines, exit_info) in outputs.items():
        assert lines == ["bound", f"read {token}"] and exit_info.exit_code == 0, (token, lines)


def test_isolation_and_limits_report_name_what_held(tmp_path, bwrap_path):
    _, exit_info, box = run(spec_for(tmp_path, "print('hi')", pids=100, memory_gb=0.5, cpus=1.0))
    held = box.isolation()
    assert {"env", "user", "session", "seccomp", "pids", "memory", "cpu", "network", "packages"} <= set(held)
    assert held["network"] == "none" and held["user"].startswith("uid 1000")
    if os.geteuid() == 0 and cgroup.Layout().where("pids"):
        assert held["pids"].endswith("pids.max=100") and held["memory"].endswith("0.5 GiB")
    from mleray.sandbox import runtime

    assert held["packages"].startswith("agent runtime" if runtime.runtime_root() else "not enforced")
    report = BwrapSandbox.limits_report()
    assert report.startswith("bwrap on this machine:") and all(f"{k}:" in report for k in ("pids", "memory", "cpu"))
