"""Sweep callbacks: side effects (progress views, logging, notifications) hook in here, not via flags.

The scheduler (`mleray.sweep.scheduler.Scheduler.run`) calls them on the driver, in order, from one thread:
`on_sweep_plan`, `on_sweep_start`, the trial hooks, then `on_sweep_end` exactly once (also when interrupted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Collection, Dict, Sequence

if TYPE_CHECKING:
    from mleray.sweep.trials import TrialSpec


class SweepCallback:
    """Override what you need; every hook is optional."""

    def on_sweep_plan(self, trials: Sequence["TrialSpec"]) -> None:
        """Before on_sweep_start: the trials this run will run (those not yet recorded)."""

    def on_sweep_start(self, sweep: str, total: int, done: int) -> None:
        """`total` trials in the sweep, of which `done` were already recorded (resume)."""

    def on_trial_start(self, trial_id: str, attempt: int, node: str) -> None:
        """A trial's actor was placed on `node` (node ip or id) and started."""

    def on_trial_log(self, trial_id: str, line: str) -> None:
        """The latest log line the trial's agent printed (sampled; full logs are on disk)."""

    def on_trial_retry(self, trial_id: str, attempt: int, reason: str) -> None:
        """A trial's actor or node died; it will run again as `attempt`."""

    def on_trial_end(self, record: dict) -> None:
        """A trial finished and its record (a TrialResult dict) was appended to trials.jsonl."""

    def on_sweep_end(self, records: Sequence[dict], interrupted: bool) -> None:
        """All trials are recorded (or the sweep was interrupted). `records` is read back from
        trials.jsonl as it is iterated (the driver keeps no list of them); `len(records)` is cheap."""

    def shown_trials(self) -> Collection[str]:
        """The running trials whose last log line this callback shows now: the driver asks those trials
        for it (on_trial_log), and no others. None by default: a callback that shows no log lines
        costs the trials no calls."""
        return ()


class CallbackList(SweepCallback):
    """Several callbacks as one: each hook is called on each of them, in order."""

    def __init__(self, callbacks: Sequence[SweepCallback]):
        self.callbacks = list(callbacks)

    def on_sweep_plan(self, trials: Sequence["TrialSpec"]) -> None:
        for cb in self.callbacks:
            cb.on_sweep_plan(trials)

    def on_sweep_start(self, sweep: str, total: int, done: int) -> None:
        for cb in self.callbacks:
            cb.on_sweep_start(sweep, total, done)

    def on_trial_start(self, trial_id: str, attempt: int, node: str) -> None:
        for cb in self.callbacks:
            cb.on_trial_start(trial_id, attempt, node)

    def on_trial_log(self, trial_id: str, line: str) -> None:
        for cb in self.callbacks:
            cb.on_trial_log(trial_id, line)

    def on_trial_retry(self, trial_id: str, attempt: int, reason: str) -> None:
        for cb in self.callbacks:
            cb.on_trial_retry(trial_id, attempt, reason)

    def on_trial_end(self, record: dict) -> None:
        for cb in self.callbacks:
            cb.on_trial_end(record)

    def on_sweep_end(self, records: Sequence[dict], interrupted: bool) -> None:
        for cb in self.callbacks:
            cb.on_sweep_end(records, interrupted)

    def shown_trials(self) -> Collection[str]:
        """Every callback's shown trials, in order, each once (only SweepCallbacks are asked)."""
        shown: Dict[str, None] = {}
        for cb in self.callbacks:
            if isinstance(cb, SweepCallback):
                shown.update(dict.fromkeys(cb.shown_trials() or ()))
        return shown.keys()
