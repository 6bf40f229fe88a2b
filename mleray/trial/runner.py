"""One trial, start to finish, on whichever node its Ray actor landed on.

stage data -> start the sandbox -> stream its log into agent.log (capped: CappedLog) -> snapshot the
submission on cadence -> wait with the time limit, stopping the sandbox if its writable folders and
what it holds outside them pass the tier's disk_gb (DiskWatch) -> grade every snapshot and the final submission
outside the sandbox -> write result.json -> return the TrialResult.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from mleray import competitions
from mleray.config import AgentConfig, load_agent
from mleray.grading import grade_submission
from mleray.records import Status, TrialResult, now
from mleray.sandbox import make_sandbox
from mleray.sandbox.base import ExitInfo, SandboxError, SandboxSpec
from mleray.sandbox.mlebench_images import agent_env
from mleray.sandbox.registry import backend
from mleray.sweep.trials import TrialJob, TrialSpec
from mleray.trial.agent_files import refusal
from mleray.trial.bounds import DiskWatch, stream
from mleray.trial.folder import TrialPaths, trial_folder
from mleray.trial.snapshots import Snapshotter
from mleray.trial.staging import stage


def sandbox_spec(spec: TrialSpec, agent: AgentConfig, prepared, paths: TrialPaths, attempt: int,
                 gpu_ids: List[str], description: Optional[Path], sweep_id: str) -> SandboxSpec:
    tier = spec.resources
    gpu_fraction = min(tier.gpus, 1.0)  # the share of each assigned device (a whole device for gpus >= 1)
    env = {**agent_env(agent.env, tier.time_limit, agent.step_limit, gpu_ids, gpu_fraction),  # MLE-bench's
           **{k: os.environ[k] for k in agent.env_passthrough if k in os.environ},
           "COMPETITION_ID": spec.competition, "MLERAY_TIME_LIMIT": str(int(tier.time_limit)),
           "MLERAY_SEED": str(spec.seed), "MLERAY_GPU_FRACTION": str(gpu_fraction)}
    return SandboxSpec(
        sweep=spec.sweep, trial_id=spec.trial_id, attempt=attempt, command=agent.command + agent.args,
        data_dir=prepared.public_dir, description=description, instructions=paths.instructions,
        instructions_obfuscated=paths.instructions_obfuscated,
        submission_dir=paths.submission,
        code_dir=paths.code, logs_dir=paths.logs, agent_code=Path(agent.code) if agent.code else None,
        image=agent.image, env=env, cpus=tier.cpus, memory_gb=tier.memory_gb, pids=tier.pids,
        shm_gb=tier.shm_gb, disk_gb=tier.disk_gb, gpu_ids=list(gpu_ids), gpu_fraction=gpu_fraction,
        network=agent.egress, sweep_id=sweep_id, time_limit=tier.time_limit)  # reap; the inside limit


def _description(prepared, kind: str) -> Optional[Path]:
    """The description to show instead of /home/data/description.md, or None for the original."""
    if kind == "original":
        return None
    for folder in (prepared.public_dir, prepared.competition.root):
        if folder and (Path(folder) / "description_obfuscated.md").is_file():
            return Path(folder) / "description_obfuscated.md"
    raise competitions.CompetitionError(
        f"competition '{prepared.competition.id}' has no description_obfuscated.md (set description=original)")


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
    agent = backend(job.sandbox_kind).prepare_agent(agent, on_line)  # e.g. Docker: an MLE-bench image's writable layer
    # Node-local, once per node; a trial that finds another staging the same data waits and says so.
    prepared, _ = stage(spec.competition, on_wait=on_line)
    description = _description(prepared, job.description)
    staging_s = time.monotonic() - t0

    sb_spec = sandbox_spec(spec, agent, prepared, paths, attempt, list(gpu_ids), description, job.sweep_id)
    gateway = contextlib.ExitStack()  # an llm agent's gateway (mleray/llm), outside the sandbox, for its life
    if agent.llm:
        from mleray.llm import trial_gateway

        llm, llm_env, sb_spec.llm_socket = gateway.enter_context(trial_gateway(job.llm, paths.root))
        sb_spec.env.update(llm_env)
    t1 = time.monotonic()
    if agent.llm:
        llm.t0 = t1  # llm.jsonl's elapsed_s on the snapshots' clock
    with gateway, make_sandbox(job.sandbox_kind, sb_spec, prepared, grace_period=job.grace_period,
                      max_submission_mb=job.max_submission_mb) as sandbox:
        pump = stream(sandbox, paths.agent_log, on_line)
        watch = DiskWatch(sandbox, [paths.submission, paths.code, paths.logs], sb_spec.disk_gb,
                          extra=sandbox.written_outside)
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
    graded: dict = {}  # content hash -> grade: the last snapshot (usually the final file's content) is graded once
    grade = grade_submission(prepared, final, follow_links=False, max_submission_mb=cap, memo=graded)  # no link
    snapshots = [{"elapsed_s": snap.elapsed_s, "path": str(snap.path.relative_to(paths.root)),
                  **_snapshot_fields(grade_submission(prepared, snap.path, follow_links=False, max_submission_mb=cap,
                                                      memo=graded))}
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
        isolation=isolation, **(llm.ledger.fields() if agent.llm else {}))
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
