"""The competition registry: lookups, suites, requirement checks and preflight."""

import textwrap

import pytest

import mleray.competitions as competitions
from mleray.competitions import CompetitionError


def write_competition(root, cid="toy", pip=(), apt=None, metric="accuracy"):
    folder = root / cid
    folder.mkdir(parents=True)
    pip_list = ", ".join(f'"{p}"' for p in pip)
    apt_lines = "".join(f"\n    {k}: {v}" for k, v in (apt or {}).items()) or " {}"
    (folder / "config.yaml").write_text(textwrap.dedent(f"""\
        id: {cid}
        name: "Toy"
        modality: tabular-classification
        metric: {metric}
        id_column: id
        target_columns: [y]
        sample_submission: sample_submission.csv
        answers: answers.csv
        version: "1"
        requires:
          pip: [{pip_list}]
          apt:""") + apt_lines + "\n")
    (folder / "description.md").write_text("# Toy\n")
    (folder / "prepare.py").write_text("def prepare(public, private):\n    pass\n")
    return folder


@pytest.fixture
def comps_dir(tmp_path, monkeypatch):
    root = tmp_path / "competitions"
    root.mkdir()
    monkeypatch.setenv("MLERAY_COMPETITIONS_DIR", str(root))
    return root


def test_unknown_id_lists_known(comps_dir):
    write_competition(comps_dir, "toy")
    with pytest.raises(CompetitionError, match=r"unknown competition 'no-such-thing'.*toy"):
        competitions.get("no-such-thing")


def test_get_reads_config(comps_dir):
    write_competition(comps_dir, "toy")
    comp = competitions.get("toy")
    assert comp.id == "toy" and comp.source == "local" and comp.metric == "accuracy"
    assert comp.target_columns == ["y"] and comp.version == "1"
    assert comp.description_path == comps_dir / "toy" / "description.md"
    ids = competitions.list_ids()  # the folder on $MLERAY_COMPETITIONS_DIR, then the shipped ones
    assert "toy" in ids and "titanic" in ids and ids == sorted(ids)


def test_bad_metric_is_named(comps_dir):
    write_competition(comps_dir, "toy", metric="nonsense")
    with pytest.raises(CompetitionError, match="unknown metric 'nonsense'"):
        competitions.get("toy")


def test_missing_pip_package_names_install_command(comps_dir):
    write_competition(comps_dir, "toy", pip=["mleray-no-such-dist==1.2.3", "pytest"])
    comp = competitions.get("toy")
    problems = competitions.missing_requirements(comp)
    assert len(problems) == 1
    assert "pip install --no-deps mleray-no-such-dist==1.2.3" in problems[0] and "'toy'" in problems[0]
    with pytest.raises(CompetitionError, match="pip install --no-deps mleray-no-such-dist==1.2.3"):
        competitions.prepare(comp)


def test_wrong_pinned_version_is_reported(comps_dir):
    write_competition(comps_dir, "toy", pip=["pytest==0.0.1"])
    (problem,) = competitions.missing_requirements(competitions.get("toy"))
    assert "is installed" in problem and "pip install --no-deps pytest==0.0.1" in problem


def test_missing_apt_package(comps_dir, tmp_path):
    write_competition(comps_dir, "toy", apt={"some-deb": str(tmp_path / "absent")})
    (problem,) = competitions.missing_requirements(competitions.get("toy"))
    assert "apt-get install -y some-deb" in problem


def test_preflight_collects_every_problem(comps_dir):
    write_competition(comps_dir, "toy", pip=["mleray-no-such-dist==1.0"])
    write_competition(comps_dir, "fine")
    problems = competitions.preflight(["toy", "fine", "mleray-unknown-id"])
    assert len(problems) == 2
    assert any("mleray-no-such-dist" in p for p in problems)
    assert any("unknown competition 'mleray-unknown-id'" in p for p in problems)
    assert competitions.preflight(["fine"]) == []


def test_suites():
    assert competitions.suite("offline-lite")[:2] == ["titanic", "house-prices"]
    offline = competitions.suite("offline")
    assert {"titanic", "house-prices", "bike-sharing-demand"} <= set(offline)
    assert set(competitions.suite("offline-lite")) <= set(offline)
    with pytest.raises(CompetitionError, match="unknown suite 'nope'.*offline"):
        competitions.suite("nope")


def test_shipped_competitions_load():
    for cid in competitions.suite("offline"):
        comp = competitions.get(cid)
        assert comp.id == cid and comp.leaderboard is not None and comp.leaderboard.is_file()
        assert comp.description_path.is_file() and (comp.root / "prepare.py").is_file()


def test_competitions_are_hashable(comps_dir):
    write_competition(comps_dir, "toy")
    assert {competitions.get("toy"): 1}[competitions.get("toy")] == 1
