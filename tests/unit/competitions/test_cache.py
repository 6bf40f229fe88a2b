"""Preparing into the cache: idempotent, byte-identical, safe under concurrency, answers kept private."""

import multiprocessing
import os
import textwrap
import time

import pytest

import mleray.competitions as competitions
from mleray.competitions import CompetitionError

PREPARE = textwrap.dedent("""\
    import os, time
    from pathlib import Path

    def prepare(public, private):
        with open(os.environ["TOY_COUNTER"], "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
        if os.environ.get("TOY_FAIL"):
            raise RuntimeError("toy prepare failed on purpose")
        rows = "\\n".join(f"{i},{i % 2}" for i in range(10))
        (Path(public) / "train.csv").write_text("id,y\\n" + rows + "\\n")
        (Path(public) / "test.csv").write_text("id\\n" + "\\n".join(str(i) for i in range(10, 20)) + "\\n")
        (Path(public) / "sample_submission.csv").write_text("id,y\\n" + "\\n".join(f"{i},0" for i in range(10, 20)) + "\\n")
        (Path(private) / "answers.csv").write_text("id,y\\n" + "\\n".join(f"{i},{i % 2}" for i in range(10, 20)) + "\\n")
    """)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    root = tmp_path / "competitions"
    folder = root / "toy"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(textwrap.dedent("""\
        id: toy
        name: Toy
        metric: accuracy
        id_column: id
        target_columns: [y]
        sample_submission: sample_submission.csv
        answers: answers.csv
        version: "3"
        """))
    (folder / "description.md").write_text("# Toy competition\n")
    (folder / "prepare.py").write_text(PREPARE)
    counter = tmp_path / "runs.txt"
    monkeypatch.setenv("MLERAY_COMPETITIONS_DIR", str(root))
    monkeypatch.setenv("TOY_COUNTER", str(counter))
    return competitions.get("toy"), counter


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def runs(counter):
    return counter.read_text().split() if counter.exists() else []


def test_layout_and_description(toy, tmp_path):
    comp, _ = toy
    prepared = competitions.prepare(comp, tmp_path / "cache")
    entry = prepared.public_dir.parent
    assert entry.parent == tmp_path / "cache" / "toy" and entry.name.startswith("3-")
    assert prepared.sample_submission_path.is_file() and prepared.answers_path.is_file()
    assert (prepared.public_dir / "description.md").read_text() == "# Toy competition\n"


def test_second_prepare_is_a_noop(toy, tmp_path):
    comp, counter = toy
    first = competitions.prepare(comp, tmp_path / "cache")
    before = files(first.public_dir), files(first.private_dir)
    mtime = first.answers_path.stat().st_mtime_ns
    t0 = time.monotonic()
    second = competitions.prepare(comp, tmp_path / "cache")
    assert time.monotonic() - t0 < 0.5
    assert second == first and len(runs(counter)) == 1
    assert (files(second.public_dir), files(second.private_dir)) == before
    assert second.answers_path.stat().st_mtime_ns == mtime


def test_editing_prepare_invalidates_the_cache(toy, tmp_path):
    comp, counter = toy
    first = competitions.prepare(comp, tmp_path / "cache")
    (comp.root / "prepare.py").write_text(PREPARE + "\n# changed\n")
    second = competitions.prepare(competitions.get("toy"), tmp_path / "cache")
    assert second.public_dir != first.public_dir and len(runs(counter)) == 2


def test_public_never_holds_the_answers(toy, tmp_path):
    comp, _ = toy
    prepared = competitions.prepare(comp, tmp_path / "cache")
    answers = prepared.answers_path.read_bytes()
    assert not (prepared.public_dir / comp.answers).exists()
    assert all(answers != data for data in files(prepared.public_dir).values())
    assert prepared.private_dir != prepared.public_dir
    assert not prepared.private_dir.is_relative_to(prepared.public_dir)


def test_failed_prepare_leaves_nothing(toy, tmp_path, monkeypatch):
    comp, _ = toy
    monkeypatch.setenv("TOY_FAIL", "1")
    with pytest.raises(CompetitionError, match="toy prepare failed on purpose"):
        competitions.prepare(comp, tmp_path / "cache")
    leftovers = [p.name for p in (tmp_path / "cache" / "toy").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    monkeypatch.delenv("TOY_FAIL")
    assert competitions.prepare(comp, tmp_path / "cache").answers_path.is_file()


def _prepare_in_child(cache, queue):
    comp = competitions.get("toy")
    prepared = competitions.prepare(comp, cache)
    queue.put((str(prepared.public_dir), prepared.answers_path.read_text()))


def test_concurrent_prepares_build_once(toy, tmp_path, monkeypatch):
    comp, counter = toy
    monkeypatch.setenv("TOY_SLEEP", "0.5")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_prepare_in_child, args=(tmp_path / "cache", queue)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    results = {queue.get(timeout=5) for _ in procs}
    assert len(results) == 1  # one folder, one content
    assert len(runs(counter)) == 1  # prepare.py ran once
    entries = [p for p in (tmp_path / "cache" / "toy").iterdir() if p.is_dir()]
    assert len(entries) == 1 and not entries[0].name.startswith(".")


def test_missing_prepare_function(toy, tmp_path):
    comp, _ = toy
    (comp.root / "prepare.py").write_text("x = 1\n")
    with pytest.raises(CompetitionError, match="defines no prepare"):
        competitions.prepare(competitions.get("toy"), tmp_path / "cache")


def test_stale_temporary_folder_is_removed(toy, tmp_path):
    comp, _ = toy
    entry = competitions.cache_entry(comp, tmp_path / "cache")
    stale = entry.parent / f".{entry.name}.tmp-999999"
    (stale / "public").mkdir(parents=True)
    competitions.prepare(comp, tmp_path / "cache")
    assert not stale.exists() and entry.is_dir()
