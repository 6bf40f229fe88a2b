"""The Ray actor that holds one trial's resources on one node and runs the trial there.

Kept light on purpose: a worker process imports this module before the actor exists, so the heavy
parts (grading, sandboxes) load inside the trial, after the actor has answered the driver.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

import ray

from mleray.sweep.trials import TrialJob


@dataclass(frozen=True)
class TrialStatus:
    """A running trial's answer to the driver's `status()`: its node (ip, else id) and last log line."""

    node: str
    last_line: str


class TrialHost:
    """One trial's actor, the protocol the scheduler speaks: the trial starts in a thread the moment
    the actor exists (no round trip to the driver first, which costs a few hundred ms per trial),
    `status()` answers while it runs, `result()` waits for the record (or re-raises the trial's error).
    Tests and benchmarks subclass it and override `work()` to stand in for an agent."""

    def __init__(self, job: TrialJob):
        ctx = ray.get_runtime_context()
        self.node = (ctx.get_node_id(), ray.util.get_node_ip_address())
        self.last_line = ""
        self._done = threading.Event()
        self._record: Optional[dict] = None
        self._error: Optional[BaseException] = None
        threading.Thread(target=self._main, args=(job,), name="trial", daemon=True).start()

    def _main(self, job: TrialJob) -> None:
        try:
            self._record = self.work(job)
        except BaseException as err:  # handed to the driver by result()
            self._error = err
        finally:
            self._done.set()

    def _on_line(self, line: str) -> None:
        if line.strip():
            self.last_line = line[-200:]

    def work(self, job: TrialJob) -> dict:
        from mleray.trial.runner import run_trial  # here, not at import: the actor answers before pandas & co. load

        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        return run_trial(job, gpu_ids, self._on_line, self.node).to_dict()

    def status(self) -> TrialStatus:
        return TrialStatus(self.node[1] or self.node[0], self.last_line)

    def result(self) -> dict:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._record is not None  # work() returned (no error) before _done was set
        return self._record


# max_concurrency=2: result() blocks one thread while status() answers on the other.
TrialActor = ray.remote(max_restarts=0, max_concurrency=2)(TrialHost)  # type: ignore[call-overload]  # Ray's stubs lack max_concurrency
