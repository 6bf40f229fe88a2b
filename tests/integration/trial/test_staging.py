"""Node-local staging: prepared once per node, concurrent trials wait instead of failing, versioned,
and pre-staged on every node of a (multi-node, in-process) Ray cluster."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from mleray.trial import staging

CONFIG = """id: {id}
name: Slow fake
metric: accuracy
id_column: id
target_columns: [y]
sample_submission: sample_submission.csv
answers: answers.csv
version: "1"
"""

PREPARE = """import os, time
from pathlib import Path

def prepare(public, private):
    with open(os.environ["FAKE_PREPARE_LOG"], "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    time.sleep({sleep})
    (Path(public) / "train.csv").write_text("id,x,y\\n1,0,1\\n")
    (Path(public) / "sample_submission.csv").write_text("id,y\\n2,0\\n")
    (Path(private) / "answers.csv").write_text("id,y\\n2,1\\n")
"""


def make_competition(root: Path, cid: str, sleep: float = 1.0) -> Path:
    folder = root / cid
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG.format(id=cid))
    (folder / "prepare.py").write_text(PREPARE.format(sleep=sleep))
    (folder / "description.md").write_text(f"# {cid}\n")
    return folder


@pytest.fixture
def fake(tmp_path, monkeypatch):
    comps = tmp_path / "competitions"
    make_competition(comps, "slow-fake", sleep=1.0)
    log = tmp_path / "prepare.log"
    monkeypatch.setenv("MLERAY_COMPETITIONS_DIR", str(comps))
    monkeypatch.setenv("MLERAY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_PREPARE_LOG", str(log))
    return {"comps": comps, "log": log, "cache": tmp_path / "cache"}


def _prepare_calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_stage_once_then_fast(fake):
    prepared, staged = staging.stage("slow-fake")
    assert staged.prepared_here and staged.seconds >= 1.0
    assert (prepared.public_dir / "sample_submission.csv").is_file()
    assert not (prepared.public_dir / "answers.csv").exists()
    again, staged2 = staging.stage("slow-fake")
    assert not staged2.prepared_here and staged2.seconds < 0.5 and again.public_dir == prepared.public_dir
    assert _prepare_calls(fake["log"]) == 1
    [manifest] = staging.status()
    assert manifest["competition_id"] == "slow-fake" and manifest["current"]
    assert manifest["version"] == Path(prepared.public_dir).parent.name


def _stage_in_child(queue) -> None:
    _, staged = staging.stage("slow-fake")
    queue.put((staged.prepared_here, staged.waited_s))


def test_concurrent_trials_wait_for_one_staging(fake):
    queue = multiprocessing.get_context("spawn").Queue()
    procs = [multiprocessing.get_context("spawn").Process(target=_stage_in_child, args=(queue,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [queue.get(timeout=5) for _ in procs]
    assert _prepare_calls(fake["log"]) == 1  # prepared once on this node
    assert sum(here for here, _ in results) == 1
    # the others waited on the lock rather than failing (those that arrived after it finished did not wait)
    assert all(p.exitcode == 0 for p in procs)


def test_timeout_while_another_stages(fake):
    import fcntl

    (fake["cache"] / staging.STAGING).mkdir(parents=True)
    notes = []
    with open(fake["cache"] / staging.STAGING / "slow-fake.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        t0 = time.monotonic()
        with pytest.raises(staging.StagingTimeout, match="slow-fake"):
            staging.stage("slow-fake", timeout=0.5, on_wait=notes.append)
        assert 0.5 <= time.monotonic() - t0 < 3
    assert notes and "waiting for competition 'slow-fake'" in notes[0]
    assert _prepare_calls(fake["log"]) == 0


def test_new_version_restages(fake):
    first, _ = staging.stage("slow-fake")
    prepare_py = fake["comps"] / "slow-fake" / "prepare.py"
    prepare_py.write_text(prepare_py.read_text().replace("time.sleep(1.0)", "time.sleep(0.1)"))
    assert not staging.status()[0]["current"]  # the staged data are stale now
    second, staged = staging.stage("slow-fake")
    assert staged.prepared_here and second.public_dir != first.public_dir
    assert staging.status()[0]["current"]
    assert _prepare_calls(fake["log"]) == 2


def test_unknown_competition_is_a_clear_error(fake):
    from mleray.competitions import CompetitionError

    with pytest.raises(CompetitionError, match="unknown competition 'nope'"):
        staging.stage("nope")
    [result] = staging.stage_many(["nope"])
    assert "unknown competition" in result["error"]


def test_warm_cli(fake, capsys):
    assert staging.main(["warm", "slow-fake"]) == 0
    assert staging.main(["warm", "slow-fake", "nope"]) == 1
    out = capsys.readouterr().out
    assert "slow-fake" in out and "prepared" in out and "ready" in out and "nope" in out and "FAILED" in out
    assert staging.main(["status"]) == 0
    assert "current" in capsys.readouterr().out


@pytest.mark.slow
def test_stage_on_every_node(fake, tmp_path):
    """Three nodes (one without CPUs, like cluster.yaml's head): both workers stage; the shared
    disk here stands in for each node's own disk, so one prepares and the other waits or finds it."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        workers = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1, num_gpus=2)]
        ray.init(address=cluster.address, runtime_env={"env_vars": {
            k: os.environ[k] for k in ("MLERAY_COMPETITIONS_DIR", "MLERAY_CACHE_DIR", "FAKE_PREPARE_LOG")}})
        cluster.wait_for_nodes()
        results = staging.stage_on_nodes(["slow-fake"])
        assert set(results) == {w.node_id for w in workers}  # not the CPU-less head
        flat = [r for rs in results.values() for r in rs]
        assert all("error" not in r for r in flat), flat
        assert sum(r["prepared_here"] for r in flat) == 1
        assert _prepare_calls(fake["log"]) == 1
    finally:
        ray.shutdown()
        cluster.shutdown()
