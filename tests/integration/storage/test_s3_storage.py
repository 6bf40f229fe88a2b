"""Sweeps on an object store, end to end.

No cloud account exists here, so moto's S3 server (`moto.server.ThreadedMotoServer`, in a thread of
the test process) is the named stand-in for S3: pyarrow's real S3 filesystem talks to it over HTTP
as it would to AWS, and the sweep's Ray workers reach it the same way. Covered: the periodic agent.log
mirror, a trial's scratch folder uploaded (also when it fails) and removed, a whole sweep with
`storage=s3://...` (records once each, trial folders and report in the bucket, nothing left in the
node-local scratch), a resume that re-runs nothing already recorded, and a bad URI's one-line error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import AWS_ENV, moto_s3

from mleray.storage.backends import PARTS, open_location, open_sweep_storage
from mleray.sweep import driver as sweep
from mleray.trial.folder import LogMirror, trial_folder


@pytest.fixture
def s3_root(monkeypatch):
    """An s3:// storage root on a fresh moto server; AWS credentials set before anything (Ray) starts."""
    yield from moto_s3(monkeypatch, "mleray-test/runs")


def test_log_mirror_shows_a_growing_log(s3_root, tmp_path):
    storage = open_sweep_storage(s3_root, "mirror")
    assert storage.local_path is None and storage.location.startswith("s3://mleray-test/runs/mirror?")
    log = tmp_path / "agent.log"
    seen = b""
    with LogMirror(storage, log, "trials/t/agent.log", every=0.1):
        for i in range(3):
            with open(log, "a") as f:
                f.write(f"line {i}\n")
            deadline = time.monotonic() + 10
            while f"line {i}".encode() not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
                seen += storage.read_from("trials/t/agent.log", len(seen))
    assert seen == b"line 0\nline 1\nline 2\n"


def test_trial_folder_uploads_and_cleans_scratch(s3_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MLERAY_SCRATCH_DIR", str(tmp_path / "scratch"))
    location = open_sweep_storage(s3_root, "tf").location
    folded = str(Path(location))  # what an actor that wraps the location in Path() hands over
    with trial_folder(folded, "tf", "t1", mirror_every=0.1) as root:
        assert root == tmp_path / "scratch" / "tf" / "t1"
        (root / "submission").mkdir(parents=True)
        (root / "submission" / "submission.csv").write_text("id,y\n1,0\n")
        (root / "agent.log").write_text("hello\n")
    with pytest.raises(RuntimeError, match="agent broke"):
        with trial_folder(location, "tf", "t2") as root:
            root.mkdir(parents=True)
            (root / "agent.log").write_text("about to fail\n")
            raise RuntimeError("agent broke")
    storage = open_location(location)
    assert storage.read_file("trials/t1/submission/submission.csv") == b"id,y\n1,0\n"
    assert storage.read_file("trials/t2/agent.log") == b"about to fail\n"  # kept: it says why
    assert not (tmp_path / "scratch").exists() or not any((tmp_path / "scratch").iterdir())


def test_bad_storage_uri_is_one_line_exit_2(capsys, bwrap_path):
    code = sweep.main(["storage=nosuchscheme://bucket/x", "competitions=[titanic]", "agents=[dummy]",
                       "sandbox=bwrap"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mleray: cannot open storage 'nosuchscheme://bucket/x'")
    assert len(err.strip().splitlines()) == 1


def _sweep(root: str, seeds: int, env: dict, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mleray.sweep", *flags, "name=s3sweep", f"storage={root}",
               "competitions=[titanic]", "agents=[dummy]", f"seeds={seeds}", "sandbox=bwrap",
               "tiers.cpu.memory_gb=1", "ray.num_cpus=2"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_sweep_on_s3_end_to_end_and_resume(s3_root, tmp_path, bwrap_path):
    scratch = tmp_path / "scratch"
    env = {**os.environ, **AWS_ENV, "MLERAY_SCRATCH_DIR": str(scratch)}
    first = _sweep(s3_root, 1, env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "report at s3://mleray-test/runs/s3sweep/report/report.md" in first.stdout
    storage = open_sweep_storage(s3_root, "s3sweep")
    before = [json.loads(line) for line in storage.read_file("trials.jsonl").decode().splitlines()]
    assert [r["trial_id"] for r in before] == ["dummy__titanic__cpu__s0"]

    second = _sweep(s3_root, 2, env, "--allow-config-change")  # resume with one more seed: s0 is not re-run
    assert second.returncode == 0, second.stderr[-3000:]
    lines = storage.read_file("trials.jsonl").decode().splitlines()  # compacted: every record in one object
    records = [json.loads(line) for line in lines]
    assert [r["trial_id"] for r in records] == ["dummy__titanic__cpu__s0", "dummy__titanic__cpu__s1"]
    assert records[0] == before[0]
    assert storage.list_dir(PARTS) == []
    for r in records:
        assert r["status"] == "graded" and r["valid_submission"], r["reason"]
        assert r["submission_path"] == f"trials/{r['trial_id']}/submission/submission.csv"
        folder = f"trials/{r['trial_id']}"
        assert json.loads(storage.read_file(f"{folder}/result.json"))["trial_id"] == r["trial_id"]
        assert storage.size(f"{folder}/agent.log") is not None
        assert storage.read_file(r["submission_path"]).startswith(b"PassengerId")
    assert storage.size("report/report.md") and storage.size("config.yaml")
    assert not scratch.exists() or not any(scratch.iterdir())
