"""Trial launchers: the Ray actors that create, own, watch and kill the trial actors, so the driver does not.

Ray's owner of an actor (the process that created it) pays for it: about 10 ms of CPU per actor on a
2-core machine, more as actors accumulate, and tens of KiB of memory its core worker keeps for good
(bench/results/driver_scale.md). Were the driver the owner, a 10,000-trial sweep would cost it minutes of
CPU and hundreds of MiB, and a 100,000-trial one gigabytes. So the driver owns only a `TrialLauncher`
(an async actor with no resources of its own, on the driver's node) and speaks to it in batches: one call
hands it the trials a scheduler turn launches, one long poll at a time brings back everything that
happened (a trial started on a node, a log line asked for, a trial ended). A launcher is retired after
LAUNCHES_PER_LAUNCHER trials and killed once its last trial has ended, which frees what Ray kept for its
actors; a new one takes the next launches. A trial's actor dies with its launcher (Ray's fate sharing), so
Ctrl-C, a driver that dies, and a launcher that dies all leave no trial running; a launcher's death ends
its trials as deaths, which the scheduler retries.

`RayLaunchers` is the driver's side: what the scheduler calls (`launch`, `ask`, `send`, `events`,
`stop`). Events are tuples: ("start", key, node), ("line", key, last log line), ("end", key, record, failure)
with `failure` None or (kind, reason) from `classify`.
"""

from __future__ import annotations

import asyncio
import queue
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import ray
from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

from mleray.errors import one_line

LAUNCHES_PER_LAUNCHER = 1000  # trials a launcher creates before a new one takes over (bounds its memory)
POLL_S = 30.0  # a long poll returns after this long even with nothing to say
GATHER_S = 1.0  # once something happened, what else happens this soon comes back in the same answer
# Deaths of the actor's process or node: the trial is retried on any node.
RETRYABLE = (RayActorError, WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError)

Failure = Tuple[str, str]  # ("died" | "raised" | "ray", one line saying why)


def few_malloc_arenas(arenas: int = 2) -> None:
    """Caps glibc's malloc arenas for this process (what MALLOC_ARENA_MAX does, set from inside it). Ray's
    dozens of native threads each get an arena by default, and what they free is stranded there: a driver
    grew by 7.5 KiB of RSS per trial with the default and by 0.7 KiB with 2 arenas (bench/results/
    driver_scale.md). The driver calls it before Ray's threads start; a launcher, whose worker has started them
    already, caps the arenas made from then on. A no-op where libc is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def take_all(arrived: "queue.SimpleQueue", timeout: float) -> list:
    """Everything in the queue, waiting up to `timeout` for a first item ([] if none came)."""
    try:
        items = [arrived.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            items.append(arrived.get_nowait())
        except queue.Empty:
            return items


def classify(err: BaseException) -> Failure:
    """Why a trial's actor gave no record, in the scheduler's terms: its process or node died ("died",
    retried), the trial raised inside mleray ("raised"), or Ray failed otherwise ("ray")."""
    if isinstance(err, RETRYABLE):
        return "died", one_line(err, last=True)
    if isinstance(err, RayTaskError):
        return "raised", one_line(err, last=True)
    if isinstance(err, ray.exceptions.RayError):  # its result lost, its runtime env failed: Ray's, not the agent's
        return "ray", f"{type(err).__name__}: {one_line(err, last=True)}"
    return "raised", f"{type(err).__name__}: {one_line(err, last=True)}"


class TrialLauncher:
    """Creates the trial actors it is handed, reports their start, log lines and end, and kills each when it
    ends. Async: every trial is a task on one event loop, so a launcher watches thousands at once."""

    def __init__(self, actor_cls: Any):
        few_malloc_arenas()
        self._actor_cls = actor_cls
        self._events: List[tuple] = []
        self._ready = asyncio.Event()
        self._actors: Dict[int, Any] = {}
        self._tasks: set = set()

    def _say(self, *event: Any) -> None:
        self._events.append(event)
        self._ready.set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def launch(self, batch: List[tuple]) -> None:
        """Creates an actor for each (key, job, options) and watches it."""
        for key, job, options in batch:
            self._spawn(self._run(key, job, options))

    def _create(self, job: Any, options: Dict[str, Any]) -> Any:
        try:
            return self._actor_cls.options(**options).remote(job)
        except ValueError:  # the name is still held (an actor of this name not yet gone): a unique suffix
            import uuid

            options = {**options, "name": f"{options['name']}~{uuid.uuid4().hex[:6]}"}
            return self._actor_cls.options(**options).remote(job)

    async def _run(self, key: int, job: Any, options: Dict[str, Any]) -> None:
        """One trial, from its actor's creation to its "end" event, which is said whatever happens here."""
        record: Optional[dict] = None
        failure: Optional[Failure] = ("ray", "the launcher lost the trial")  # replaced unless something breaks
        try:
            actor = self._create(job, options)
        except Exception as err:  # Ray refused the actor (bad options, no cluster): the trial failed, not us
            self._say("end", key, None, ("ray", f"cannot create the trial's actor: {one_line(err, last=True)}"))
            return
        self._actors[key] = actor
        try:
            result = actor.result.remote()
            try:
                answer = await actor.status.remote()  # answers as soon as the actor exists: the trial runs
                self._say("start", key, answer.node)
            except Exception:
                pass  # the actor died first: its result says why
            try:
                record, failure = await result, None
            except Exception as err:
                failure = classify(err)
        finally:
            self._actors.pop(key, None)
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass  # gone already
            self._say("end", key, record, failure)

    async def ask(self, keys: List[int]) -> None:
        """Asks these running trials for their last log line (answered as "line" events)."""
        for key in keys:
            actor = self._actors.get(key)
            if actor is None:
                self._say("line", key, "")
            else:
                self._spawn(self._line(key, actor))

    async def _line(self, key: int, actor: Any) -> None:
        try:
            answer = await actor.status.remote()
            line = answer.last_line
        except Exception:
            line = ""  # ended meanwhile: its end event follows
        self._say("line", key, line)

    async def events(self, poll_s: float = POLL_S, gather_s: float = GATHER_S) -> List[tuple]:
        """What happened since the last call: waits up to poll_s for something, then gather_s for more."""
        if not self._events:
            try:
                await asyncio.wait_for(self._ready.wait(), poll_s)
            except asyncio.TimeoutError:
                return []
        await asyncio.sleep(gather_s)
        events, self._events = self._events, []
        self._ready.clear()
        return events

    async def stop(self) -> int:
        """Kills every trial actor still running (their sandboxes die with them); how many."""
        actors = list(self._actors.values())
        for actor in actors:
            ray.kill(actor, no_restart=True)
        return len(actors)


