"""The sandbox interface every backend implements (see `mleray.sandbox.registry` for the backends).

A sandbox runs one agent command with MLE-bench's layout inside:
  /home/data (read-only public data with description.md), /home/instructions.txt,
  /home/submission, /home/code, /home/logs (writable, bound to the trial's folder),
  /home/agent (the agent's code, read-only, where the backend supplies it),
  env COMPETITION_ID. The private answers are never mounted.
It enforces the trial's resources and time limit; Ray's numbers are only bookkeeping.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Sequence

if TYPE_CHECKING:
    from mleray.config import AgentConfig


class SandboxError(RuntimeError):
    """The backend could not create, start or control the sandbox (not the agent's fault)."""


class NotStarted(SandboxError):
    """logs() or wait() was called on a sandbox that start() has not started."""


@dataclass
class SandboxSpec:
    """Everything a backend needs to start one agent run."""

    sweep: str
    trial_id: str
    attempt: int
    command: List[str]
    data_dir: Path  # public data -> /home/data (read-only)
    instructions: Path  # -> /home/instructions.txt (read-only)
    submission_dir: Path  # -> /home/submission
    code_dir: Path  # -> /home/code
    logs_dir: Path  # -> /home/logs
    agent_code: Optional[Path] = None  # -> /home/agent (read-only)
    instructions_obfuscated: Optional[Path] = None  # -> /home/instructions_obfuscated.txt (read-only)
    image: Optional[str] = None  # docker image
    env: Dict[str, str] = field(default_factory=dict)
    cpus: float = 1.0
    memory_gb: float = 2.0
    pids: int = 512
    shm_gb: float = 1.0
    disk_gb: float = 50.0  # GiB the agent may write into its writable folders (and container layer)
    gpu_ids: List[str] = field(default_factory=list)  # the device ids Ray assigned
    gpu_fraction: float = 0.0  # the share of each device this trial holds
    network: bool = False  # egress for agents that call LLM APIs
    validate_socket: Optional[Path] = None  # unix socket of the outside validation server
    llm_socket: Optional[Path] = None  # unix socket of the outside LLM gateway (mleray/llm), for llm agents
    description: Optional[Path] = None  # mounted over /home/data/description.md (e.g. the obfuscated one)
    sweep_id: str = ""  # the sweep's name plus a hash of its storage location (TrialJob.sweep_id); "" = `sweep`
    time_limit: Optional[float] = None  # seconds; enforced inside the sandbox too where the backend can

    @property
    def labels(self) -> Dict[str, str]:
        """What a backend tags its sandboxes with: `mleray.sweep_id` is what reap() matches."""
        return {"mleray.sweep": self.sweep, "mleray.sweep_id": self.sweep_id or self.sweep,
                "mleray.trial": self.trial_id, "mleray.attempt": str(self.attempt)}


LINE_CAP_BYTES = 64 * 1024  # one line of agent output at most, wherever it is read; the rest is dropped
_CUT_NOTE = re.compile(r" \[mleray: line cut, (\d+) more bytes dropped\]$")


def cut_line(data: bytes, dropped: int = 0, cap: int = LINE_CAP_BYTES) -> str:
    """A line of agent output as mleray keeps it: at most `cap` bytes, and a note saying how many more
    bytes were dropped (`dropped`: what a reader already left unread, counted in). A line cut once
    before, note and all, comes back as it was."""
    text = data.decode("utf-8", "replace")
    note = _CUT_NOTE.search(text)
    if note:
        text, dropped = text[: note.start()], dropped + int(note.group(1))
        data = text.encode("utf-8", "replace")
    if len(data) > cap:
        dropped += len(data) - cap
        text = data[:cap].decode("utf-8", "ignore")
    return f"{text} [mleray: line cut, {dropped} more bytes dropped]" if dropped else text


@dataclass
class ExitInfo:
    """How the agent run ended."""

    exit_code: Optional[int]  # None when killed without a code
    timed_out: bool = False
    oom_killed: bool = False  # the agent's main process was killed for memory
    child_oom_killed: bool = False  # a child of the agent was killed for memory, the agent went on
    killed_externally: bool = False  # stopped from outside: not mleray's time limit, not its own exit
    disk_exceeded: bool = False  # stopped for writing more than spec.disk_gb
    reason: str = ""  # human-readable: "exit 0", "killed at the time limit (60 s)", ...


class Sandbox(abc.ABC):
    """One agent run. Use as: start(); for line in logs(): ...; wait(deadline); kill() on abort.

    A backend is a subclass registered by name in `mleray.sandbox.registry`; its class methods
    answer for the backend as a whole (can it run here, clean up after a sweep)."""

    def __init__(self, spec: SandboxSpec, grace_period: float = 10.0):
        """`spec`: what to run and with which limits; `grace_period`: seconds between SIGTERM and
        SIGKILL at the time limit. Touches nothing: start() does."""
        self.spec = spec
        self.grace_period = float(grace_period)

    @classmethod
    @abc.abstractmethod
    def problem(cls, agents: Sequence["AgentConfig"]) -> Optional[str]:
        """Why this backend cannot run `agents` on this machine, as one line naming the fix, or None
        when it can. Never raises."""

    @classmethod
    def limits_report(cls, network_wanted: bool = True) -> Optional[str]:
        """One line for the sweep's start saying what this backend enforces on this machine and what it
        does not ("not enforced: <why>"), or None when it enforces everything it claims. Never raises."""
        return None

    @classmethod
    def prepare_agent(cls, agent: "AgentConfig", log: Optional[Callable[[str], None]] = None) -> "AgentConfig":
        """The agent as this backend runs it, derived on the node before the trial's sandbox is made (once per
        node and image where it builds anything); the agent unchanged where the backend needs nothing.
        Raises SandboxError when what it derives cannot be made."""
        return agent

    @classmethod
    def reap(cls, sweep_id: str) -> int:
        """Removes what sandboxes of the sweep `sweep_id` (`TrialJob.sweep_id`: name plus storage location,
        never the name alone) left behind (a crashed driver or node); another sweep's are left alone.
        Returns how many it removed; 0 where the backend leaves nothing behind.
        Raises SandboxError when the backend cannot be reached to clean up."""
        return 0

    @abc.abstractmethod
    def start(self) -> None:
        """Creates and starts the sandbox, making the spec's writable folders. Call once.
        Raises SandboxError when the backend cannot (missing tool, engine, image or input folder)."""

    @abc.abstractmethod
    def logs(self) -> Iterator[str]:
        """Yields the agent's stdout+stderr as lines (no trailing newline), in order, until it exits.

        A final partial line without a newline is yielded too. Safe to call once, from one thread
        (it may run beside wait()). Raises NotStarted before start()."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> ExitInfo:
        """Waits up to `timeout` seconds; at the deadline sends SIGTERM, waits the grace period,
        then kills. Returns how it ended (timed_out=True when the deadline was hit); an agent's
        failure is an ExitInfo, never an exception. Raises NotStarted before start()."""

    def written_outside(self) -> int:
        """Bytes the agent holds outside its mounted writable folders (bwrap: its own tmpfs mounts;
        Docker: the container layer), so the runner bounds them with the tier's disk_gb too. 0 where there
        is no such place or the sandbox is gone. Cheap enough to call every few seconds; never raises."""
        return 0

    def isolation(self) -> Dict[str, str]:
        """Which limits and isolation measures hold for this run, by name ("env", "pids", "memory",
        "cpu", "network", "seccomp", "disk", ...), each a short phrase; one that does not hold reads
        "not enforced: <why>". Recorded in the trial's record. Valid after start(); never raises."""
        return {}

    @abc.abstractmethod
    def kill(self) -> None:
        """Stops the sandbox now and removes what it created. Idempotent, safe before start() and
        from another thread; never raises."""

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
