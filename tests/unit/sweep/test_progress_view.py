"""The live view on synthetic events and a fake clock (no Ray): an ETA per (agent, tier) group, one
line per trial as it ends, and at the start how many trials were resumed."""

import io

from mleray.config import TierConfig
from mleray.sweep.progress import ProgressCallback, eta_seconds
from mleray.sweep.trials import TrialSpec


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _spec(agent: str, competition: str, tier: str, time_limit: float) -> TrialSpec:
    return TrialSpec("s", agent, competition, tier, 0, TierConfig(time_limit=time_limit))


def test_eta_per_agent_and_tier():
    # two at a time: six quick trials (10 s each) and three that use their whole 300 s time limit
    quick = [_spec("dummy", f"q{i}", "cpu", 60) for i in range(6)]
    slow = [_spec("baseline", f"l{i}", "long", 300) for i in range(3)]
    clock = _Clock()
    cb = ProgressCallback(stream=io.StringIO(), tty=False, clock=clock, ticker=False)
    cb.on_sweep_plan(quick + slow)
    cb.on_sweep_start("s", total=9, done=0)

    def start(t, spec):
        clock.t = t
        cb.on_trial_start(spec.trial_id, 0, "n")

    def end(t, spec):
        clock.t = t
        cb.on_trial_end({"trial_id": spec.trial_id, "status": "graded"})

    start(0, slow[0])
    for i, spec in enumerate(quick):
        start(10 * i, spec)
        end(10 * i + 10, spec)
    start(60, slow[1])
    # t=60: l0 has run 60 s, l1 starts, l2 waits; in truth l0 ends at 300, l1 at 360, l2 (after l0) at 600.
    # The mean of all finished trials (10 s) would say 10 s; no slow one has finished, so its time limit counts.
    assert eta_seconds(cb.state, 60.0) == (240 + 300 + 300) / 2
    end(300, slow[0])
    start(300, slow[2])
    # t=300: the slow group's observed 300 s; l2 alone still needs all of it (the mean would say 26 s)
    assert eta_seconds(cb.state, 300.0) == 300.0


def _drive(cb: ProgressCallback, clock: _Clock) -> None:
    cb.on_sweep_start("s", total=12, done=4)
    cb.on_trial_start("a", 0, "n1")
    clock.t = 75
    cb.on_trial_end({"trial_id": "a", "status": "graded", "score": 0.77, "bronze_medal": True,
                     "valid_submission": True})
    cb.on_trial_start("b", 0, "n1")
    clock.t = 80
    cb.on_trial_end({"trial_id": "b", "status": "graded", "reason": "no submission.csv"})
    cb.on_trial_end({"trial_id": "c", "status": "failed", "attempt": 1, "reason": "actor died", "agent_s": 7.0})
    cb.on_sweep_end([], interrupted=False)


RESULTS = ["trial a finished: graded, score 0.77, bronze medal, 0:01:15",
           "trial b finished: graded, reason: no submission.csv, 0:00:05",
           "trial c finished: failed, attempt 1, reason: actor died, 0:00:07"]


def test_plain_mode_says_resumed_and_each_result():
    out, clock = io.StringIO(), _Clock()
    _drive(ProgressCallback(stream=out, interval=30, tty=False, clock=clock, ticker=False), clock)
    lines = [line[len("HH:MM:SS "):] for line in out.getvalue().splitlines()]
    assert lines[0] == "mleray: 12 trials: 4 already recorded (resumed), 8 to run"
    assert lines[1].startswith("[s] 4/12 done")
    assert [line for line in lines if line.startswith("trial ")] == RESULTS
    assert lines[-1].endswith("(finished)")


def test_tty_mode_prints_results_above_the_view():
    out, clock = io.StringIO(), _Clock()
    _drive(ProgressCallback(stream=out, interval=0.5, tty=True, clock=clock, ticker=False), clock)
    frames = out.getvalue().split("\x1b[J")[1:]
    assert frames[0].splitlines()[:2] == ["mleray: 12 trials: 4 already recorded (resumed), 8 to run",
                                         "[s] 4/12 done, 0 failed, 0 running, 8 pending, elapsed 0:00:00, ETA ?"]
    ended = [f.splitlines() for f in frames if f.startswith("trial ")]
    assert [f[0] for f in ended] == RESULTS
    assert all(f[1].startswith("[s] ") for f in ended)  # the view, redrawn under each result
    assert "7/12 done" in ended[-1][1]


def test_fresh_sweep_says_how_many_to_run():
    out = io.StringIO()
    ProgressCallback(stream=out, tty=False, clock=_Clock(), ticker=False).on_sweep_start("s", total=3, done=0)
    assert out.getvalue().splitlines()[0].endswith(" mleray: 3 trials to run")
