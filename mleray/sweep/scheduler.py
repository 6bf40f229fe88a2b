"""The driver: schedules one Ray actor per trial, keeps a queue of each tier waiting in Ray (what
and where: mleray.sweep.placement), appends each result the moment it arrives, retries trials whose actor
or node died, and stops cleanly on Ctrl-C.

A trial whose actor or node died past its retries, or that raised inside mleray, is recorded as an
infrastructure failure (`records.failed_record`): a resumed sweep runs it again as its next attempt,
with `retries` more tries. An append the storage refuses stops the sweep (store.AppendError, raised
after every trial in flight is stopped): its result is kept in the trial folder for the next run.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import ray
from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

from mleray.config import SweepConfig
from mleray.errors import one_line
from mleray.records import failed_record
from mleray.storage.store import AppendError, SweepStore
from mleray.sweep.callbacks import CallbackList, SweepCallback
from mleray.sweep.placement import GIB, alive_nodes, cpu_only_selector, plan_launches
from mleray.sweep.trials import TrialJob, TrialSpec
from mleray.trial.actor import TrialActor, TrialStatus

STATUS_EVERY_S = 2.0
NODES_EVERY_S = 5.0
# Deaths of the actor's process or node: the trial is retried on any node.
RETRYABLE = (RayActorError, WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError)


@dataclass
class _InFlight:
    job: TrialJob
    actor: Any
    ref: Any
    status_ref: Optional[object] = None
    started: bool = False


@dataclass
class Scheduler:
    """Runs `trials` on the connected Ray cluster, recording into `store`."""

    cfg: SweepConfig
    store: SweepStore
    sandbox_kind: str
    callbacks: Sequence[SweepCallback] = ()
    actor_cls: Any = TrialActor  # a test or benchmark may pass another actor with the same methods
    inflight: Dict[object, _InFlight] = field(default_factory=dict)
    _first: Dict[str, int] = field(default_factory=dict)  # trial id -> its first attempt in this run
    _node_cache: List[dict] = field(default_factory=list)
    _nodes_at: float = -math.inf

    def __post_init__(self) -> None:
        self._events = CallbackList(self.callbacks)

    def _launch(self, job: TrialJob, gpu_trials_waiting: bool) -> None:
        res = job.spec.resources
        options: Dict[str, Any] = dict(num_cpus=res.cpus, num_gpus=res.gpus, memory=int(res.memory_gb * GIB))
        # GPU nodes' CPUs stay free for GPU trials while any wait (see mleray.sweep.placement).
        selector = cpu_only_selector(res, self._nodes(), gpu_trials_waiting)
        if selector:
            options["label_selector"] = selector
        actor = self.actor_cls.options(**options).remote(job)
        ref = actor.result.remote()
        # status() answers as soon as the actor exists: that is when the trial starts running.
        self.inflight[ref] = _InFlight(job, actor, ref, status_ref=actor.status.remote())

    def _gpu_trials_waiting(self, queues: "TierQueues") -> bool:
        """Whether a GPU trial is not yet running: queued here, or launched but not placed by Ray."""
        return (any(resources.gpus for _, resources in queues.tiers())
                or any(item.job.spec.resources.gpus and not item.started for item in self.inflight.values()))

    def _nodes(self) -> List[dict]:
        """The alive nodes, looked up at most every few seconds (nodes come and go with the autoscaler)."""
        if time.monotonic() - self._nodes_at > NODES_EVERY_S:
            self._node_cache, self._nodes_at = alive_nodes(), time.monotonic()
        return self._node_cache

    def _answers(self, items: Sequence[_InFlight]) -> List[tuple[_InFlight, Optional[TrialStatus]]]:
        """(item, its TrialStatus) for each item whose status() call has answered since the last
        look, with None for an actor that died first (its main ref reports why)."""
        asked = {item.status_ref: item for item in items if item.status_ref is not None}
        if not asked:
            return []
        ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=0)
        answers = []
        for ref in ready:
            item = asked[ref]
            item.status_ref = None
            try:
                answers.append((item, ray.get(ref)))
            except Exception:
                answers.append((item, None))
        return answers

    def _check_started(self) -> None:
        """Announces trials whose actor came up since the last look (every loop turn, so even a short
        trial shows as running, on its node)."""
        for item, answer in self._answers([item for item in self.inflight.values() if not item.started]):
            if answer:
                self._start(item, answer.node)

    def _start(self, item: _InFlight, node: str) -> None:
        item.started = True
        self._events.on_trial_start(item.job.spec.trial_id, item.job.attempt, node)

    def _poll_logs(self) -> None:
        """Asks running actors for their last log line (for the progress view)."""
        running = [item for item in self.inflight.values() if item.started]
        for item, answer in self._answers(running):
            if answer and answer.last_line:
                self._events.on_trial_log(item.job.spec.trial_id, answer.last_line)
        for item in running:
            if item.status_ref is None:
                item.status_ref = item.actor.status.remote()

    def _finish(self, ref, retry: List[TrialJob]) -> None:
        item = self.inflight.pop(ref)
        job = item.job
        try:
            record = ray.get(ref)
        except RETRYABLE as err:
            reason = f"actor or node died (attempt {job.attempt}): {one_line(err, last=True)}"
            if job.attempt - self._first.get(job.spec.trial_id, 0) < self.cfg.retries:
                self._events.on_trial_retry(job.spec.trial_id, job.attempt + 1, reason)
                retry.append(job.retry())
                return
            record = failed_record(job.spec, job.attempt, f"{reason}; no retries left")
        except RayTaskError as err:
            record = failed_record(job.spec, job.attempt, f"trial raised: {one_line(err, last=True)}")
        except ray.exceptions.RayError as err:  # its result lost, its runtime env failed: Ray's, not the agent's
            record = failed_record(job.spec, job.attempt, f"ray: {type(err).__name__}: {one_line(err, last=True)}")
        finally:
            ray.kill(item.actor, no_restart=True)
        if not item.started and record.get("node_id"):
            self._start(item, record.get("node_ip") or record["node_id"])
        if self.store.append(record):
            self._events.on_trial_end(record)

    def run(self, trials: Sequence[TrialSpec]) -> bool:
        """Runs every trial not yet recorded, firing every callback event from on_sweep_plan to on_sweep_end
        (exactly once, also when interrupted). Returns False if interrupted (Ctrl-C)."""
        done = self.store.done
        todo = [TrialJob.of(self.cfg, t, self.store.location, self.sandbox_kind, self.store.next_attempt(t.trial_id))
                for t in trials if t.trial_id not in done]
        self._first = {job.spec.trial_id: job.attempt for job in todo}
        self._events.on_sweep_plan([job.spec for job in todo])
        self._events.on_sweep_start(self.cfg.name, len(trials), len(trials) - len(todo))
        completed = False
        try:
            completed = self._loop(TierQueues(todo))
        finally:  # an AppendError stops the sweep too: the view ends as interrupted, then the error is raised
            self._events.on_sweep_end(self.store.records, not completed)
        return completed

    def _loop(self, queues: "TierQueues") -> bool:
        """Launches, watches and records until every job is recorded; on Ctrl-C kills what is in flight
        and returns False."""
        last_status = 0.0
        try:
            while queues or self.inflight:
                self._fill(queues)
                ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=0.5)
                self._check_started()
                retry: List[TrialJob] = []
                for ref in ready:
                    self._finish(ref, retry)
                queues.push_front(retry)
                if time.monotonic() - last_status > STATUS_EVERY_S:
                    self._poll_logs()
                    last_status = time.monotonic()
        except KeyboardInterrupt:
            self.stop()
            return False
        except AppendError:
            self.stop()
            raise
        return True

    def _fill(self, queues: "TierQueues") -> None:
        """Hands Ray the trials mleray.sweep.placement.plan_launches asks for (within max_in_flight, if set)."""
        if not queues:
            return
        unplaced = [item.job.spec for item in self.inflight.values() if not item.started]
        tiers = {**{s.tier: s.resources for s in unplaced}, **dict(queues.tiers())}
        plan = plan_launches(tiers, queues.counts(), Counter(s.tier for s in unplaced), ray.cluster_resources(),
                             self._nodes())
        gpu_waiting = self._gpu_trials_waiting(queues)
        for tier, count in plan.items():
            for _ in range(count):
                if self.cfg.max_in_flight and len(self.inflight) >= self.cfg.max_in_flight:
                    return
                self._launch(queues.pop(tier), gpu_waiting)

    def stop(self) -> None:
        """Kills every in-flight actor (their sandboxes die with them)."""
        for item in self.inflight.values():
            ray.kill(item.actor, no_restart=True)
        self.inflight.clear()


class TierQueues:
    """The jobs still to launch, one queue per tier in sweep order; retries go to the front."""

    def __init__(self, todo: Sequence[TrialJob]):
        self._queues: Dict[str, deque] = {}
        for job in todo:
            self._queues.setdefault(job.spec.tier, deque()).append(job)

    def __bool__(self) -> bool:
        return any(self._queues.values())

    def pop(self, tier: str) -> TrialJob:
        return self._queues[tier].popleft()

    def push_front(self, jobs: Sequence[TrialJob]) -> None:
        for job in reversed(jobs):
            self._queues.setdefault(job.spec.tier, deque()).appendleft(job)

    def tiers(self) -> List[tuple]:
        """(tier name, its resources) of the non-empty queues."""
        return [(tier, q[0].spec.resources) for tier, q in self._queues.items() if q]

    def counts(self) -> Dict[str, int]:
        return {tier: len(q) for tier, q in self._queues.items()}
