"""One trial, start to finish, on whichever node its Ray actor landed on.

stage data -> start the sandbox -> stream its log into agent.log (capped: CappedLog) -> snapshot the
submission on cadence -> wait with the time limit, stopping the sandbox if its writable folders and
its own tmpfs pass the tier's disk_gb (DiskWatch) -> grade every snapshot and the final submission
outside the sandbox -> write result.json -> return the TrialResult.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import psutil

from mleray import competitions
from mleray.config import AgentConfig, load_agent
from mleray.grading import grade_submission
from mleray.records import Status, TrialResult, now
from mleray.sandbox import make_sandbox
from mleray.sandbox.base import ExitInfo, SandboxError, SandboxSpec
from mleray.sweep.trials import TrialJob, TrialSpec
from mleray.trial.agent_files import refusal
from mleray.trial.folder import TrialPaths, trial_folder
from mleray.trial.snapshots import Snapshotter
from mleray.trial.staging import stage


def sandbox_spec(spec: TrialSpec, agent: AgentConfig, prepared, paths: TrialPaths, attempt: int,
                 gpu_ids: List[str], description: Optional[Path]) -> SandboxSpec:
    tier = spec.resources
    gpu_fraction = min(tier.gpus, 1.0)  # the share of each assigned device (a whole device for gpus >= 1)
    env = {**agent.env, **{k: os.environ[k] for k in agent.env_passthrough if k in os.environ},
           "COMPETITION_ID": spec.competition, "MLERAY_TIME_LIMIT": str(int(tier.time_limit)),
           "MLERAY_SEED": str(spec.seed), "MLERAY_GPU_FRACTION": str(gpu_fraction)}
    return SandboxSpec(
        sweep=spec.sweep, trial_id=spec.trial_id, attempt=attempt, command=agent.command + agent.args,
        data_dir=prepared.public_dir, description=description, instructions=paths.instructions,
        submission_dir=paths.submission,
        code_dir=paths.code, logs_dir=paths.logs, agent_code=Path(agent.code) if agent.code else None,
        image=agent.image, env=env, cpus=tier.cpus, memory_gb=tier.memory_gb, pids=tier.pids,
        shm_gb=tier.shm_gb, disk_gb=tier.disk_gb, gpu_ids=list(gpu_ids), gpu_fraction=gpu_fraction,
        network=agent.egress)


def _description(prepared, kind: str) -> Optional[Path]:
    """The description to show instead of /home/data/description.md, or None for the original."""
    if kind == "original":
        return None
    for folder in (prepared.public_dir, prepared.competition.root):
        if folder and (Path(folder) / "description_obfuscated.md").is_file():
            return Path(folder) / "description_obfuscated.md"
    raise competitions.CompetitionError(
        f"competition '{prepared.competition.id}' has no description_obfuscated.md (set description=original)")


LOG_CAP_BYTES = 50 * 1024**2  # agent.log at most (about): the first half as it comes, the last half at the end
LINE_CAP_BYTES = 64 * 1024  # one line of agent output at most; the rest of a longer one is dropped


class CappedLog:
    """agent.log, capped whatever the agent prints: the first `cap`/2 bytes are written as they come;
    past that the last `cap`/2 are kept in a ring in memory (one buffer, at most `cap`/2 + SLACK bytes,
    however short the lines) and written when the log closes, after a line "[mleray: N bytes of agent
    output dropped here]", so the end of an over-long log is kept. A line over `line_cap` bytes keeps
    its start and says how much was cut."""

    SLACK = 4 * 1024**2  # the ring is trimmed to its size each time it grows this much past it

    def __init__(self, path: Path, cap: int = LOG_CAP_BYTES, line_cap: int = LINE_CAP_BYTES):
        self.path, self.line_cap = Path(path), line_cap
        self.head_left = cap // 2
        self.tail_cap = max(0, cap - cap // 2 - 512)  # room for the two notes: the log stays under `cap`
        self.ring = bytearray()
        self.held = False  # past the head: lines go to the ring
        self.dropped = 0
        self._out = open(self.path, "ab")

    def cut(self, line: str) -> str:
        """`line` as the log keeps it: at most `line_cap` bytes of it, and a note of what was cut."""
        data = line.encode("utf-8", "replace")
        if len(data) <= self.line_cap:
            return line
        kept = data[: self.line_cap].decode("utf-8", "ignore")
        return f"{kept} [mleray: line cut, {len(data) - self.line_cap} more bytes dropped]"

    def write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        if not self.held:
            if len(data) <= self.head_left:
                self._out.write(data)
                self._out.flush()
                self.head_left -= len(data)
                return
            self.held = True
            self._out.write(f"[mleray: agent.log reached its cap's first half; the last {self.tail_cap} bytes "
                            f"of what follows are written when the agent ends]\n".encode())
            self._out.flush()
        self.ring += data
        if len(self.ring) > self.tail_cap + self.SLACK:
            self._trim()

    def _trim(self) -> None:
        """Drops the ring's oldest bytes down to `tail_cap`, cutting at a line's start."""
        excess = len(self.ring) - self.tail_cap
        if excess <= 0:
            return
        newline = self.ring.find(b"\n", excess - 1)
        cut = newline + 1 if 0 <= newline < len(self.ring) - 1 else excess
        del self.ring[:cut]
        self.dropped += cut

    def close(self) -> None:
        self._trim()
        if self.dropped:
            self._out.write(f"[mleray: {self.dropped} bytes of agent output dropped here]\n".encode())
        self._out.write(self.ring)
        self.ring = bytearray()
        self._out.close()


def _stream(sandbox, log_path: Path, on_line: Optional[Callable[[str], None]],
            cap: int = LOG_CAP_BYTES) -> threading.Thread:
    """Copies the sandbox's output into agent.log line by line (a CappedLog), flushing each line."""

    def pump() -> None:
        log = CappedLog(log_path, cap)
        try:
            for line in sandbox.logs():
                line = log.cut(line)
                log.write(line)
                if on_line:
                    on_line(line)
        finally:
            log.close()

    thread = threading.Thread(target=pump, name="trial-log", daemon=True)
    thread.start()
    return thread


