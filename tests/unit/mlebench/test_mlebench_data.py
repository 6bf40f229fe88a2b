"""Locating `mlebench prepare` output, both descriptions, and preflight's one-message-per-missing-piece."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mleray import competitions
from mleray.competitions import CompetitionError, PreparedCompetition
from mleray.mlebench import catalog, data, preflight


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "mle-bench-data"
    monkeypatch.setenv(data.ENV_DATA_DIR, str(path))
    monkeypatch.setenv("MLERAY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(data.ENV_DATA_URI, raising=False)
    return path


@pytest.fixture
def no_package(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("mlebench.")] + ["mlebench"]:
        monkeypatch.setitem(sys.modules, name, None)
    data._package_problem.cache_clear()
    yield
    data._package_problem.cache_clear()


def prepare_layout(data_dir: Path, cid: str):
    comp = catalog.get(cid)
    public, private = data_dir / cid / "prepared" / "public", data_dir / cid / "prepared" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    (public / "description.md").write_text("# task\n")
    sample = (public / comp.sample_submission).resolve()
    sample.parent.mkdir(parents=True, exist_ok=True)
    sample.write_text("id,y\n1,0\n")
    (private / comp.answers).write_text("id,y\n1,1\n")
    return comp


def test_default_data_dir_is_mlebench_default(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.data_dir() == tmp_path / "mle-bench" / "data"
    assert data.prepare_command("leaf-classification") == "mlebench prepare -c leaf-classification"


def test_locate_finds_the_prepared_folders(data_dir):
    comp = prepare_layout(data_dir, "leaf-classification")
    prepared = data.locate(comp)
    assert isinstance(prepared, PreparedCompetition)
    assert prepared.public_dir == data_dir / "leaf-classification" / "prepared" / "public"
    assert prepared.private_dir == data_dir / "leaf-classification" / "prepared" / "private"
    # the registry's prepare() stages them into the node cache: the answers root-only, not beside public
    staged = competitions.prepare(competitions.get("leaf-classification"))
    assert staged.answers_path.read_bytes() == prepared.answers_path.read_bytes()
    assert (staged.public_dir / "description.md").read_text() == "# task\n"
    assert not (staged.public_dir.parent / "private").exists()
    assert ".answers" in staged.private_dir.parts and staged.private_dir.parts[-3:] == (
        "leaf-classification", "prepared", "private")


def test_locate_with_a_private_sample_submission(data_dir):
    comp = prepare_layout(data_dir, "statoil-iceberg-classifier-challenge")
    prepared = data.locate(comp)
    assert (prepared.public_dir / comp.sample_submission).resolve() == \
        (prepared.private_dir / "sample_submission.csv").resolve()


def test_locate_names_the_command_when_not_prepared(data_dir):
    comp = catalog.get("leaf-classification")
    with pytest.raises(CompetitionError) as err:
        data.locate(comp)
    text = str(err.value)
    assert "mlebench prepare -c leaf-classification" in text and "openai/mle-bench" in text
    assert f"--data-dir {data_dir}" in text  # a non-default data dir is passed on
    assert "://" not in text  # a repository name, not an address


def test_locate_reports_a_missing_answers_file(data_dir):
    comp = prepare_layout(data_dir, "leaf-classification")
    (data_dir / "leaf-classification" / "prepared" / "private" / comp.answers).unlink()
    (data_dir / "leaf-classification" / "prepared" / "private" / "other").write_text("x")
    with pytest.raises(CompetitionError, match="no answers file"):
        data.locate(comp)


def test_preflight_one_message_per_missing_piece(data_dir, no_package):
    lite = competitions.suite("mlebench-lite")
    prepare_layout(data_dir, lite[0])
    problems = preflight(lite)
    assert len(problems) == 1 + 21  # the package once, then each unprepared competition
    assert "mlebench package is not importable" in problems[0] and "openai/mle-bench" in problems[0]
    assert all("mlebench prepare -c " in p for p in problems[1:])
    assert not any(lite[0] + "'" in p for p in problems[1:])
    # the registry's preflight (which the sweep calls before scheduling) passes them on
    assert competitions.preflight(lite) == problems


def test_preflight_ignores_non_mlebench_ids(data_dir, no_package):
    assert preflight(["titanic", "no-such-thing"]) == []


def test_preflight_is_empty_when_all_is_there(data_dir, monkeypatch):
    comp = prepare_layout(data_dir, "spooky-author-identification")
    monkeypatch.setattr(data, "package_problem", lambda: None)
    assert preflight([comp.id]) == []


def test_descriptions_original_and_obfuscated(data_dir, tmp_path):
    comp = prepare_layout(data_dir, "leaf-classification")
    package_folder = tmp_path / "pkg" / "leaf-classification"
    package_folder.mkdir(parents=True)
    (package_folder / "description_obfuscated.md").write_text("# obfuscated\n")
    import dataclasses

    with_root = dataclasses.replace(comp, root=package_folder)
    found = data.descriptions(with_root)
    assert found.original == data_dir / "leaf-classification" / "prepared" / "public" / "description.md"
    assert found.obfuscated == package_folder / "description_obfuscated.md"
    assert found.get("obfuscated") == found.obfuscated
    with pytest.raises(ValueError):
        found.get("other")
    without = data.descriptions(dataclasses.replace(comp, root=None))
    assert without.original is not None
    if catalog.package_competition_dir(comp.id) is None:
        assert without.obfuscated is None
