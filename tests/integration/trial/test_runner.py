"""One trial through the real runner (no Ray): bwrap sandbox, outside validation, snapshots on
cadence, the time limit, and grading of the last submission."""

import json
import textwrap

import pytest

from mleray.config import load_sweep
from mleray.sweep.trials import TrialJob, expand
from mleray.trial.runner import run_trial

AGENT = """
import glob, os, shutil, subprocess, time, urllib.request
sample = glob.glob("/home/data/sample_submission*.csv")[0]
open("/home/submission/submission.csv", "w").write("PassengerId,Wrong\\n1,2\\n")
print(subprocess.run(["/home/validate_submission.sh", "/home/submission/submission.csv"],
                     capture_output=True, text=True).stdout, flush=True)
time.sleep(1.5)
shutil.copyfile(sample, "/home/submission/submission.csv")
req = urllib.request.Request("http://localhost:5000/validate", method="POST",
                             data=open(sample, "rb").read(), headers={"Content-Type": "text/csv"})
print("http:", urllib.request.urlopen(req, timeout=10).read().decode(), flush=True)
print(subprocess.run(["/home/validate_submission.sh", "/home/submission/submission.csv"],
                     capture_output=True, text=True).stdout, flush=True)
print("sleeping past the limit", flush=True)
time.sleep(600)
"""


@pytest.fixture
def slow_agent(tmp_path, monkeypatch):
    agents = tmp_path / "agents"
    (agents / "probe").mkdir(parents=True)
    (agents / "probe" / "agent.py").write_text(textwrap.dedent(AGENT))
    (agents / "probe.yaml").write_text("code: probe\ncommand: [python3, /home/agent/agent.py]\n")
    monkeypatch.setenv("MLERAY_AGENTS_DIR", str(agents))


def test_validation_snapshots_and_time_limit(tmp_path, slow_agent, bwrap_path):
    cfg = load_sweep(overrides=["agents=[probe]", "competitions=[titanic]", "seeds=1", "snapshot_interval=0.5",
                                "grace_period=1", "tiers.cpu.time_limit=6"])
    spec = expand(cfg, ["titanic"])[0]
    record = run_trial(TrialJob.of(cfg, spec, tmp_path / "sweep", "bwrap"))

    log = (tmp_path / "sweep" / "trials" / spec.trial_id / "agent.log").read_text()
    assert "Submission invalid!" in log and "Wrong" in log  # the reason names the bad column
    assert "Submission is valid." in log and "score" not in log.lower()
    assert 'http: {"result": "Submission is valid."' in log  # localhost:5000 answers from outside
    assert record.timed_out and "time limit" in record.reason
    assert 6 <= record.agent_s < 6 + 1 + 5  # limit + grace + slack
    assert record.valid_submission and record.score is not None  # the last submission is still graded
    snaps = record.snapshots
    assert len(snaps) == 2, snaps  # the bad file, then the sample (unchanged files are not re-snapshotted)
    assert snaps[0]["valid_submission"] is False and snaps[1]["valid_submission"] is True
    assert snaps[0]["elapsed_s"] < snaps[1]["elapsed_s"]
    saved = json.loads((tmp_path / "sweep" / "trials" / spec.trial_id / "result.json").read_text())
    assert saved["trial_id"] == spec.trial_id and saved["timed_out"]
