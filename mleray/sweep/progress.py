"""A live progress view of a sweep, as a SweepCallback.

One compact view: pending / running / done / failed counts, each running trial's node, elapsed
time and last log line, and an ETA (see `eta_seconds`). It says at the start how many trials were
already recorded (resumed) and prints one line per trial as it ends (status, score, medal or
reason, duration).

- On a terminal (TTY) it is redrawn in place with ANSI cursor moves, at most every `interval`
  seconds (and by a small ticker thread so elapsed times move while nothing happens); the
  per-trial lines scroll above it.
- Anywhere else (CI logs, files, pipes) it prints the per-trial lines, and one status line every
  `interval` seconds (30 s by default) and at the start and end: never a line per log line.

`render(state, now)` and `render_line(state, now)` are pure functions of a `ProgressState`, so the
view can be tested on known states without a terminal or a sweep.

`RayProgress` (which the scheduler adds itself) reports the same counts where Ray users look: a named
actor, `progress:<sweep>` in namespace `mleray`, listed by `ray list actors` and the dashboard next to
the trials' actors (named by trial id); `sweep_progress(sweep)` reads it from any driver of the cluster.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Dict, List, Optional, Sequence, TextIO

from mleray.cli.logs import outcome
from mleray.sweep.callbacks import SweepCallback
from mleray.sweep.trials import TrialSpec

_ANSI_CLEAR_TO_END = "\x1b[J"


@dataclass
class RunningTrial:
    trial_id: str
    attempt: int
    node: str
    started: float  # clock time the actor started
    last_line: str = ""


@dataclass
class ProgressState:
    """What the view shows; the callback updates it, `render` reads it."""

    sweep: str = ""
    total: int = 0
    done: int = 0  # recorded with status graded (including those found on resume)
    failed: int = 0  # recorded with status failed
    resumed: int = 0  # of done + failed, how many were already recorded before this run
    retries: int = 0
    started: Optional[float] = None  # clock time of on_sweep_start
    running: Dict[str, RunningTrial] = field(default_factory=dict)
    durations: List[float] = field(default_factory=list)  # seconds, trials finished in this run
    plan: Dict[str, TrialSpec] = field(default_factory=dict)  # trials to run, by id, until they end
    group_durations: Dict[tuple, List[float]] = field(default_factory=dict)  # by (agent, tier)
    max_parallel: int = 0  # the most trials seen running at once
    last_failure: str = ""  # "trial_id: reason" of the latest failed record
    finished: bool = False
    interrupted: bool = False

    @property
    def pending(self) -> int:
        return max(self.total - self.done - self.failed - len(self.running), 0)


def format_duration(seconds: Optional[float]) -> str:
    """`h:mm:ss` (`?` when unknown); days are folded into hours (100 h runs show 100:00:00)."""
    if seconds is None:
        return "?"
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _mean(values: List[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def eta_seconds(state: ProgressState, now: float) -> Optional[float]:
    """Remaining wall time: the work left (each pending trial's expected duration, plus what the
    running ones still need of theirs) spread over the parallelism seen so far, and never less than
    one trial's own remaining time. A planned trial is expected to take the mean duration of its
    (agent, tier) group, or its tier's time limit before one of its group has finished; a trial
    outside the plan, the mean of all. None when an estimate is missing; 0 when nothing is left."""
    if state.pending == 0 and not state.running:
        return 0.0
    overall = _mean(state.durations)
    means = {group: _mean(values) for group, values in state.group_durations.items()}  # once, not per trial

    def expected(trial_id: str) -> Optional[float]:
        spec = state.plan.get(trial_id)
        if spec is None:
            return overall
        seen = means.get((spec.agent, spec.tier))
        return seen if seen is not None else spec.resources.time_limit

    planned = [expected(t) for t in state.plan if t not in state.running]
    left = planned + [overall] * max(state.pending - len(planned), 0)
    for trial in state.running.values():
        full = expected(trial.trial_id)
        left.append(None if full is None else max(full - (now - trial.started), 0.0))
    known = [t for t in left if t is not None]
    if len(known) < len(left):
        return None
    parallel = max(len(state.running), state.max_parallel, 1)
    return max(sum(known) / parallel, *known)


def _short_node(node: str) -> str:
    """Node ids are 56 hex digits; show 8. Ips and names are kept."""
    if len(node) > 20 and all(c in "0123456789abcdef" for c in node.lower()):
        return node[:8]
    return node


def _clip(text: str, width: int) -> str:
    text = text.replace("\r", " ").replace("\t", " ").replace("\x1b", "")
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


_UNKNOWN = object()


def _counts(state: ProgressState, now: float, eta: object = _UNKNOWN) -> str:
    elapsed = None if state.started is None else now - state.started
    parts = [
        f"{state.done + state.failed}/{state.total} done",
        f"{state.failed} failed",
        f"{len(state.running)} running",
        f"{state.pending} pending",
    ]
    if state.retries:
        parts.append(f"{state.retries} retried")
    parts.append(f"elapsed {format_duration(elapsed)}")
    parts.append(f"ETA {format_duration(eta_seconds(state, now) if eta is _UNKNOWN else eta)}")  # type: ignore[arg-type]
    return ", ".join(parts)


def render_line(state: ProgressState, now: float, eta: object = _UNKNOWN) -> str:
    """One plain line: the counts and ETA (for logs that are not a terminal); `eta` (seconds or None)
    instead of computing it."""
    head = f"[{state.sweep}] " if state.sweep else ""
    tail = ""
    if state.finished:
        tail = " (interrupted)" if state.interrupted else " (finished)"
    return head + _counts(state, now, eta) + tail


def render(state: ProgressState, now: float, width: int = 120, max_rows: int = 20, eta: object = _UNKNOWN) -> str:
    """The full view: the counts line, then one line per running trial (oldest first):
    trial id, node, elapsed time, last log line; clipped to `width`, at most `max_rows` trials."""
    lines = [_clip(render_line(state, now, eta), width)]
    trials = sorted(state.running.values(), key=lambda t: (t.started, t.trial_id))
    if trials:
        id_w = min(max(len(t.trial_id) + (len(f" #{t.attempt}") if t.attempt else 0) for t in trials), 48)
        node_w = min(max(len(_short_node(t.node)) for t in trials), 16)
        for t in trials[:max_rows]:
            name = t.trial_id + (f" #{t.attempt}" if t.attempt else "")
            row = (f"  {_clip(name, id_w):<{id_w}}  {_clip(_short_node(t.node), node_w):<{node_w}}  "
                   f"{format_duration(now - t.started):>8}  ")
            lines.append(row + _clip(t.last_line, width - len(row)) if width > len(row) else _clip(row, width))
        if len(trials) > max_rows:
            lines.append(f"  … and {len(trials) - max_rows} more running")
    if state.last_failure:
        lines.append(_clip(f"  last failure: {state.last_failure}", width))
    return "\n".join(lines)


class ProgressCallback(SweepCallback):
    """The live view. `ProgressCallback()` picks the mode from the stream: a TTY gets the in-place
    view, anything else the periodic one-line summaries. All updates go through one lock, so the
    ticker thread and the scheduler's loop never interleave output."""

    def __init__(self, stream: Optional[TextIO] = None, interval: Optional[float] = None,
                 tty: Optional[bool] = None, clock: Callable[[], float] = time.monotonic,
                 ticker: bool = True):
        self.stream = stream or sys.stdout
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
        self.tty = tty
        self.interval = interval if interval is not None else (0.5 if tty else 30.0)
        self.clock = clock
        self.state = ProgressState()
        self._lock = threading.RLock()
        self._drawn_lines = 0  # lines of the last TTY frame, to move back over
        self._last_draw: Optional[float] = None
        self._stop = threading.Event()
        self._plan: Dict[str, TrialSpec] = {}
        self._ticker_enabled = ticker
        self._thread: Optional[threading.Thread] = None
        self._shown: List[str] = []  # the running trials the last TTY frame showed
        self._eta_at: Optional[float] = None  # when the ETA was last computed (at most every interval)
        self._eta_s: Optional[float] = None

    def _eta(self, now: float, due: bool) -> Optional[float]:
        """eta_seconds, computed when the view is due and counted down in between: it walks the plan, and
        a view redrawn under every finished trial would otherwise walk it once per trial."""
        if due or self._eta_at is None:
            self._eta_at, self._eta_s = now, eta_seconds(self.state, now)
        elif self._eta_s is not None:
            return max(self._eta_s - (now - self._eta_at), 0.0)
        return self._eta_s

    def shown_trials(self) -> Collection[str]:
        """The trials whose log line the view shows: the rows of the TTY view; none in plain mode."""
        with self._lock:
            return list(self._shown) if self.tty else []

    # -- SweepCallback hooks ------------------------------------------------------------------
    def on_sweep_plan(self, trials: Sequence[TrialSpec]) -> None:
        self._plan = {t.trial_id: t for t in trials}

    def on_sweep_start(self, sweep: str, total: int, done: int) -> None:
        with self._lock:
            now = self.clock()
            self.state = ProgressState(sweep=sweep, total=total, done=done, resumed=done, started=now,
                                       plan=dict(self._plan))
            said = (f"mleray: {total} trials: {done} already recorded (resumed), {total - done} to run" if done
                    else f"mleray: {total} trials to run")
            self._draw(now, force=True, above=said)
        if self._ticker_enabled and self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="mleray-progress", daemon=True)
            self._thread.start()

    def on_trial_start(self, trial_id: str, attempt: int, node: str) -> None:
        with self._lock:
            now = self.clock()
            self.state.running[trial_id] = RunningTrial(trial_id, attempt, node or "?", now)
            self.state.max_parallel = max(self.state.max_parallel, len(self.state.running))
            self._draw(now)

    def on_trial_log(self, trial_id: str, line: str) -> None:
        with self._lock:
            trial = self.state.running.get(trial_id)
            if trial is not None:
                trial.last_line = line.rstrip()
            if self.tty:  # plain mode waits for its interval
                self._draw(self.clock())

    def on_trial_retry(self, trial_id: str, attempt: int, reason: str) -> None:
        with self._lock:
            self.state.running.pop(trial_id, None)
            self.state.retries += 1
            self._draw(self.clock())

    def on_trial_end(self, record: dict) -> None:
        with self._lock:
            now = self.clock()
            trial_id = record.get("trial_id", "")
            trial = self.state.running.pop(trial_id, None)
            spec = self.state.plan.pop(trial_id, None)
            if trial is not None:
                spent = now - trial.started
            else:  # never saw it start: fall back on the record's own timings
                spent = sum(float(record.get(k) or 0.0) for k in ("staging_s", "agent_s", "grading_s"))
            if trial is not None or spent > 0:
                self.state.durations.append(spent)
                group = (spec.agent, spec.tier) if spec else (record.get("agent"), record.get("tier"))
                self.state.group_durations.setdefault(group, []).append(spent)
            if record.get("status") == "failed":
                self.state.failed += 1
                self.state.last_failure = f"{trial_id}: {record.get('reason') or 'failed'}"
            else:
                self.state.done += 1
            self._draw(now, above=f"{outcome(record)}, {format_duration(spent)}")

    def on_sweep_end(self, records: Sequence[dict], interrupted: bool) -> None:
        self._stop.set()
        with self._lock:
            self.state.finished = True
            self.state.interrupted = interrupted
            self.state.running.clear()
            self._draw(self.clock(), force=True)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    # -- drawing ------------------------------------------------------------------------------
    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if not self.state.finished:
                    self._draw(self.clock())

    def _draw(self, now: float, force: bool = False, above: str = "") -> None:
        """Draws the view if due (or forced); `above` is a line printed now, above the view."""
        due = force or self._last_draw is None or now - self._last_draw >= self.interval
        if not due and not above:
            return
        if self.tty:  # the line scrolls away above; the view is redrawn below it
            size = shutil.get_terminal_size((120, 24))
            rows = max(size.lines - 4, 3)
            frame = render(self.state, now, width=size.columns - 1, max_rows=rows, eta=self._eta(now, due))
            if due or not self._shown:
                self._shown = [t.trial_id for t in sorted(self.state.running.values(),
                                                          key=lambda t: (t.started, t.trial_id))[:rows]]
            up = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else "\r"
            self.stream.write(up + _ANSI_CLEAR_TO_END + (above + "\n" if above else "") + frame + "\n")
            self._drawn_lines = frame.count("\n") + 1
        else:
            stamp = time.strftime("%H:%M:%S ")
            self.stream.write((stamp + above + "\n" if above else "")
                              + (stamp + render_line(self.state, now, self._eta(now, True)) + "\n" if due else ""))
        if due:
            self._last_draw = now
        self.stream.flush()