RemoteLauncher = ray.remote(num_cpus=0, max_restarts=0)(TrialLauncher)


@dataclass
class _Launcher:
    handle: Any
    running: set = field(default_factory=set)  # keys of its trials not yet ended
    launched: int = 0
    poll: Optional[Any] = None  # its events() call in flight
    asks: List[int] = field(default_factory=list)


class RayLaunchers:
    """The driver's side of the launchers: batches launches and asks per scheduler turn, keeps one long
    poll per live launcher, and turns a launcher's death into "end" events for each of its trials."""

    launcher_actor: Any = RemoteLauncher  # a benchmark may pass a subclass that reports its own usage

    def __init__(self, actor_cls: Any, per_launcher: int = LAUNCHES_PER_LAUNCHER):
        self._actor_cls = actor_cls
        self._per_launcher = per_launcher
        self._active: Optional[_Launcher] = None
        self._live: List[_Launcher] = []
        self._where: Dict[int, _Launcher] = {}
        self._batch: List[tuple] = []
        self._next_key = 0
        self._arrived: "queue.SimpleQueue[Tuple[_Launcher, Any]]" = queue.SimpleQueue()

    def _new_launcher(self) -> _Launcher:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()  # the driver's node: it lives as long as the driver
        pinned = NodeAffinitySchedulingStrategy(here, soft=False)
        handle = self.launcher_actor.options(scheduling_strategy=pinned).remote(self._actor_cls)
        launcher = _Launcher(handle)
        self._live.append(launcher)
        return launcher

    def launch(self, job: Any, options: Dict[str, Any]) -> int:
        """Queues a trial for this turn's send(); its key names it in the events."""
        if self._active is None or self._active.launched >= self._per_launcher:
            self._send_batch()
            self._active = self._new_launcher()
        key, self._next_key = self._next_key, self._next_key + 1
        self._batch.append((key, job, options))
        self._active.launched += 1
        self._active.running.add(key)
        self._where[key] = self._active
        return key

    def ask(self, keys: List[int]) -> None:
        """Queues a request for these running trials' last log lines for this turn's send()."""
        for key in keys:
            launcher = self._where.get(key)
            if launcher is not None:
                launcher.asks.append(key)

    def _send_batch(self) -> None:
        if self._batch and self._active is not None:
            self._active.handle.launch.remote(self._batch)
            self._batch = []

    def send(self) -> None:
        """Hands the launchers this turn's launches and asks, and keeps a poll on each launcher with trials."""
        self._send_batch()
        for launcher in self._live:
            if launcher.asks:
                launcher.handle.ask.remote(launcher.asks)
                launcher.asks = []
            if launcher.poll is None and launcher.running:
                ref = launcher.handle.events.remote()
                launcher.poll = ref
                ref.future().add_done_callback(lambda _, launcher=launcher, ref=ref: self._arrived.put((launcher, ref)))

    def events(self, timeout: float) -> List[tuple]:
        """Everything the launchers reported since the last call, waiting up to `timeout` for a first."""
        events: List[tuple] = []
        for launcher, ref in take_all(self._arrived, timeout):
            launcher.poll = None
            try:
                answer = ray.get(ref)
            except ray.exceptions.RayError as err:  # the launcher died: so did its trials; new ones go elsewhere
                answer = [("end", key, None, ("died", f"its launcher died: {one_line(err, last=True)}"))
                          for key in sorted(launcher.running)]
                launcher.running.clear()
                if launcher is self._active:
                    self._active = None
            for event in answer:
                if event[0] == "end":
                    launcher.running.discard(event[1])
                    self._where.pop(event[1], None)
            events.extend(answer)
            self._retire_if_done(launcher)
        return events

    def _retire_if_done(self, launcher: _Launcher) -> None:
        if launcher is not self._active and not launcher.running and launcher.poll is None and launcher in self._live:
            self._live.remove(launcher)
            self._kill(launcher)

    def _kill(self, launcher: _Launcher) -> None:
        ray.kill(launcher.handle, no_restart=True)

    def stop(self) -> None:
        """Kills every trial still running, then the launchers."""
        stops = [launcher.handle.stop.remote() for launcher in self._live]
        try:
            ray.wait(stops, num_returns=len(stops), timeout=10)
        finally:
            self.close()
            self._where, self._batch = {}, []

    def close(self) -> None:
        """Kills the launchers (of a finished sweep: their trials have all ended; else they die with them)."""
        for launcher in self._live:
            self._kill(launcher)
        self._live, self._active = [], None
