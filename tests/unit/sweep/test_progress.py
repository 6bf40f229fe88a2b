"""The live progress view: pure rendering on known states, and the callback in both modes."""

from __future__ import annotations

import io

from mleray.sweep.progress import (
    ProgressCallback,
    ProgressState,
    RunningTrial,
    eta_seconds,
    format_duration,
    render,
    render_line,
)


def _state() -> ProgressState:
    state = ProgressState(sweep="s1", total=10, done=3, failed=1, started=0.0, retries=1)
    state.running = {
        "dummy__titanic__cpu__s1": RunningTrial("dummy__titanic__cpu__s1", 0, "10.0.0.3", 100.0, "epoch 3 loss 0.41"),
        "baseline__house-prices__cpu__s1": RunningTrial("baseline__house-prices__cpu__s1", 1,
                                                        "a" * 56, 50.0, "fitting"),
    }
    state.durations = [60.0, 120.0]  # mean 90 s
    state.max_parallel = 2
    return state


def test_format_duration():
    assert format_duration(None) == "?"
    assert format_duration(0) == "0:00:00"
    assert format_duration(3661.4) == "1:01:01"
    assert format_duration(360000) == "100:00:00"


def test_eta_from_finished_durations():
    state = _state()
    # pending = 10 - 3 - 1 - 2 = 4 -> 4 * 90 = 360; running: 90-(160-100)=30, 90-(160-50)=0 -> 390 / 2
    assert state.pending == 4
    assert eta_seconds(state, now=160.0) == 195.0
    state.durations = []
    assert eta_seconds(state, now=160.0) is None
    assert eta_seconds(ProgressState(total=3, done=3), now=1.0) == 0.0


def test_render_known_state():
    text = render(_state(), now=160.0, width=200)
    lines = text.splitlines()
    assert lines[0] == ("[s1] 4/10 done, 1 failed, 2 running, 4 pending, 1 retried, "
                        "elapsed 0:02:40, ETA 0:03:15")
    # running trials, oldest first, with node (ids shortened to 8), elapsed and last log line
    assert lines[1].split() == ["baseline__house-prices__cpu__s1", "#1", "aaaaaaaa", "0:01:50", "fitting"]
    assert lines[2].split() == ["dummy__titanic__cpu__s1", "10.0.0.3", "0:01:00", "epoch", "3", "loss", "0.41"]
    assert len(lines) == 3


def test_render_clips_to_width_and_rows():
    state = _state()
    state.running["dummy__titanic__cpu__s1"].last_line = "x" * 500 + "\x1b[2J"
    for line in render(state, now=160.0, width=80).splitlines():
        assert len(line) <= 80
        assert "\x1b" not in line
    assert render(state, now=160.0, width=200, max_rows=1).splitlines()[-1] == "  … and 1 more running"


def test_render_line_finished_and_failure():
    state = ProgressState(sweep="s", total=2, done=1, failed=1, started=0.0, finished=True,
                          last_failure="t: actor died 3 times")
    assert render_line(state, 10.0) == ("[s] 2/2 done, 1 failed, 0 running, 0 pending, elapsed 0:00:10, "
                                        "ETA 0:00:00 (finished)")
    assert render(state, 10.0).splitlines()[-1] == "  last failure: t: actor died 3 times"


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _drive(cb: ProgressCallback, clock: _Clock) -> None:
    cb.on_sweep_start("s", total=3, done=1)
    clock.t = 1
    cb.on_trial_start("a", 0, "n1")
    cb.on_trial_start("b", 0, "n2")
    for i in range(100):  # a chatty agent
        clock.t = 1 + i * 0.01
        cb.on_trial_log("a", f"line {i}")
    clock.t = 11
    cb.on_trial_end({"trial_id": "a", "status": "graded"})
    clock.t = 12
    cb.on_trial_retry("b", 1, "node died")
    cb.on_trial_start("b", 1, "n1")
    clock.t = 40
    cb.on_trial_end({"trial_id": "b", "status": "failed", "reason": "actor died"})
    cb.on_sweep_end([], interrupted=False)


def test_plain_mode_prints_few_single_lines():
    out, clock = io.StringIO(), _Clock()
    cb = ProgressCallback(stream=out, interval=30, tty=False, clock=clock, ticker=False)
    _drive(cb, clock)
    lines = [line for line in out.getvalue().splitlines() if "[s] " in line]  # the status lines
    # start, one periodic line (t=40 is 30 s after the start line), end: not one line per event
    assert len(lines) == 3, lines
    # besides them only the resume summary at the start and one line per trial that ended
    assert len(out.getvalue().splitlines()) == 3 + 1 + 2
    assert "\x1b" not in out.getvalue()
    assert lines[0].endswith("[s] 1/3 done, 0 failed, 0 running, 2 pending, elapsed 0:00:00, ETA ?")
    assert lines[-1].endswith("3/3 done, 1 failed, 0 running, 0 pending, 1 retried, elapsed 0:00:40, "
                              "ETA 0:00:00 (finished)")
    assert cb.state.durations == [10.0, 28.0]


def test_tty_mode_redraws_in_place():
    out, clock = io.StringIO(), _Clock()
    cb = ProgressCallback(stream=out, interval=0.5, tty=True, clock=clock, ticker=False)
    _drive(cb, clock)
    text = out.getvalue()
    frames = text.split("\x1b[J")[1:]
    assert 3 <= len(frames) <= 10  # throttled: 100 log lines in one second are not 100 frames
    # every frame after the first moves the cursor back over the previous frame's lines
    assert text.count("\x1b[") >= 2 * len(frames) - 1
    assert "\x1b[2F" in text or "\x1b[3F" in text
    assert frames[-1].splitlines()[0].endswith("(finished)")


def test_ticker_thread_draws_while_idle():
    out = io.StringIO()
    cb = ProgressCallback(stream=out, interval=0.05, tty=False)
    cb.on_sweep_start("s", total=1, done=0)
    import time
    deadline = time.monotonic() + 10  # a loaded machine may be slow to schedule the ticker
    while len(out.getvalue().splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    cb.on_sweep_end([], interrupted=True)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3
    assert lines[-1].endswith("(interrupted)")