LiveProgress = ProgressCallback  # the name mleray.sweep uses

RAY_NAMESPACE = "mleray"
PUSH_EVERY_S = 2.0  # the progress actor is updated at most this often (and at the end)


def progress_actor_name(sweep: str) -> str:
    return f"progress:{sweep}"


class SweepProgress:
    """The named Ray actor holding a sweep's progress (counts, updated by the driver); its repr names
    the sweep in the dashboard."""

    def __init__(self, sweep: str):
        self.sweep = sweep
        self.state: Dict[str, Any] = {"sweep": sweep}

    def update(self, state: Dict[str, Any]) -> None:
        self.state = state

    def progress(self) -> Dict[str, Any]:
        return self.state

    def __repr__(self) -> str:
        return f"mleray sweep {self.sweep}"


def sweep_progress(sweep: str, timeout: float = 10.0) -> Dict[str, Any]:
    """The progress of the running sweep `sweep` on the connected cluster, from its progress actor:
    {"sweep", "total", "recorded", "failed", "running", "pending", "retries", "resumed", "finished",
    "interrupted", "elapsed_s"}. Raises ValueError when no such sweep runs."""
    import ray

    actor = ray.get_actor(progress_actor_name(sweep), namespace=RAY_NAMESPACE)
    state: Dict[str, Any] = ray.get(actor.progress.remote(), timeout=timeout)  # type: ignore[assignment]
    return state


