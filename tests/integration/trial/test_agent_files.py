"""The host never follows what an agent planted: a submission.csv that is a link to the private answers
(the attack that gave a two-line agent a perfect score), a FIFO, a directory, an oversized file."""

from __future__ import annotations

import os
import textwrap

import pytest

from mleray.config import load_sweep
from mleray.sweep.trials import TrialJob, expand
from mleray.trial.agent_files import AgentFileError, read_regular, refusal
from mleray.trial.runner import run_trial
from mleray.trial.snapshots import Snapshotter
from mleray.trial.staging import stage


def test_links_fifos_folders_and_huge_files_are_refused(tmp_path, monkeypatch):
    secret = tmp_path / "secret.csv"
    secret.write_text("PassengerId,Survived\n1,1\n")
    link, fifo, folder, regular = (tmp_path / "link.csv", tmp_path / "fifo.csv", tmp_path / "dir.csv",
                                   tmp_path / "ok.csv")
    link.symlink_to(secret)
    os.mkfifo(fifo)
    folder.mkdir()
    regular.write_text("a,b\n1,2\n")
    assert "symbolic link" in refusal(link) and "regular" in refusal(fifo) and "regular" in refusal(folder)
    assert refusal(regular) is None and refusal(tmp_path / "absent.csv") is None
    for bad in (link, fifo, folder):
        with pytest.raises(AgentFileError):
            read_regular(bad)  # returns at once: a FIFO is opened non-blocking
    assert read_regular(regular) == b"a,b\n1,2\n"
    assert "limit" in refusal(regular, max_bytes=3)
    with pytest.raises(AgentFileError, match="limit"):
        read_regular(regular, max_bytes=3)


def test_snapshots_skip_a_link_and_a_fifo(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("the answers\n")
    submission = tmp_path / "sub" / "submission.csv"
    submission.parent.mkdir()
    shots = Snapshotter(submission, tmp_path / "snaps", interval=3600, t0=0.0)
    (tmp_path / "snaps").mkdir()
    submission.symlink_to(secret)
    assert shots.take() is None
    submission.unlink()
    os.mkfifo(submission)
    assert shots.take() is None
    assert list((tmp_path / "snaps").iterdir()) == []
    submission.unlink()
    submission.write_text("PassengerId,Survived\n")
    assert shots.take() is not None


LINKING_AGENT = """
import os
os.symlink(os.environ["TARGET"], "/home/submission/submission.csv")
print("linked", flush=True)
"""


@pytest.mark.parametrize("target", ["answers", "root-only host file"])
def test_an_agent_linking_its_submission_to_the_answers_scores_nothing(tmp_path, monkeypatch, cache_dir,
                                                                       bwrap_path, target):
    prepared = stage("titanic")[0]
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    path = prepared.answers_path if target == "answers" else secret
    agents = tmp_path / "agents"
    (agents / "linker").mkdir(parents=True)
    (agents / "linker" / "agent.py").write_text(textwrap.dedent(LINKING_AGENT))
    (agents / "linker.yaml").write_text(f"code: linker\ncommand: [python3, /home/agent/agent.py]\n"
                                        f"env: {{TARGET: '{path}'}}\n")
    monkeypatch.setenv("MLERAY_AGENTS_DIR", str(agents))
    cfg = load_sweep(overrides=["agents=[linker]", "competitions=[titanic]", "seeds=1", "snapshot_interval=0.2",
                                "tiers.cpu.time_limit=20"])
    spec = expand(cfg, ["titanic"])[0]
    record = run_trial(TrialJob.of(cfg, spec, tmp_path / "sweep", "bwrap"))
    assert "linked" in (tmp_path / "sweep" / "trials" / spec.trial_id / "agent.log").read_text()
    assert record.score is None and not record.valid_submission and not record.any_medal
    assert not record.submission_exists and record.submission_path is None
    assert "symbolic link" in record.reason
    assert record.snapshots == []  # the link was never copied out
    folder = tmp_path / "sweep" / "trials" / spec.trial_id
    for file in folder.rglob("*"):
        if file.is_file() and not file.is_symlink():
            assert "secret-hash" not in file.read_text(errors="replace"), file
