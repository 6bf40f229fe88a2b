"""The driver: schedules one Ray actor per trial, keeps a bounded window in flight, appends each
result the moment it arrives, retries trials whose actor or node died, and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import ray
from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

from mleray.actor import TrialActor
from mleray.callbacks import SweepCallback
from mleray.config import SweepConfig, TierConfig
from mleray.runner import failed_record
from mleray.store import SweepStore
from mleray.trials import TrialSpec

STATUS_EVERY_S = 2.0
GIB = 1024**3
# Deaths of the actor's process or node: the trial is retried on any node.
RETRYABLE = (RayActorError, WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError)


@dataclass
class _InFlight:
    spec: TrialSpec
    attempt: int
    actor: object
    ref: object
    status_ref: Optional[object] = None
    started: bool = False


@dataclass
class Scheduler:
    """Runs `trials` on the connected Ray cluster, recording into `store`."""

    cfg: SweepConfig
    store: SweepStore
    sandbox_kind: str
    callbacks: Sequence[SweepCallback] = ()
    actor_cls: object = TrialActor  # a test or benchmark may pass another actor with the same methods
    inflight: Dict[object, _InFlight] = field(default_factory=dict)

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def window(self, pending: Sequence[TrialSpec]) -> int:
        """How many trials to keep in flight: the configured cap, or what the cluster fits plus a small
        queue so a freed slot is refilled at once (recomputed as an autoscaler adds nodes)."""
        if self.cfg.max_in_flight:
            return self.cfg.max_in_flight
        total = ray.cluster_resources()
        tiers = {t.tier: t.resources for t in pending}.values() or [TierConfig()]
        # The sum over tiers bounds what any mix of shapes can run at once, so Ray always has a trial
        # of each shape to place in a freed slot (the max over tiers left mixed sweeps under-packed).
        return max(1, sum(_fits(total, tier) for tier in tiers)) + 2

    def _launch(self, spec: TrialSpec, attempt: int) -> None:
        res = spec.resources
        actor = self.actor_cls.options(num_cpus=res.cpus, num_gpus=res.gpus, memory=int(res.memory_gb * GIB)).remote(
            spec, self.cfg, self.store.location, attempt, self.sandbox_kind)
        ref = actor.result.remote()
        # status() answers as soon as the actor exists: that is when the trial starts running.
        self.inflight[ref] = _InFlight(spec, attempt, actor, ref, status_ref=actor.status.remote())

    def _check_started(self) -> None:
        """Announces trials whose actor came up since the last look (every loop turn, so even a short
        trial shows as running, on its node)."""
        waiting = {item.status_ref: item for item in self.inflight.values() if not item.started and item.status_ref}
        if not waiting:
            return
        ready, _ = ray.wait(list(waiting), num_returns=len(waiting), timeout=0)
        for ref in ready:
            item = waiting[ref]
            item.status_ref = None
            try:
                node, _ = ray.get(ref)
            except Exception:  # the actor died before it answered; its main ref reports why
                continue
            self._start(item, node)

    def _start(self, item: _InFlight, node: str) -> None:
        item.started = True
        self._emit("on_trial_start", item.spec.trial_id, item.attempt, node)

    def _poll_logs(self) -> None:
        """Asks running actors for their last log line (for the progress view)."""
        for item in list(self.inflight.values()):
            if not item.started:
                continue
            if item.status_ref is None:
                item.status_ref = item.actor.status.remote()
                continue
            ready, _ = ray.wait([item.status_ref], timeout=0)
            if not ready:
                continue
            try:
                _, line = ray.get(item.status_ref)
            except Exception:  # the actor died; its main ref reports why
                line = ""
            item.status_ref = None
            if line:
                self._emit("on_trial_log", item.spec.trial_id, line)

    def _finish(self, ref, retry: List[tuple]) -> None:
        item = self.inflight.pop(ref)
        try:
            record = ray.get(ref)
        except RETRYABLE as err:
            reason = f"actor or node died (attempt {item.attempt}): {_short(err)}"
            if item.attempt < self.cfg.retries:
                self._emit("on_trial_retry", item.spec.trial_id, item.attempt + 1, reason)
                retry.append((item.spec, item.attempt + 1))
                return
            record = failed_record(item.spec, item.attempt, f"{reason}; no retries left")
        except RayTaskError as err:
            record = failed_record(item.spec, item.attempt, f"trial raised: {_short(err)}")
        finally:
            ray.kill(item.actor, no_restart=True)
        if not item.started and record.get("node_id"):
            self._start(item, record.get("node_ip") or record["node_id"])
        if self.store.append(record):
            self._emit("on_trial_end", record)

    def run(self, trials: Sequence[TrialSpec]) -> bool:
        """Runs every trial not yet recorded. Returns False if interrupted (Ctrl-C)."""
        todo = [(t, 0) for t in trials if t.trial_id not in self.store.done]
        self._emit("on_sweep_start", self.cfg.name, len(trials), len(trials) - len(todo))
        todo.reverse()  # pop() from the end keeps the sweep's order
        last_status = 0.0
        try:
            while todo or self.inflight:
                limit = self.window([t for t, _ in todo])
                while todo and len(self.inflight) < limit:
                    self._launch(*todo.pop())
                ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=0.5)
                self._check_started()
                retry: List[tuple] = []
                for ref in ready:
                    self._finish(ref, retry)
                todo.extend(reversed(retry))
                if time.monotonic() - last_status > STATUS_EVERY_S:
                    self._poll_logs()
                    last_status = time.monotonic()
        except KeyboardInterrupt:
            self.stop()
            return False
        return True

    def stop(self) -> None:
        """Kills every in-flight actor (their sandboxes die with them)."""
        for item in self.inflight.values():
            ray.kill(item.actor, no_restart=True)
        self.inflight.clear()


def _fits(total: dict, tier: TierConfig) -> int:
    """How many trials of this tier the cluster's total resources hold at once."""
    counts = [total.get("CPU", 0) / tier.cpus]
    if tier.gpus:
        counts.append(total.get("GPU", 0) / tier.gpus)
    if total.get("memory"):
        counts.append(total["memory"] / (tier.memory_gb * GIB))
    return int(math.floor(min(counts) + 1e-9))


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    lines = [l for l in text if l.strip()]
    return (lines[-1] if lines else type(err).__name__)[:300]
