"""The driver: schedules one Ray actor per trial, keeps a queue of each tier waiting in Ray (what
and where: mleray.sweep.placement), appends each result the moment it arrives, retries trials whose actor
or node died, and stops cleanly on Ctrl-C. The actors themselves are created and watched by launchers
(mleray.sweep.launcher), which the driver speaks to in batches, so Ray's cost per actor is not the driver's.

A trial whose actor or node died past its retries, or that raised inside mleray, is recorded as an
infrastructure failure (`records.failed_record`): a resumed sweep runs it again as its next attempt,
with `retries` more tries. An append the storage refuses stops the sweep (store.AppendError, raised
after every trial in flight is stopped): its result is kept in the trial folder for the next run.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Sequence as Sequence_
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence

import ray

from mleray.config import SweepConfig
from mleray.records import failed_record
from mleray.storage.store import AppendError, SweepStore
from mleray.sweep.callbacks import CallbackList, SweepCallback
from mleray.sweep.launcher import Failure, RayLaunchers
from mleray.sweep.placement import GIB, alive_nodes, cpu_only_selector, plan_launches
from mleray.sweep.trials import TrialJob, TrialSpec
from mleray.trial.actor import TrialActor

STATUS_EVERY_S = 2.0  # a shown trial's last log line is asked for at most this often
STATUS_PER_S = 20  # and at most this many status() calls a second in all, however many trials run
NODES_EVERY_S = 5.0  # the node list and the cluster's resources are looked up at most this often
TURN_S = 0.5  # the longest the loop sleeps while nothing happens


@dataclass
class _InFlight:
    job: TrialJob
    started: bool = False
    asking: bool = False  # a request for its last log line is in flight


def actor_name(job: TrialJob) -> str:
    """The trial's actor's name in Ray (`ray list actors`, the dashboard): its trial id, with `#<attempt>`
    for a retry or a resumed trial's later attempt, so no two live actors of a sweep share a name."""
    return job.spec.trial_id + (f"#{job.attempt}" if job.attempt else "")


