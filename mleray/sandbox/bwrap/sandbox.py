"""The bubblewrap backend: for machines without Docker.

Runs the agent under bwrap with only the public data, the instructions and the trial's own folders
mounted, on the agent runtime (`mleray.sandbox.runtime`: a Debian root file system with python3, numpy,
pandas, scikit-learn) when one is built, else on the host's /usr and Python (read-only; recorded as
"packages: not enforced"). What it enforces, each measured at start and named in `isolation()`:

- env: bwrap starts with PATH only and the agent with the declared variables only (`launch.py`);
- user: uid 1000 without capabilities (`launch.py`); its own session, dies with its parent;
- seccomp: a BPF filter against ptrace, mount, new namespaces, keyrings, bpf, perf, io_uring, TIOCSTI
  (`seccomp.py`);
- pids, memory, cpu: one cgroup per trial for the whole process tree (`cgroup.py`): pids.max, the memory
  limit (OOM kills reported: the main process as oom_killed, a child as child_oom_killed), a cpuset of
  ceil(cpus) cores the agent cannot widen, a quota for fractional cpus;
- network: none, or for egress agents a namespace of their own through slirp4netns with the host
  unreachable (`network.py`);
- the time limit: SIGTERM to the agent's processes (not bwrap's), the grace period, then SIGKILL of the
  whole tree.
What a machine cannot enforce (not root, a missing controller, no slirp4netns) reads "not enforced: <why>";
`limits_report()` says it once for a sweep.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Dict, Iterator, List, Optional, Sequence

import psutil

from mleray.llm import inside as llm_inside
from mleray.sandbox import disk, runtime, validation
from mleray.sandbox.base import LINE_CAP_BYTES, ExitInfo, NotStarted, Sandbox, SandboxError, SandboxSpec, cut_line
from mleray.sandbox.bwrap import cgroup, launch, network, seccomp

UID = launch.AGENT_UID
_PYTHON_NAMES = {"python", "python3", "python3.11"}
_ETC = Path(__file__).parent / "etc"
_HOST_ETC = ("/etc/alternatives", "/etc/ssl", "/etc/ld.so.cache", "/etc/localtime")
NO_RUNTIME = "not enforced: host /usr and Python visible (no agent runtime; run `mleray images build`)"


def _python_roots() -> List[str]:
    """Host folders the sandbox needs (read-only) to run this interpreter and its packages."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    return sorted(r for r in roots if not r.startswith("/usr"))


def _runtime_root() -> Optional[Path]:
    try:
        return runtime.runtime_root()
    except OSError:
        return None