DISK_POLL_S = 2.0  # how often DiskWatch measures; a slow walk (many files) spaces the polls out further


def tree_bytes(folder: Path, stop_at: Optional[int] = None) -> int:
    """Bytes under `folder`, links never followed (os.scandir + lstat): a file counts its size or its
    allocated blocks, whichever is larger (a sparse file counts what an upload would copy), a folder
    its own size. Stops early once past `stop_at`. Vanished or unreadable entries count nothing."""
    total, pending = 0, [str(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += max(st.st_size, st.st_blocks * 512) if stat.S_ISREG(st.st_mode) else st.st_size
                    if stat.S_ISDIR(st.st_mode):
                        pending.append(entry.path)
        except OSError:
            continue
        if stop_at is not None and total > stop_at:
            break
    return total


def _sandbox_pid(sandbox) -> Optional[int]:
    """For a backend that runs the sandbox as a child process (bwrap): the first descendant in another
    mount namespace, whose /proc/<pid>/root and mountinfo show the sandbox's own filesystems."""
    pid = getattr(getattr(sandbox, "proc", None), "pid", None)
    if not isinstance(pid, int):
        return None
    try:
        mine = os.stat("/proc/self/ns/mnt").st_ino
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if os.stat(f"/proc/{child.pid}/ns/mnt").st_ino != mine:
                    return child.pid
            except OSError:
                continue
    except (OSError, psutil.Error):
        pass
    return None


def _tmpfs_mounts(mountinfo: str) -> Dict[str, str]:
    """{device "major:minor": mount point} of the tmpfs mounts in a /proc/<pid>/mountinfo text."""
    out: Dict[str, str] = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right.split()[:1] == ["tmpfs"]:
            out.setdefault(fields[2], re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return out


def sandbox_tmpfs_bytes(sandbox) -> int:
    """Bytes the sandbox holds in tmpfs instances of its own (bwrap's root, /tmp, /dev and /dev/shm: RAM
    the agent can fill), from statvfs through /proc/<pid>/root; a tmpfs the host has too (a bind
    mount of a host folder) is not counted, the walk of the trial's folders covers those. 0 when the
    backend runs no child process (Docker) or the sandbox is gone."""
    pid = _sandbox_pid(sandbox)
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/mountinfo") as theirs, open("/proc/self/mountinfo") as ours:
            own = {dev: point for dev, point in _tmpfs_mounts(theirs.read()).items()
                   if dev not in _tmpfs_mounts(ours.read())}
    except OSError:
        return 0
    total = 0
    for point in own.values():
        try:
            st = os.statvfs(f"/proc/{pid}/root{point}")
        except OSError:
            continue
        total += (st.f_blocks - st.f_bfree) * st.f_frsize
    return total


class DiskWatch:
    """Bounds what a trial writes: a thread that measures the trial's writable folders (and the
    bytes `extra` reports, the sandbox's own tmpfs) every `every` seconds and, over `limit_gb` GiB, kills the
    sandbox and sets `exceeded`. Cheap: a walk with lstat only, stopped once past the bound."""

    def __init__(self, sandbox, folders: Sequence[Path], limit_gb: float, every: float = DISK_POLL_S,
                 extra: Callable[[], int] = lambda: 0):
        self.sandbox, self.folders, self.every, self.extra = sandbox, [Path(f) for f in folders], every, extra
        self.limit = int(limit_gb * 1024**3)
        self.limit_gb = limit_gb
        self.exceeded = False
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="disk-watch", daemon=True)

    def measure(self) -> int:
        total = self.extra()
        for folder in self.folders:
            if total > self.limit:
                break
            total += tree_bytes(folder, stop_at=self.limit - total)
        self.peak = max(self.peak, total)
        return total

    def check(self) -> bool:
        """Measures once; over the bound, kills the sandbox. True when over."""
        if self.measure() > self.limit:
            self.exceeded = True
            self.sandbox.kill()
        return self.exceeded

    def _loop(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            t0 = time.monotonic()
            try:
                if self.check():
                    return
            except Exception:  # a measuring hiccup costs one round, never the trial
                pass
            wait = max(self.every, 4 * (time.monotonic() - t0))

    @property
    def reason(self) -> str:
        """The record's reason: stopped by this watch, or found over the bound when the agent ended."""
        done = "stopped: wrote" if self.exceeded else "wrote (found when the agent ended)"
        return f"{done} more than {self.limit_gb:g} GiB"

    @property
    def enforces(self) -> str:
        """What this watch enforced, for the record's isolation map."""
        return (f"{self.limit_gb:g} GiB over submission, code, logs and the sandbox's own tmpfs where visible, "
                f"polled every {self.every:g} s by the runner")

    def __enter__(self) -> "DiskWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _reason(exit_info: ExitInfo, grade: dict) -> str:
    ended_badly = (exit_info.timed_out or exit_info.oom_killed or exit_info.exit_code or exit_info.disk_exceeded
                   or exit_info.killed_externally or exit_info.child_oom_killed)
    parts = [exit_info.reason] if ended_badly else []
    if grade.get("reason"):
        parts.append(grade["reason"])
    return "; ".join(p for p in parts if p)


def run_trial(job: TrialJob, gpu_ids: Sequence[str] = (), on_line: Optional[Callable[[str], None]] = None,
              node: tuple[str, str] = ("", "")) -> TrialResult:
    """Runs one trial in this process and returns its graded record (also written to result.json).

    `job.location` is the sweep's location (`SweepStore.location`): a path, written in place, or an
    object-store URI, where the trial works in node-local scratch and uploads its folder at the end."""
    with trial_folder(job.location, job.spec.sweep, job.spec.trial_id) as root:
        return _run_in(TrialPaths(root).fresh(), job, list(gpu_ids), on_line, node)


def _run_in(paths: TrialPaths, job: TrialJob, gpu_ids: List[str], on_line: Optional[Callable[[str], None]],
            node: tuple[str, str]) -> TrialResult:
    spec, attempt = job.spec, job.attempt
    started, t0 = now(), time.monotonic()
    agent = load_agent(spec.agent)
    # Node-local, once per node; a trial that finds another staging the same data waits and says so.
    prepared, _ = stage(spec.competition, on_wait=on_line)
    description = _description(prepared, job.description)
    staging_s = time.monotonic() - t0

    sb_spec = sandbox_spec(spec, agent, prepared, paths, attempt, list(gpu_ids), description)
    sb_spec.sweep_id, sb_spec.time_limit = job.sweep_id, spec.resources.time_limit  # reap; the inside limit
    t1 = time.monotonic()
    with make_sandbox(job.sandbox_kind, sb_spec, prepared, grace_period=job.grace_period,
                      max_submission_mb=job.max_submission_mb) as sandbox:
        pump = _stream(sandbox, paths.agent_log, on_line)
        watch = DiskWatch(sandbox, [paths.submission, paths.code, paths.logs], sb_spec.disk_gb,
                          extra=lambda: sandbox_tmpfs_bytes(sandbox))
        with Snapshotter(paths.submission / "submission.csv", paths.snapshots, job.snapshot_interval, t1,
                         job.max_submission_mb), watch:
            exit_info = _wait(sandbox, spec.resources.time_limit, watch)
        isolation = sandbox.isolation()
        pump.join(timeout=30)
    if watch.exceeded or watch.measure() > watch.limit:  # also a trial that wrote too much and exited between polls
        exit_info = dataclasses.replace(exit_info, disk_exceeded=True, reason=watch.reason)
    isolation = {**isolation, "disk": "; ".join(filter(None, [watch.enforces, isolation.get("disk")]))}
    agent_s = time.monotonic() - t1

    t2 = time.monotonic()
    final = paths.submission / "submission.csv"
    cap = job.max_submission_mb
    grade = grade_submission(prepared, final, follow_links=False, max_submission_mb=cap)  # the agent's: no link
    snapshots = [{"elapsed_s": snap.elapsed_s, "path": str(snap.path.relative_to(paths.root)),
                  **_snapshot_fields(grade_submission(prepared, snap.path, follow_links=False, max_submission_mb=cap))}
                 for snap in Snapshotter.list(paths.snapshots)]
    grading_s = time.monotonic() - t2

    record = TrialResult(
        **{k: v for k, v in grade.items() if k in TrialResult.__dataclass_fields__ and k != "reason"},
        sweep=spec.sweep, trial_id=spec.trial_id, agent=spec.agent, tier=spec.tier, seed=spec.seed,
        attempt=attempt, status=Status.GRADED, reason=_reason(exit_info, grade), exit_code=exit_info.exit_code,
        timed_out=exit_info.timed_out, oom_killed=exit_info.oom_killed,
        child_oom_killed=exit_info.child_oom_killed, killed_externally=exit_info.killed_externally,
        disk_exceeded=exit_info.disk_exceeded, sandbox=job.sandbox_kind,
        description=job.description, started_at=started, finished_at=now(), staging_s=round(staging_s, 3),
        agent_s=round(agent_s, 3), grading_s=round(grading_s, 3), node_id=node[0], node_ip=node[1],
        gpu_ids=list(gpu_ids), cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb,
        gpus=spec.resources.gpus, time_limit=spec.resources.time_limit, snapshots=snapshots,
        isolation=isolation)
    # relative to the sweep folder, so the same whatever the storage
    kept = final.exists() and refusal(final) is None  # a link planted by the agent is not offered to readers
    record.submission_path = f"trials/{spec.trial_id}/{final.relative_to(paths.root)}" if kept else None
    paths.result.write_text(json.dumps(record.to_dict(), indent=2, default=str))
    return record


def _wait(sandbox, time_limit: float, watch: DiskWatch) -> ExitInfo:
    """sandbox.wait, where a sandbox the disk watch killed (which a backend may report as an error)
    is an ExitInfo too."""
    try:
        return sandbox.wait(time_limit)
    except SandboxError:
        if not watch.exceeded:
            raise
        return ExitInfo(exit_code=None)


_SNAPSHOT_KEYS = ("score", "valid_submission", "above_median", "any_medal", "gold_medal", "silver_medal",
                  "bronze_medal", "reason")


def _snapshot_fields(grade: dict) -> dict:
    return {key: grade.get(key) for key in _SNAPSHOT_KEYS}
