"""The bubblewrap backend: for machines without Docker.

Runs the agent with the host's Python (read-only) under bwrap: every namespace unshared (network
too, unless the agent needs egress), uid 1000, all capabilities dropped, only the public data, the
instructions and the trial's own folders mounted. Resources are enforced with what an unprivileged
sandbox has: CPU affinity (ceil(cpus) cores), an address-space limit (memory_gb), a file-size limit,
and the time limit from outside (SIGTERM to every process of the sandbox, a grace period, SIGKILL).
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import psutil

from mleray.sandbox import validation
from mleray.sandbox.base import ExitInfo, NotStarted, Sandbox, SandboxError, SandboxSpec

UID = 1000
_PYTHON_NAMES = {"python", "python3", "python3.11"}


def _python_roots() -> List[str]:
    """Host folders the sandbox needs (read-only) to run this interpreter and its packages."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    return sorted(r for r in roots if not r.startswith("/usr"))


class BwrapSandbox(Sandbox):
    """One agent run under bwrap. See the module's docstring."""

    def __init__(self, spec: SandboxSpec, grace_period: float = 10.0):
        super().__init__(spec, grace_period)
        self.proc: subprocess.Popen | None = None

    @classmethod
    def problem(cls, agents: Sequence = ()) -> Optional[str]:
        """None when `bwrap` is on PATH (it runs any agent, with the host's Python)."""
        if shutil.which("bwrap") is None:
            return "bubblewrap is not installed (`bwrap` is not on PATH; apt-get install -y bubblewrap)"
        return None

    def command_line(self) -> List[str]:
        """The full bwrap invocation (a pure function of the spec; tests inspect it)."""
        s = self.spec
        args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--uid", str(UID), "--gid", str(UID), "--hostname", "sandbox"]
        if s.network:
            args.append("--share-net")
        args += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                 "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
                 "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
                 "--ro-bind-try", "/etc/ssl", "/etc/ssl", "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf",
                 "--ro-bind-try", "/etc/hosts", "/etc/hosts",
                 "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/home"]
        for root in _python_roots():
            args += ["--ro-bind", root, root]
        args += ["--ro-bind", str(s.data_dir), "/home/data", "--ro-bind", str(s.instructions), "/home/instructions.txt",
                 "--bind", str(s.submission_dir), "/home/submission", "--bind", str(s.code_dir), "/home/code",
                 "--bind", str(s.logs_dir), "/home/logs"]
        if s.description:
            args += ["--ro-bind", str(s.description), "/home/data/description.md"]
        if s.agent_code:
            args += ["--ro-bind", str(s.agent_code), "/home/agent"]
        for host, inside, mode in validation.inside_mounts(s):
            args += ["--ro-bind" if mode == "ro" else "--bind", str(host), inside]
        env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "HOME": "/home",
               "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(self._cores()),
               "OPENBLAS_NUM_THREADS": str(self._cores()), "MKL_NUM_THREADS": str(self._cores()),
               **s.env, **validation.inside_env(s)}
        args.append("--clearenv")
        for key, value in env.items():
            args += ["--setenv", key, value]
        args += ["--chdir", "/home", "--"]
        return args + self._command()

    def _command(self) -> List[str]:
        cmd = list(self.spec.command)
        if cmd and cmd[0] in _PYTHON_NAMES:
            cmd[0] = sys.executable  # the host interpreter, mounted read-only, has numpy/pandas/sklearn
        return validation.wrap_command(cmd)

    def _cores(self) -> int:
        return max(1, math.ceil(self.spec.cpus))

    def _limits(self) -> None:
        """Runs in the child before exec: address space and CPU affinity."""
        memory = int(self.spec.memory_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[-self._cores():])

    def start(self) -> None:
        problem = self.problem()
        if problem:
            raise SandboxError(problem)
        for folder in (self.spec.submission_dir, self.spec.code_dir, self.spec.logs_dir):
            Path(folder).mkdir(parents=True, exist_ok=True)
        try:
            self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, preexec_fn=self._limits, start_new_session=True)
        except OSError as err:
            raise SandboxError(f"cannot start bwrap: {err}") from err

    def logs(self) -> Iterator[str]:
        if self.proc is None:
            raise NotStarted("logs() before start()")
        stdout = self.proc.stdout
        assert stdout is not None  # started with stdout=PIPE
        for raw in iter(stdout.readline, b""):
            yield raw.decode("utf-8", errors="replace").rstrip("\r\n")

    def _signal_all(self, sig: int) -> None:
        """Signals bwrap's descendants first (so agents see SIGTERM), then bwrap itself."""
        if self.proc is None:  # never started: nothing to signal
            return
        try:
            root = psutil.Process(self.proc.pid)
            procs = root.children(recursive=True) + [root]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass

    def wait(self, timeout: float) -> ExitInfo:
        if self.proc is None:
            raise NotStarted("wait() before start()")
        try:
            code = self.proc.wait(timeout=max(0.0, timeout))
            return ExitInfo(exit_code=code, reason=f"exit {code}" if code else "")
        except subprocess.TimeoutExpired:
            pass
        self._signal_all(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.grace_period)
        except subprocess.TimeoutExpired:
            self._signal_all(signal.SIGKILL)
            self.proc.wait()
        return ExitInfo(exit_code=None, timed_out=True, reason=f"killed at the time limit ({timeout:.0f} s)")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self._signal_all(signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
