"""CLI edges: `mleray grade` on inputs that are not there, `mleray logs --follow` on a trial that has not
started yet (it waits and then follows), a trial the sweep does not plan."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import ROOT

from mleray.cli import logs as logs_cli
from mleray.config import SweepConfig, TierConfig, to_yaml
from mleray.storage.backends import open_sweep_storage

TRIAL = "dummy__titanic__cpu__s0"


def _cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mleray", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, **kw)


@pytest.mark.parametrize("args, expected", [
    (["/nonexistent.csv", "titanic"], "error: submission file not found: /nonexistent.csv"),
    (["--jsonl", "/nonexistent.jsonl"], "error: submissions file not found: /nonexistent.jsonl"),
    (["/nonexistent.csv", "no-such-competition"], "error: submission file not found: /nonexistent.csv"),
])
def test_grade_on_missing_inputs_is_one_line_and_nonzero(args, expected):
    proc = _cli("grade", *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(expected) and proc.stderr.count("\n") == 1


def test_grade_unknown_competition_is_one_line(tmp_path):
    sub = tmp_path / "s.csv"
    sub.write_text("id,y\n1,0\n")
    proc = _cli("grade", str(sub), "no-such-competition")
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown competition 'no-such-competition'")
    assert proc.stderr.count("\n") == 1


@pytest.fixture(params=["path", "uri"])
def root(request, tmp_path) -> str:
    return str(tmp_path / "runs") if request.param == "path" else f"file://{tmp_path}/runs"


def _later(storage_root: str, trial_dir_first: bool, err: io.StringIO):
    """Once the command says it waits (not after a fixed sleep: opening a URI's storage can take longer than
    that on a loaded machine): the sweep starts, the trial writes three lines, then its record lands."""
    def run():
        deadline = time.monotonic() + 60
        while "waiting for trial" not in err.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        storage = open_sweep_storage(storage_root, "sw")
        if trial_dir_first:
            storage.write_file(f"trials/{TRIAL}/other.txt", "")
            time.sleep(0.3)
        text = ""
        for line in ("one\n", "two\n", "three\n"):
            text += line
            storage.write_file(f"trials/{TRIAL}/agent.log", text)
            time.sleep(0.1)
        time.sleep(0.2)
        storage.append_line(json.dumps({"trial_id": TRIAL, "status": "graded", "score": 0.5}))
    return threading.Thread(target=run, daemon=True)


@pytest.mark.parametrize("sweep_exists, trial_dir_first", [(False, False), (True, False), (True, True)])
def test_follow_waits_for_a_trial_to_start(root, sweep_exists, trial_dir_first):
    if sweep_exists:
        open_sweep_storage(root, "sw").write_file("trials/baseline__titanic__cpu__s0/agent.log", "x\n")
    out, err = io.StringIO(), io.StringIO()
    writer = _later(root, trial_dir_first, err)
    writer.start()
    code = logs_cli.main(["sw", TRIAL, "--storage", root, "--follow", "--poll", "0.05"], out=out, err=err)
    writer.join()
    assert code == 0 and out.getvalue() == "one\ntwo\nthree\n"
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"mleray logs: waiting for trial {TRIAL} to start")
    assert "graded" in lines[1]


def test_without_follow_a_trial_not_started_is_one_line(root):
    storage = open_sweep_storage(root, "sw")
    out, err = io.StringIO(), io.StringIO()
    storage.write_file(f"trials/{TRIAL}/other.txt", "")
    assert logs_cli.main(["sw", TRIAL, "--storage", root], out=out, err=err) == 1
    assert err.getvalue().count("\n") == 1 and "--follow" in err.getvalue()


def test_a_trial_the_sweep_does_not_plan_is_an_error_even_when_following(root):
    storage = open_sweep_storage(root, "sw")
    cfg = SweepConfig(name="sw", competitions=["titanic"], agents=["dummy"], seeds=1, tiers={"cpu": TierConfig()})
    storage.write_file("config.yaml", to_yaml(cfg))
    err = io.StringIO()
    code = logs_cli.main(["sw", "baseline__titanic", "--storage", root, "--follow"], out=io.StringIO(), err=err)
    assert code == 2 and err.getvalue() == (f"mleray logs: no trial matches 'baseline__titanic' in sweep 'sw' "
                                            f"(its config plans: {TRIAL})\n")
    err = io.StringIO()
    assert logs_cli.main(["sw", "dummy", "--storage", root], out=io.StringIO(), err=err) == 1  # planned, not started
    assert "has not written a log yet" in err.getvalue()


def test_follow_cli_waits_then_prints_new_lines(tmp_path):
    """The real command in a subprocess: it waits, the log appears, the lines written later are printed,
    and Ctrl-C stops it."""
    root = tmp_path / "runs"
    # SIGINT's default restored in the child: a test run started in the background of a shell ignores it,
    # and a Python started with it ignored would never raise KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "mleray", "logs", "sw", TRIAL, "--storage", str(root), "--follow",
                             "--poll", "0.05"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    guard = threading.Timer(60, proc.kill)
    guard.start()
    try:
        assert proc.stderr.readline().startswith(f"mleray logs: waiting for trial {TRIAL} to start")
        log = root / "sw" / "trials" / TRIAL / "agent.log"
        log.parent.mkdir(parents=True)
        log.write_text("first\n")
        assert proc.stdout.readline() == "first\n"
        with open(log, "a") as f:
            f.write("second\n")
        assert proc.stdout.readline() == "second\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        assert "Traceback" not in proc.stderr.read()
    finally:
        guard.cancel()
        proc.kill()
        proc.wait()