class RayProgress(SweepCallback):
    """Mirrors the sweep's counts onto its progress actor (SweepProgress), at most every PUSH_EVERY_S
    and at the end, fire and forget: the driver never waits on it while trials run. The actor needs no
    CPU and stays on the driver's node (an autoscaler never holds a node up for it). If Ray refuses the
    actor, the sweep goes on without it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.actor: Any = None
        self.counts: Dict[str, Any] = {}
        self._started = 0.0
        self._pushed = -float("inf")

    def on_sweep_start(self, sweep: str, total: int, done: int) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._started = self.clock()
        if not ray.is_initialized():  # never start a Ray for it (a remote call would)
            return
        self.counts = {"sweep": sweep, "total": total, "recorded": done, "failed": 0, "running": 0,
                       "retries": 0, "resumed": done, "finished": False, "interrupted": False}
        cls = ray.remote(num_cpus=0, max_restarts=0)(SweepProgress)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        for name in (progress_actor_name(sweep), f"{progress_actor_name(sweep)}~{os.getpid()}-{id(self):x}"):
            try:
                self.actor = cls.options(name=name, namespace=RAY_NAMESPACE, scheduling_strategy=here).remote(sweep)
                break
            except ValueError:  # the name is held (a sweep of that name still ending): the second name
                continue
            except Exception as err:
                print(f"mleray: warning: no progress actor in Ray ({type(err).__name__}); the sweep goes on",
                      file=sys.stderr, flush=True)
                break
        self._push(force=True)

    def _push(self, force: bool = False) -> Any:
        now = self.clock()
        if self.actor is None or not (force or now - self._pushed >= PUSH_EVERY_S):
            return None
        self._pushed = now
        pending = max(self.counts["total"] - self.counts["recorded"] - self.counts["running"], 0)
        return self.actor.update.remote({**self.counts, "pending": pending,
                                         "elapsed_s": round(now - self._started, 1)})

    def on_trial_start(self, trial_id: str, attempt: int, node: str) -> None:
        if self.actor is None:
            return
        self.counts["running"] += 1
        self._push()

    def on_trial_retry(self, trial_id: str, attempt: int, reason: str) -> None:
        if self.actor is None:
            return
        self.counts["retries"] += 1
        self.counts["running"] = max(self.counts["running"] - 1, 0)
        self._push()

    def on_trial_end(self, record: dict) -> None:
        if self.actor is None:
            return
        self.counts["recorded"] += 1
        self.counts["failed"] += record.get("status") == "failed"
        self.counts["running"] = max(self.counts["running"] - 1, 0)
        self._push()

    def on_sweep_end(self, records: Sequence[dict], interrupted: bool) -> None:
        import ray

        if self.actor is None:
            return
        self.counts.update(finished=True, interrupted=interrupted, running=0)
        try:
            ray.get(self._push(force=True), timeout=5)
        except Exception:
            pass
        ray.kill(self.actor, no_restart=True)
        self.actor = None