@dataclass
class Scheduler:
    """Runs `trials` on the connected Ray cluster, recording into `store`.

    Each loop turn costs what happened since the last one, not what is in flight: starts, log lines
    and results arrive from the launchers in batches and are all taken in one turn; the
    counts the launch plan needs are counters; the node list and the cluster's resources are cached
    for NODES_EVERY_S; a running trial's last log line is asked for only while a callback shows that
    trial (`SweepCallback.shown_trials`), at most every STATUS_EVERY_S and STATUS_PER_S in all. The
    driver keeps nothing per finished trial beyond the store's small index.
    """

    cfg: SweepConfig
    store: SweepStore
    sandbox_kind: str
    callbacks: Sequence[SweepCallback] = ()
    actor_cls: Any = TrialActor  # a test or benchmark may pass another actor with the same methods
    report_to_ray: bool = True  # the sweep's progress on a named Ray actor (mleray.sweep.progress.RayProgress)
    launchers: Any = None  # what creates and watches the trial actors: RayLaunchers(actor_cls) unless given
    inflight: Dict[int, _InFlight] = field(default_factory=dict)  # launch key -> its trial
    _first: Dict[str, int] = field(default_factory=dict)  # trial id -> its first attempt in this run
    _node_cache: List[dict] = field(default_factory=list)
    _resources: dict = field(default_factory=dict)
    _nodes_at: float = -math.inf

    def __post_init__(self) -> None:
        callbacks = list(self.callbacks)
        if self.report_to_ray:
            from mleray.sweep.progress import RayProgress

            callbacks.append(RayProgress())
        self._events = CallbackList(callbacks)
        if self.launchers is None:
            self.launchers = RayLaunchers(self.actor_cls)
        self._shapes: Dict[str, Any] = {}  # tier -> its resources, of the tiers launched
        self._by_trial: Dict[str, int] = {}  # trial id -> its launch key
        self._unplaced: Counter = Counter()  # tier -> trials launched, not yet started
        self._unplaced_gpu = 0
        self._next_ask = 0.0

    def _launch(self, job: TrialJob, gpu_trials_waiting: bool) -> None:
        res = job.spec.resources
        options: Dict[str, Any] = dict(num_cpus=res.cpus, num_gpus=res.gpus, memory=int(res.memory_gb * GIB),
                                       name=actor_name(job))
        # GPU nodes' CPUs stay free for GPU trials while any wait (see mleray.sweep.placement).
        selector = cpu_only_selector(res, self._nodes(), gpu_trials_waiting)
        if selector:
            options["label_selector"] = selector
        key = self.launchers.launch(job, options)
        item = _InFlight(job)
        self.inflight[key] = item
        self._by_trial[job.spec.trial_id] = key
        self._unplaced[job.spec.tier] += 1
        self._unplaced_gpu += bool(res.gpus)
        self._shapes[job.spec.tier] = res

    def _gpu_trials_waiting(self, queues: "TierQueues") -> bool:
        """Whether a GPU trial is not yet running: queued here, or launched but not placed by Ray."""
        return bool(self._unplaced_gpu) or any(resources.gpus for _, resources in queues.tiers())

    def _refresh(self) -> None:
        """The alive nodes and the cluster's resources, looked up at most every few seconds (nodes
        come and go with the autoscaler)."""
        if time.monotonic() - self._nodes_at > NODES_EVERY_S:
            self._node_cache, self._resources = alive_nodes(), ray.cluster_resources()
            self._nodes_at = time.monotonic()

    def _nodes(self) -> List[dict]:
        self._refresh()
        return self._node_cache

    def _take_event(self, event: tuple, ended: List[tuple]) -> None:
        """A launcher's event: a trial whose actor came up is announced (so even a short trial shows as
        running, on its node); a log line asked for is passed on; an ended trial is kept for _finish."""
        item = self.inflight.get(event[1])
        if item is None:
            return  # ended meanwhile
        if event[0] == "start":
            if not item.started:
                self._start(item, event[2])
        elif event[0] == "line":
            item.asking = False
            if event[2]:
                self._events.on_trial_log(item.job.spec.trial_id, event[2])
        else:
            ended.append(event)

    def _start(self, item: _InFlight, node: str) -> None:
        item.started = True
        self._placed(item)
        self._events.on_trial_start(item.job.spec.trial_id, item.job.attempt, node)

    def _placed(self, item: _InFlight) -> None:
        self._unplaced[item.job.spec.tier] -= 1
        self._unplaced_gpu -= bool(item.job.spec.resources.gpus)

    def _ask_logs(self) -> None:
        """Asks the running trials a callback shows for their last log line: none while nothing shows
        them, and at most STATUS_PER_S * STATUS_EVERY_S calls per STATUS_EVERY_S whatever runs."""
        now = time.monotonic()
        if now < self._next_ask:
            return
        self._next_ask = now + STATUS_EVERY_S
        budget = int(STATUS_PER_S * STATUS_EVERY_S)
        keys = []
        for trial in self._events.shown_trials():
            key = self._by_trial.get(trial)
            item = self.inflight.get(key) if key is not None else None
            if item is None or not item.started or item.asking:
                continue
            if budget <= 0:
                break
            budget -= 1
            item.asking = True
            keys.append(key)
        self.launchers.ask(keys)

    def _finish(self, key: int, record: Optional[dict], failure: Optional[Failure],
                retry: List[TrialJob]) -> Optional[dict]:
        """The record of an ended trial (appended, not yet flushed), or None (retried, or a duplicate)."""
        item = self.inflight.pop(key)
        job = item.job
        self._by_trial.pop(job.spec.trial_id, None)
        if failure is not None:
            kind, why = failure
            if kind == "died":
                reason = f"actor or node died (attempt {job.attempt}): {why}"
                if job.attempt - self._first.get(job.spec.trial_id, 0) < self.cfg.retries:
                    if not item.started:
                        self._placed(item)
                    self._events.on_trial_retry(job.spec.trial_id, job.attempt + 1, reason)
                    retry.append(job.retry())
                    return None
                record = failed_record(job.spec, job.attempt, f"{reason}; no retries left")
            elif kind == "raised":
                record = failed_record(job.spec, job.attempt, f"trial raised: {why}")
            else:
                record = failed_record(job.spec, job.attempt, f"ray: {why}")
        assert record is not None  # no failure: the actor returned its record
        self._first.pop(job.spec.trial_id, None)
        if not item.started:
            if record.get("node_id"):
                self._start(item, record.get("node_ip") or record["node_id"])
            else:
                self._placed(item)
        return record if self.store.append(record, flush=False) else None

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
            self._events.on_sweep_end(StreamedRecords(self.store), not completed)
        return completed

    def _loop(self, queues: "TierQueues") -> bool:
        """Launches, watches and records until every job is recorded; on Ctrl-C kills what is in flight
        and returns False. A turn takes every result that is ready, records them in one write, then
        fires their on_trial_end."""
        try:
            while queues or self.inflight:
                self._fill(queues)
                self.launchers.send()
                finished: List[tuple] = []
                for event in self.launchers.events(TURN_S):
                    self._take_event(event, finished)
                retry: List[TrialJob] = []
                ended = [record for record in (self._finish(key, record, failure, retry)
                                               for _, key, record, failure in finished) if record is not None]
                self.store.flush_due()
                for record in ended:
                    self._events.on_trial_end(record)
                queues.push_front(retry)
                self._ask_logs()
            self.store.flush()
            self.launchers.close()
        except KeyboardInterrupt:
            self.stop()
            return False
        except AppendError:
            self.stop()
            raise
        finally:
            self._flush_quietly()
        return True

    def _flush_quietly(self) -> None:
        """Writes what waits when the loop ends by Ctrl-C or an error (an AppendError already says why)."""
        try:
            self.store.flush()
        except AppendError:
            pass

    def _fill(self, queues: "TierQueues") -> None:
        """Hands Ray the trials mleray.sweep.placement.plan_launches asks for (within max_in_flight, if set)."""
        if not queues:
            return
        if self.cfg.max_in_flight and len(self.inflight) >= self.cfg.max_in_flight:
            return
        self._refresh()
        waiting = {tier: n for tier, n in self._unplaced.items() if n > 0}
        tiers = {**{tier: self._shapes[tier] for tier in waiting}, **dict(queues.tiers())}
        plan = plan_launches(tiers, queues.counts(), waiting, self._resources, self._node_cache)
        gpu_waiting = self._gpu_trials_waiting(queues)
        for tier, count in plan.items():
            for _ in range(count):
                if self.cfg.max_in_flight and len(self.inflight) >= self.cfg.max_in_flight:
                    return
                self._launch(queues.pop(tier), gpu_waiting)

    def stop(self) -> None:
        """Kills every in-flight trial's actor (their sandboxes die with them), then the launchers."""
        self.launchers.stop()
        self.inflight.clear()
        self._by_trial.clear()


class StreamedRecords(Sequence_):
    """The records on_sweep_end receives: streamed from trials.jsonl when iterated (the driver holds
    no list of them); `len()` from the store's index. Compares equal to the list of the same records."""

    def __init__(self, store: SweepStore):
        self._store = store

    def __iter__(self) -> Iterator[dict]:
        return self._store.iter_records()

    def __len__(self) -> int:
        return len(self._store)

    def __getitem__(self, index):  # rare: reads the records through
        return list(self)[index]

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, (list, tuple, StreamedRecords)) else other)

    def __repr__(self) -> str:
        return f"StreamedRecords({len(self)} records of {self._store.shown})"


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
