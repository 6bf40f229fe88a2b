"""MLE-bench data is staged into the node cache before a trial uses it: the public folder under
`<cache>/<id>/mlebench-<version>/public`, the answers in the cache's root-only answers area, never beside
the public folder (issue 13: the public folder's host path is readable in /proc/self/mountinfo)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mleray.competitions import cache
from mleray.mlebench import catalog, data
from mleray.trial.staging import stage


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path / "mle-bench-data"))
    monkeypatch.setenv("MLERAY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(data.ENV_DATA_URI, raising=False)
    old = os.umask(0o022)
    yield tmp_path / "mle-bench-data", tmp_path / "cache"
    os.umask(old)


def prepare(data_root: Path, cid: str, answers: str = "id,y\n1,1\n"):
    """A folder as `mlebench prepare` leaves it (public/ beside private/)."""
    comp = catalog.get(cid)
    public, private = data_root / cid / "prepared" / "public", data_root / cid / "prepared" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    (public / "description.md").write_text("# task\n")
    (public / "train.csv").write_text("id,y\n0,0\n")
    sample = (public / comp.sample_submission).resolve()
    sample.write_text("id,y\n1,0\n")
    (private / comp.answers.split("/")[-1]).write_text(answers)
    return comp


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_answers_root_only_and_not_derivable_from_public(dirs):
    data_root, root = dirs
    comp = prepare(data_root, "leaf-classification")
    prepared, staged = stage(comp.id)
    public, private = prepared.public_dir, prepared.private_dir
    assert staged.prepared_here and public.relative_to(root).parts[0] == "leaf-classification"
    assert public.parent.name.startswith("mlebench-local-") and public.name == "public"
    assert sorted(p.name for p in public.iterdir()) == ["description.md", "sample_submission.csv", "train.csv"]
    assert sorted(p.name for p in public.parent.iterdir()) == [cache.DONE, "public", "stage_seconds.txt"]
    answers_folder = private.parents[2]
    assert answers_folder.parent == root / cache.ANSWERS and answers_folder.name not in str(public)
    assert _mode(answers_folder.parent) == 0o700 and _mode(answers_folder) == 0o700
    for path in answers_folder.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    # The official grader's data dir is the answers folder: <data_dir>/<id>/prepared/private/<answers>.
    assert answers_folder / comp.id / "prepared" / "private" / comp.answers == prepared.answers_path
    assert prepared.answers_path.read_text() == "id,y\n1,1\n"
    # Staged once: the second call finds it, nothing copied again.
    again, second = stage(comp.id)
    assert again == prepared and not second.prepared_here


def test_a_changed_preparation_stages_afresh(dirs):
    data_root, root = dirs
    comp = prepare(data_root, "leaf-classification")
    first = stage(comp.id)[0]
    (data_root / comp.id / "prepared" / "private" / "test.csv").write_text("id,y\n1,0\n2,1\n")
    second = stage(comp.id)[0]
    assert second.public_dir != first.public_dir and second.private_dir != first.private_dir
    assert second.answers_path.read_text() == "id,y\n1,0\n2,1\n"


def test_public_only_leaves_the_answers_to_grading(dirs):
    data_root, root = dirs
    comp = prepare(data_root, "leaf-classification")
    prepared, staged = stage(comp.id, answers=False)
    assert (prepared.public_dir / "train.csv").is_file() and not prepared.private_dir.exists()
    graded, staged = stage(comp.id)  # what a trial calls: the answers now
    assert staged.prepared_here and graded.answers_path.read_text() == "id,y\n1,1\n"


def test_a_sample_submission_mlebench_keeps_private_stays_private(dirs):
    data_root, root = dirs
    comp = prepare(data_root, "statoil-iceberg-classifier-challenge")
    assert comp.sample_submission.startswith("../private/")
    prepared = stage(comp.id)[0]
    assert not any(p.name == "sample_submission.csv" for p in prepared.public_dir.rglob("*"))
    assert prepared.sample_submission_path.read_text() == "id,y\n1,0\n"  # the host-side prechecks read it
    assert prepared.private_dir in prepared.sample_submission_path.parents


def test_unprepared_data_names_the_command(dirs):
    from mleray.competitions import CompetitionError

    with pytest.raises(CompetitionError, match="mlebench prepare -c leaf-classification"):
        stage("leaf-classification")


def test_uid_1000_reads_the_public_data_but_never_the_answers(dirs, monkeypatch):
    """An agent's uid that learnt every path (the public folder from /proc/self/mountinfo, the answers'
    from anywhere) reads the staged public data and nothing of the answers area."""
    import json
    import shutil
    import tempfile

    data_root, _ = dirs
    base = Path(tempfile.mkdtemp(prefix="mleray-mlebench-", dir="/tmp"))  # world-traversable, unlike tmp_path
    os.chmod(base, 0o755)
    root = base / "cache"
    monkeypatch.setenv("MLERAY_CACHE_DIR", str(root))
    comp = prepare(data_root, "leaf-classification", answers="id,y\n1,SECRET\n")
    try:
        prepared = stage(comp.id)[0]
        done = _probe(prepared, root)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"public": "id,y\n0,0\n", "answers": "denied", "list area": "denied",
                                       "key": "denied"}


def _probe(prepared, root: Path):
    import subprocess
    import sys
    import textwrap

    from helpers import as_user

    probe = textwrap.dedent("""\
        import json, os, sys
        public, answers, area = sys.argv[1:4]
        out = {"public": open(os.path.join(public, "train.csv")).read()}
        for name, call in [("answers", lambda: open(answers).read()), ("list area", lambda: os.listdir(area)),
                           ("key", lambda: open(os.path.join(area, ".key"), "rb").read())]:
            try:
                call()
                out[name] = "READ"
            except PermissionError:
                out[name] = "denied"
        print(json.dumps(out))
        """)
    return subprocess.run(as_user(1000, [sys.executable, "-I", "-c", probe, str(prepared.public_dir),
                                         str(prepared.answers_path), str(root / cache.ANSWERS)]),
                          capture_output=True, text=True, timeout=60, cwd="/")