def _make_writable(folder: Path) -> None:
    """The agent (uid 1000 on the host, when bwrap runs as root) must write its folders."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    for top, dirs, files in os.walk(folder):
        for name in [top, *(os.path.join(top, d) for d in dirs), *(os.path.join(top, f) for f in files)]:
            os.chown(name, UID, UID, follow_symlinks=False)


def _needs_its_image(agent) -> bool:
    """Whether the agent's program or script (the command's first two words, where absolute) is a path
    neither its code folder nor the runtime (the host, without one) provides."""
    root = _runtime_root() or Path("/")
    for word in list(getattr(agent, "command", []) or [])[:2]:
        if not word.startswith("/"):
            continue
        if word.startswith("/home/agent/"):
            if not getattr(agent, "code", None):
                return True
        elif not word.startswith("/home/") and not (root / word.lstrip("/")).exists():
            return True
    return False


class BwrapSandbox(Sandbox):
    """One agent run under bwrap. See the module's docstring."""

    def __init__(self, spec: SandboxSpec, grace_period: float = 10.0):
        super().__init__(spec, grace_period)
        self.proc: subprocess.Popen | None = None
        self.child_pid: Optional[int] = None  # bwrap's PID 1 inside the sandbox (its reaper), host pid
        self.cgroup: Optional[cgroup.TrialCgroup] = None
        self.usage: Dict[str, int] = {}  # the cgroup's events at the end (oom_kill, memory_peak, ...)
        self._slirp: Optional[network.Slirp] = None
        self._slirp_log: Optional[IO[bytes]] = None
        self._isolation: Dict[str, str] = {}
        self._killed = False
        self._lock = threading.Lock()
        self._runtime: Optional[Path] = None
        self._runtime_known = False

    # -- the backend as a whole ------------------------------------------------------------------

    @classmethod
    def problem(cls, agents: Sequence = ()) -> Optional[str]:
        """None when bwrap can run agents here (with the agent runtime when built, else the host's Python).
        bwrap runs an agent's command on the runtime with its `code` folder at /home/agent; an agent whose
        command starts a program only its image holds (aide's /opt/aide, an MLE-bench agent's
        /home/agent/start.sh without a code folder) is named, with sandbox=docker as the fix."""
        image_only = [a.name for a in agents if _needs_its_image(a)]
        if image_only:
            return (f"agent(s) {', '.join(image_only)} start a program only their image holds "
                    "(bwrap runs an agent's `code` folder on its runtime): use sandbox=docker")
        if shutil.which("bwrap") is None:
            return "bubblewrap is not installed (`bwrap` is not on PATH; apt-get install -y bubblewrap)"
        if launch.is_root():
            root = _runtime_root()
            setpriv = (root / launch.SETPRIV.lstrip("/")) if root else Path(launch.SETPRIV)
            if not setpriv.exists():
                return f"{setpriv} is missing (util-linux): bwrap as root drops to uid {UID} with it"
        return None

    @classmethod
    def machine_isolation(cls, network_wanted: bool = True) -> Dict[str, str]:
        """What a trial started here would hold, by the names isolation() uses (probed: a throwaway cgroup)."""
        root = launch.is_root()
        out = {"env": "declared only", "user": launch.user_description(root),
               "session": "own session, dies with its parent"}
        why = seccomp.supported()
        out["seccomp"] = f"not enforced: {why}" if why else "on"
        limits = _limits_probe(root)
        for key in ("pids", "memory", "cpu"):
            out[key] = limits[key]
        if network_wanted:
            why = network.problem()
            out["network"] = (f"egress: not enforced: host network shared ({why})" if why
                              else f"egress: {network.DESCRIPTION}")
        out["packages"] = f"agent runtime {_runtime_root()}" if _runtime_root() else NO_RUNTIME
        return out

    @classmethod
    def limits_report(cls, network_wanted: bool = True) -> str:
        """One line for the sweep's start: what bwrap enforces on this machine and what it does not."""
        found = cls.machine_isolation(network_wanted)
        return "bwrap on this machine: " + "; ".join(f"{k}: {v}" for k, v in found.items())

    @classmethod
    def reap(cls, sweep_id: str) -> int:
        """Removes the cgroups (and their processes) that `sweep_id`'s trials left under this process's
        cgroups; bwrap's own processes die with their parent. Returns how many trials it cleaned."""
        try:
            folders = cgroup.leftovers(sweep_id)
        except OSError:
            return 0
        cgroup.remove(folders)
        return len({f.name for f in folders})

    # -- the command line ------------------------------------------------------------------------

    def _cores(self) -> int:
        return max(1, math.ceil(self.spec.cpus))

    def _rt(self) -> Optional[Path]:
        """The agent runtime this sandbox runs on (decided once), or None for the host layout."""
        if not self._runtime_known:
            self._runtime, self._runtime_known = _runtime_root(), True
        return self._runtime

    def _egress_problem(self) -> Optional[str]:
        return network.problem() if self.spec.network else None

    def command_line(self) -> List[str]:
        """The bwrap invocation (a function of the spec and of what this machine offers; tests inspect
        it). start() adds the per-launch descriptors (--info-fd, --seccomp, --block-fd) after `bwrap`."""
        s = self.spec
        root = launch.is_root()
        own_net = not s.network or self._egress_problem() is None
        rt = self._rt()
        args = ["bwrap", "--die-with-parent", "--new-session", *launch.namespace_args(root, own_net)]
        if rt is not None:
            args += runtime.bwrap_args(rt)
        else:
            args += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                     "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
                     "--perms", "0755", "--dir", "/etc"]
            for path in _HOST_ETC:
                args += ["--ro-bind-try", path, path]
        args += ["--ro-bind", str(_ETC / "hosts"), "/etc/hosts"]
        if s.network and own_net:  # slirp's DNS forwarder in its own namespace
            args += ["--ro-bind", str(network.RESOLV_CONF), "/etc/resolv.conf"]
        elif s.network:  # the host's network, shared: its resolvers
            args += ["--ro-bind-try", str(network.HOST_RESOLV), "/etc/resolv.conf"]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777"]
        if s.shm_gb > 0:
            args += ["--size", str(int(s.shm_gb * 1024**3))]
        args += ["--tmpfs", "/dev/shm", "--perms", "0755", "--dir", "/home"]
        if rt is None:  # after the sandbox's own /tmp and /dev: a venv under /tmp stays visible
            made = {"/tmp", "/dev", "/home"}
            for python_root in _python_roots():
                for parent in reversed(Path(python_root).parents[:-1]):  # bwrap makes them 0700 root
                    if str(parent) not in made:
                        args += ["--perms", "0755", "--dir", str(parent)]
                        made.add(str(parent))
                args += ["--ro-bind", python_root, python_root]
        args += ["--ro-bind", str(s.data_dir), "/home/data", "--ro-bind", str(s.instructions), "/home/instructions.txt",
                 "--bind", str(s.submission_dir), "/home/submission", "--bind", str(s.code_dir), "/home/code",
                 "--bind", str(s.logs_dir), "/home/logs"]
        if s.description:
            args += ["--ro-bind", str(s.description), "/home/data/description.md"]
        if s.instructions_obfuscated:
            args += ["--ro-bind", str(s.instructions_obfuscated), "/home/instructions_obfuscated.txt"]
        if s.agent_code:
            args += ["--ro-bind", str(s.agent_code), "/home/agent"]
        for host, inside, mode in validation.inside_mounts(s) + llm_inside.inside_mounts(s):
            args += ["--ro-bind" if mode == "ro" else "--bind", str(host), inside]
        args += launch.env_args(self._env())
        args += ["--chdir", "/home", "--"]
        return args + launch.drop_prefix(root) + self._command(rt)

    def _env(self) -> Dict[str, str]:
        """Every variable the agent gets: these, the agent's declared ones and the validation shim's."""
        python_dir = os.path.dirname(runtime.PYTHON if self._rt() else sys.executable)
        path = ":".join(dict.fromkeys([python_dir, "/usr/local/bin", "/usr/bin", "/bin"]))
        cores = str(self._cores())
        return {"PATH": path, "HOME": "/home", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": cores,
                "OPENBLAS_NUM_THREADS": cores, "MKL_NUM_THREADS": cores, **self.spec.env,
                **validation.inside_env(self.spec), **llm_inside.inside_env(self.spec)}

    def _command(self, rt: Optional[Path]) -> List[str]:
        cmd = list(self.spec.command)
        if cmd and cmd[0] in _PYTHON_NAMES:
            cmd[0] = runtime.PYTHON if rt else sys.executable  # numpy/pandas/sklearn: the runtime's, or the host's
        return validation.wrap_command(llm_inside.wrap(self.spec, cmd))

    # -- starting --------------------------------------------------------------------------------

    def _make_cgroup(self) -> None:
        s = self.spec
        if not launch.is_root():
            self._isolation.update(dict.fromkeys(("pids", "memory", "cpu"), "not enforced: not root (no cgroups)"))
            return
        quota = s.cpus if s.cpus < self._cores() else None
        try:
            self.cgroup = cgroup.TrialCgroup(
                cgroup.cgroup_name(s.sweep_id or s.sweep, s.trial_id, s.attempt), pids=s.pids,
                memory_bytes=int(s.memory_gb * 1024**3), cores=self._cores(), quota=quota).create()
        except cgroup.CgroupError as err:
            self._isolation.update(dict.fromkeys(("pids", "memory", "cpu"), f"not enforced: {err}"))
            return
        self._isolation.update(_describe(self.cgroup))

    def _preexec(self):
        """Runs in the child before bwrap is exec'd: joins the cgroup; a per-process address-space limit
        (a single huge allocation fails with MemoryError; not with GPUs, whose drivers reserve address
        space); CPU affinity where no cpuset holds (the agent could widen that)."""
        join = self.cgroup.preexec() if self.cgroup else None
        memory = int(self.spec.memory_gb * 1024**3)
        address_limit = not self.spec.gpu_ids
        cpuset = bool(self.cgroup and self.cgroup.cpus)
        cores = self._cores()

        def child() -> None:
            if join:
                join()
            if address_limit:
                resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            if not cpuset:
                cpus = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(0, cpus[-cores:])
        return child

    def start(self) -> None:
        problem = self.problem()
        if problem:
            raise SandboxError(problem)
        s = self.spec
        for attr in ("data_dir", "instructions"):
            if not Path(getattr(s, attr)).exists():
                raise SandboxError(f"trial {s.trial_id}: {attr} {getattr(s, attr)} does not exist")
        try:
            for folder in (s.submission_dir, s.code_dir, s.logs_dir):
                _make_writable(Path(folder))
            argv = self.command_line()
        except (OSError, ValueError) as err:
            raise SandboxError(f"trial {s.trial_id}: cannot prepare the sandbox: {err}") from err
        self._make_cgroup()
        try:
            self._launch(argv)
        except BaseException:
            self.kill()
            raise

    def _launch(self, argv: List[str]) -> None:
        s = self.spec
        egress_problem = self._egress_problem()
        slirp = s.network and egress_problem is None
        if slirp:
            try:
                network.install_firewall()
            except network.NetworkError as err:
                raise SandboxError(f"trial {s.trial_id}: egress without the host firewall refused: {err}") from err
        info_r, info_w = os.pipe()
        child_fds = [info_w]
        extra = ["--info-fd", str(info_w)]
        why = seccomp.supported()
        if why is None:
            filter_fd = seccomp.program_fd(seccomp.program())
            child_fds.append(filter_fd)
            extra += ["--seccomp", str(filter_fd)]
        block_w = -1
        if slirp:
            block_r, block_w = os.pipe()
            child_fds.append(block_r)
            extra += ["--block-fd", str(block_r)]
        try:
            self.proc = subprocess.Popen(argv[:1] + extra + argv[1:], env=launch.launch_env(), pass_fds=child_fds,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         preexec_fn=self._preexec(), start_new_session=True)
        except OSError as err:
            for fd in (info_r, block_w):
                if fd >= 0:
                    os.close(fd)
            raise SandboxError(f"cannot start bwrap: {err}") from err
        finally:
            for fd in child_fds:
                os.close(fd)
        try:
            self.child_pid = int(launch.read_info(info_r)["child-pid"])
        except (TimeoutError, KeyError, ValueError) as err:
            raise SandboxError(f"bwrap did not start the sandbox: {self._early_output()}") from err
        finally:
            os.close(info_r)
        if slirp:
            try:
                self._slirp_log = tempfile.TemporaryFile(prefix="mleray-slirp-")
                self._slirp = network.Slirp(self.child_pid, self.proc, self._slirp_log)
                os.write(block_w, b"1")  # the namespace is connected: the agent may start
            except (network.NetworkError, OSError) as err:
                raise SandboxError(f"trial {s.trial_id}: {err}") from err
            finally:
                os.close(block_w)
        root = launch.is_root()
        self._isolation.update({
            "env": f"declared only ({len(self._env())} variables)",
            "user": launch.user_description(root),
            "session": "own session, dies with its parent",
            "seccomp": f"on: {seccomp.SUMMARY} refused" if why is None else f"not enforced: {why}",
            "network": ("none" if not s.network else network.DESCRIPTION if slirp
                        else f"not enforced: host network shared ({egress_problem})"),
            "packages": f"agent runtime {self._rt()} (no host /usr, no host Python)" if self._rt() else NO_RUNTIME,
        })

    def _early_output(self) -> str:
        """What bwrap said before it failed (it exited; its stdout is the agent's log pipe)."""
        assert self.proc is not None and self.proc.stdout is not None
        try:
            self.proc.wait(timeout=5)
            return self.proc.stdout.read(2000).decode(errors="replace").strip() or f"exit {self.proc.returncode}"
        except (subprocess.TimeoutExpired, OSError):
            return "no answer in 5 s"

    # -- running ---------------------------------------------------------------------------------

    def written_outside(self) -> int:
        """Bytes in the sandbox's own tmpfs mounts (its root, /tmp, /dev, /dev/shm), through bwrap's PID 1."""
        return disk.tmpfs_bytes(self.child_pid) if self.child_pid else 0

    def isolation(self) -> Dict[str, str]:
        order = ("env", "user", "session", "seccomp", "pids", "memory", "cpu", "network", "packages")
        return dict(sorted(self._isolation.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))

    def logs(self) -> Iterator[str]:
        if self.proc is None:
            raise NotStarted("logs() before start()")
        stdout = self.proc.stdout
        assert stdout is not None  # started with stdout=PIPE
        for raw in iter(lambda: stdout.readline(LINE_CAP_BYTES + 1), b""):
            if len(raw) > LINE_CAP_BYTES and not raw.endswith(b"\n"):  # never hold an over-long line whole
                dropped = 0
                while (more := stdout.readline(LINE_CAP_BYTES)):
                    dropped += len(more.rstrip(b"\r\n"))
                    if more.endswith(b"\n"):
                        break
                yield cut_line(raw, dropped)
                continue
            yield raw.decode("utf-8", errors="replace").rstrip("\r\n")

    def agent_pids(self) -> List[int]:
        """Host pids of the agent's processes: the sandbox's, less bwrap's own two."""
        bwraps = {self.proc.pid if self.proc else -1, self.child_pid or -1}
        if self.cgroup is not None and self.cgroup.dirs:
            return [p for p in self.cgroup.members() if p not in bwraps]
        if self.child_pid is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.child_pid).children(recursive=True)]
        except psutil.Error:
            return []

    def _terminate(self) -> None:
        """SIGTERM to the agent's processes: bwrap dies at once on SIGTERM (the agent would get no grace),
        and its PID 1 ignores it."""
        for pid in self.agent_pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _kill_tree(self) -> None:
        """SIGKILL of everything: bwrap's PID 1 (its namespace dies with it), the cgroup, bwrap."""
        for pid in (self.child_pid, self.proc.pid if self.proc else None):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def wait(self, timeout: float) -> ExitInfo:
        if self.proc is None:
            raise NotStarted("wait() before start()")
        try:
            code = self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            info = self._exit_info(code)
            self._cleanup()
            return info
        self._terminate()
        try:
            self.proc.wait(timeout=self.grace_period)
        except subprocess.TimeoutExpired:
            self._kill_tree()
            self.proc.wait()
        self._cleanup()
        return ExitInfo(exit_code=None, timed_out=True, reason=f"killed at the time limit ({timeout:.0f} s)")

    def _exit_info(self, code: int) -> ExitInfo:
        """How the run ended: bwrap passes on the agent's exit status (128 + N for signal N)."""
        group = self.cgroup  # kill() from another thread may remove it meanwhile
        events = group.events() if group is not None else dict(self.usage)
        self.usage = events
        killed_for_memory = events.get("oom_kill", 0) > 0
        if code < 0 and not self._killed:
            return ExitInfo(exit_code=code, killed_externally=True,
                            reason=f"bwrap was killed from outside (signal {-code})")
        if killed_for_memory and code == 128 + signal.SIGKILL:
            return ExitInfo(exit_code=code, oom_killed=True,
                            reason=f"killed for memory: over the {self.spec.memory_gb:g} GiB limit")
        reason = f"exit {code}" if code else ""
        if killed_for_memory:
            note = f"{events['oom_kill']} child process(es) killed for memory (limit {self.spec.memory_gb:g} GiB)"
            reason = f"{reason}; {note}" if reason else note
        return ExitInfo(exit_code=code, child_oom_killed=killed_for_memory, reason=reason)

    def _cleanup(self) -> None:
        """Ends slirp4netns and removes the cgroup (after keeping its events). Idempotent, never raises."""
        with self._lock:
            if self.cgroup is not None:
                if not self.usage:
                    self.usage = self.cgroup.events()
                self.cgroup.destroy()
                self.cgroup = None
            if self._slirp is not None:
                self._slirp.close()
                self._slirp = None
            if self._slirp_log is not None:
                self._slirp_log.close()
                self._slirp_log = None

    def kill(self) -> None:
        self._killed = True
        try:
            if self.proc and self.proc.poll() is None:
                self._kill_tree()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            self._cleanup()
        except Exception:  # kill() never raises
            pass


