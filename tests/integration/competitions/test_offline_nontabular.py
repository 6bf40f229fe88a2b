"""The five non-tabular offline competitions (image, text, time series, image-to-image, audio).

For each: prepare.py is deterministic (byte-identical public and private files), the public side
never holds the answers, the sample submission grades as valid, a trivial submission lands below
the leaderboard's median and a quick scikit-learn pipeline above it (graded end to end by
mleray.grading), and build_leaderboard.py regenerates leaderboard.csv byte for byte (slow).
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mleray import competitions
from mleray.grading.grade import grade_submission
from mleray.grading.rank import Leaderboard

from helpers import ROOT
IDS = ["fashion-mnist-lite", "fine-food-reviews", "elecdemand-forecast", "fashion-mnist-denoise",
       "hydrogen-drum-hits"]


def _present(comp) -> bool:
    return not competitions.missing_requirements(comp)


def _require_raw(comp) -> None:
    """Skips locally, fails under CI=true, when a raw-data package is missing (conftest's rule)."""
    if _present(comp):
        return
    why = "; ".join(competitions.missing_requirements(comp))
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cache = tmp_path_factory.mktemp("suite2-cache")
    done = {}

    def get(cid: str):
        if cid not in done:
            comp = competitions.get(cid)
            _require_raw(comp)
            done[cid] = competitions.prepare(comp, cache_root=cache)
        return done[cid]

    return get


def _run_prepare(comp, out: Path) -> tuple[Path, Path]:
    spec = importlib.util.spec_from_file_location(f"prep_{comp.id.replace('-', '_')}", comp.root / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    public, private = out / "public", out / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    module.prepare(public, private)
    return public, private


def _version_differences() -> str:
    """The build-time module's note on library versions (imported only here: it pins thread variables)."""
    sys.path.insert(0, str(ROOT / "competitions"))
    import leaderboard_tools

    return leaderboard_tools.version_differences()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------- helpers


def _write(tmp_path: Path, frame: pd.DataFrame, name: str) -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _pixels(frame: pd.DataFrame) -> np.ndarray:
    return frame[[f"pixel{i}" for i in range(784)]].to_numpy(np.float64) / 255.0


def _trivial_and_reasonable(cid: str, public: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a trivial submission, a quick scikit-learn pipeline's submission) for one competition."""
    if cid == "fashion-mnist-lite":
        from sklearn.decomposition import PCA
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline

        train, test = pd.read_csv(public / "train.csv"), pd.read_csv(public / "test.csv")
        trivial = pd.DataFrame({"id": test["id"], "label": train["label"].mode()[0]})
        model = make_pipeline(PCA(40, random_state=0), KNeighborsClassifier(5)).fit(_pixels(train), train["label"])
        return trivial, pd.DataFrame({"id": test["id"], "label": model.predict(_pixels(test))})
    if cid == "fine-food-reviews":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        train, test = pd.read_csv(public / "train.csv"), pd.read_csv(public / "test.csv")
        trivial = pd.DataFrame({"id": test["id"], "score": train["score"].mode()[0]})
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=10, max_iter=1000))
        model.fit(train["review"], train["score"])
        return trivial, pd.DataFrame({"id": test["id"], "score": model.predict(test["review"])})
    if cid == "elecdemand-forecast":
        from sklearn.ensemble import HistGradientBoostingRegressor

        train, test = pd.read_csv(public / "train.csv"), pd.read_csv(public / "test.csv")

        def feats(f):
            t = pd.to_datetime(f["datetime"])
            return np.column_stack([t.dt.hour * 2 + t.dt.minute // 30, t.dt.day_of_week, f["work_day"], f["temperature"]])

        trivial = pd.DataFrame({"id": test["id"], "demand": train["demand"].mean()})
        model = HistGradientBoostingRegressor(random_state=0).fit(feats(train), train["demand"])
        return trivial, pd.DataFrame({"id": test["id"], "demand": model.predict(feats(test))})
    if cid == "fashion-mnist-denoise":
        from sklearn.linear_model import Ridge

        noisy_tr = _pixels(pd.read_csv(public / "train_noisy.csv")).reshape(-1, 28, 28)
        clean_tr = _pixels(pd.read_csv(public / "train_clean.csv")).reshape(-1, 28, 28)
        test = pd.read_csv(public / "test_noisy.csv")
        noisy_te = _pixels(test).reshape(-1, 28, 28)

        def patches(imgs):
            p = np.pad(imgs, ((0, 0), (2, 2), (2, 2)), mode="edge")
            return np.stack([p[:, dy:dy + 28, dx:dx + 28].reshape(-1) for dy in range(5) for dx in range(5)], axis=1)

        model = Ridge(alpha=1.0).fit(patches(noisy_tr[:500]), clean_tr[:500].reshape(-1))
        ids = [f"{img}_{r}_{c}" for img in test["image"] for r in range(1, 29) for c in range(1, 29)]
        trivial = pd.DataFrame({"id": ids, "value": noisy_te.reshape(-1)})
        return trivial, pd.DataFrame({"id": ids, "value": np.clip(model.predict(patches(noisy_te)), 0, 1)})
    if cid == "hydrogen-drum-hits":
        from sklearn.ensemble import RandomForestClassifier

        train, test = pd.read_csv(public / "train.csv"), pd.read_csv(public / "test.csv")
        cols = [c for c in test.columns if c not in ("id", "file")]
        trivial = pd.DataFrame({"id": test["id"], "label": train["label"].mode()[0]})
        model = RandomForestClassifier(n_estimators=200, random_state=0).fit(train[cols], train["label"])
        return trivial, pd.DataFrame({"id": test["id"], "label": model.predict(test[cols])})
    raise KeyError(cid)


# ------------------------------------------------------------------------------------ tests


def test_suite_lists_them_and_requirements_are_declared_for_ci():
    suite = competitions.suite("offline")
    def listed(name: str) -> set:
        lines = (ROOT / "competitions" / name).read_text().splitlines()
        return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}

    apt, pip = listed("APT_PACKAGES.txt"), listed("PIP_PACKAGES.txt")
    for cid in IDS:
        assert cid in suite
        comp = competitions.get(cid)
        assert set(comp.requires["apt"]) <= apt, cid
        assert set(comp.requires["pip"]) <= pip, cid
        assert comp.leaderboard is not None and (comp.root / "description.md").is_file()
        assert "not human" in (comp.root / "description.md").read_text()


@pytest.mark.parametrize("cid", IDS)
def test_prepare_is_deterministic_and_keeps_answers_private(cid, prepared, tmp_path):
    first = prepared(cid)
    comp = first.competition
    public, private = _run_prepare(comp, tmp_path)
    names = [n for n in _files(first.public_dir) if n != "description.md"]
    assert names == _files(public)
    assert _files(first.private_dir) == _files(private) == [comp.answers]
    _, mismatch, errors = filecmp.cmpfiles(first.public_dir, public, names, shallow=False)
    assert not mismatch and not errors
    assert filecmp.cmp(first.answers_path, private / comp.answers, shallow=False)
    answers = pd.read_csv(first.answers_path)
    sample = pd.read_csv(first.sample_submission_path)
    assert list(sample.columns) == [comp.id_column, *comp.target_columns]
    assert set(sample[comp.id_column].astype(str)) == set(answers[comp.id_column].astype(str))
    for name in names:  # no public CSV carries the test targets next to test ids
        if name.endswith(".csv") and name != comp.sample_submission:
            frame = pd.read_csv(public / name, nrows=5)
            has_test_ids = comp.id_column in frame and frame[comp.id_column].astype(str).isin(
                answers[comp.id_column].astype(str)).any()
            assert not (has_test_ids and set(comp.target_columns) <= set(frame.columns)), name


@pytest.mark.parametrize("cid", IDS)
def test_sample_trivial_and_reasonable_submissions_grade_as_expected(cid, prepared, tmp_path):
    prep = prepared(cid)
    board = Leaderboard.from_csv(prep.competition.leaderboard)
    assert board.num_teams >= 200
    sample = grade_submission(prep, prep.sample_submission_path)
    assert sample["valid_submission"], sample["reason"]
    trivial, reasonable = _trivial_and_reasonable(cid, prep.public_dir)
    low = grade_submission(prep, _write(tmp_path, trivial, "trivial.csv"))
    high = grade_submission(prep, _write(tmp_path, reasonable, "reasonable.csv"))
    assert low["valid_submission"] and high["valid_submission"], (low["reason"], high["reason"])
    assert not low["above_median"], (low["score"], low["median_threshold"])
    assert high["above_median"], (high["score"], high["median_threshold"])


@pytest.fixture(scope="module")
def rebuilt_leaderboards(tmp_path_factory):
    """Runs every build_leaderboard.py once, two at a time (each is single-threaded)."""
    out_dir = tmp_path_factory.mktemp("suite2-leaderboards")
    pending, running, results = list(IDS), {}, {}
    while pending or running:
        while pending and len(running) < 2:
            cid = pending.pop(0)
            comp = competitions.get(cid)
            if not _present(comp):
                results[cid] = None
                continue
            out = out_dir / f"{cid}.csv"
            proc = subprocess.Popen([sys.executable, str(comp.root / "build_leaderboard.py"), str(out)],
                                    cwd=out_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            running[cid] = (proc, out)
        for cid, (proc, out) in list(running.items()):
            if proc.poll() is not None:
                log = proc.stdout.read().decode(errors="replace")
                results[cid] = (proc.returncode, out, log)
                del running[cid]
        time.sleep(0.2)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("cid", IDS)
def test_leaderboard_is_reproducible(cid, rebuilt_leaderboards):
    comp = competitions.get(cid)
    _require_raw(comp)
    returncode, out, log = rebuilt_leaderboards[cid]
    assert returncode == 0, log[-2000:]
    assert out.read_bytes() == comp.leaderboard.read_bytes(), \
        f"{cid}: the rebuilt board differs ({_version_differences() or 'same library versions as built'})"