def _describe(group: cgroup.TrialCgroup) -> Dict[str, str]:
    """isolation()'s pids, memory and cpu entries from what the cgroup read back."""
    out = {}
    for key in ("pids", "memory", "cpu"):
        out[key] = group.held.get(key) or group.missing.get(key) or "not enforced: not asked for"
    if "cpu" in group.held:
        gaps = [f"{name} not enforced: {why}" for name, why in group.missing.items() if name in ("cpuset", "quota")]
        if gaps:
            out["cpu"] += " (" + "; ".join(gaps) + ")"
        if "cpuset" not in group.held["cpu"]:
            out["cpu"] += "; affinity only, the agent can widen it"
    return out


def _limits_probe(root: bool) -> Dict[str, str]:
    """pids, memory and cpu as a throwaway cgroup here holds them (the kind of limit, not the probe's numbers)."""
    if not root:
        return dict.fromkeys(("pids", "memory", "cpu"), "not enforced: not root (no cgroups)")
    try:
        probe = cgroup.TrialCgroup(cgroup.cgroup_name("limits-probe", "probe", 0), pids=64, memory_bytes=2**30,
                                   cores=1, quota=0.5).create()
    except cgroup.CgroupError as err:
        return dict.fromkeys(("pids", "memory", "cpu"), f"not enforced: {err}")
    try:
        found = _describe(probe)
        version = {c: f"cgroup {probe.layout.where(c)}" for c in cgroup.CONTROLLERS}
        cpu = probe.held.get("cpu", "")
    finally:
        probe.destroy()
    if "pids" in probe.held:
        found["pids"] = f"{version['pids']} pids.max"
    if "memory" in probe.held:
        found["memory"] = f"{version['memory']} memory limit"
    if cpu:
        parts = [f"cpuset of ceil(cpus) cores ({version['cpuset']})" if "cpuset" in cpu
                 else f"cpuset not enforced: {probe.missing.get('cpuset', '?')}",
                 f"quota for fractional cpus ({version['cpu']})" if "quota" in cpu
                 else f"quota not enforced: {probe.missing.get('quota', '?')}"]
        found["cpu"] = " + ".join(parts)
    return found
