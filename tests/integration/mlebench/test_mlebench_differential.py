"""mleray against the official `mlebench` package, field by field, on competitions prepared by
MLE-bench's own prepare functions from small raw data fabricated here in each competition's Kaggle
format (tabular, text and image competitions).

- a real sweep (Ray, bwrap sandboxes) of the dummy and baseline agents: each record equals
  `mlebench.grade.grade_csv` on the submission the trial kept (created_at aside);
- malformed submissions (absent, not a CSV, empty, header only, wrong column, rows missing or
  repeated, NaN predictions, binary garbage): `grade_submission` equals `grade_csv`;
- `mleray grade --submission JSONL --output-dir D` writes the report `mlebench grade` writes, and
  `mleray grade-sample PATH ID` prints the entry `mlebench grade-sample` logs.

The official package must be installed (.ci/setup installs it from ../shared/reference/mle-bench):
under CI=true its absence fails these tests; elsewhere they are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT, require

MISSING = None
try:
    import mlebench.grade as official_grade
    from mlebench.registry import registry as official_registry
except Exception as err:  # noqa: BLE001 - absent, or installed without its dependencies
    MISSING = f"the official mlebench package is not importable ({type(err).__name__}: {err}); run .ci/setup"


@pytest.fixture(autouse=True, scope="module")
def _official_package():
    """Each test fails under CI=true without the official package (a collection error would stop the whole
    run), and is skipped elsewhere, saying why."""
    require(MISSING is None, str(MISSING))

# ------------------------------------------------------------------ raw data in Kaggle's formats


def _zip(path: Path, members: dict) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def _words(rng, vocab: str, n: int) -> str:
    return " ".join(rng.choice(vocab.split(), size=n))


def raw_spaceship_titanic(raw: Path, rng) -> None:
    n = 240
    planets = rng.choice(["Earth", "Europa", "Mars"], n)
    cryo = rng.random(n) < 0.35
    pd.DataFrame({
        "PassengerId": [f"{i // 2 + 1:04d}_{i % 2 + 1:02d}" for i in range(n)],
        "HomePlanet": planets, "CryoSleep": cryo,
        "Cabin": [f"{d}/{i}/{s}" for i, (d, s) in
                  enumerate(zip(rng.choice(list("ABCDEFG"), n), rng.choice(["P", "S"], n)))],
        "Destination": rng.choice(["TRAPPIST-1e", "55 Cancri e", "PSO J318.5-22"], n),
        "Age": rng.integers(1, 80, n).astype(float), "VIP": rng.random(n) < 0.05,
        "RoomService": np.where(cryo, 0.0, rng.gamma(1.0, 300, n).round()),
        "FoodCourt": rng.gamma(1.0, 400, n).round(), "ShoppingMall": rng.gamma(1.0, 200, n).round(),
        "Spa": rng.gamma(1.0, 300, n).round(), "VRDeck": rng.gamma(1.0, 300, n).round(),
        "Name": [f"Name{i} Family{i // 3}" for i in range(n)],
        "Transported": cryo ^ (rng.random(n) < 0.2),
    }).to_csv(raw / "train.csv", index=False)


def raw_tabular_dec_2021(raw: Path, rng) -> None:
    n = 300
    elevation = rng.integers(1800, 3800, n)
    pd.DataFrame({
        "Id": np.arange(n), "Elevation": elevation, "Aspect": rng.integers(0, 360, n),
        "Slope": rng.integers(0, 50, n), "Horizontal_Distance_To_Hydrology": rng.integers(0, 1300, n),
        "Cover_Type": np.clip((elevation - 1800) // 300 + rng.integers(-1, 2, n), 1, 7),
    }).to_csv(raw / "train.csv", index=False)


SPOOKY = {"EAP": "raven midnight dreary chamber ghastly", "HPL": "eldritch cyclopean abyss ancient unnamable",
          "MWS": "creature wretched misery father elizabeth"}


def raw_spooky(raw: Path, rng) -> None:
    rows = []
    for i in range(240):
        author = list(SPOOKY)[i % 3]
        rows.append((f"id{i:05d}", _words(rng, SPOOKY[author] + " the of and a to", 10), author))
    _zip(raw / "train.zip", {"train.csv": _csv(pd.DataFrame(rows, columns=["id", "text", "author"]))})


JIGSAW = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def raw_jigsaw(raw: Path, rng) -> None:
    def comments(n, start):
        ids = [f"{start + i:016x}" for i in range(n)]
        labels = (rng.random((n, 6)) < [0.3, 0.05, 0.2, 0.05, 0.2, 0.05]).astype(int)
        labels[:, 0] |= labels[:, 1:].any(axis=1)
        labels[: 3, 1:] = 1  # every class has both labels among the rows kept for scoring
        labels[3:6, :] = 0
        text = [_words(rng, "you are great idiot thanks stupid wiki edit page talk", 8) for _ in range(n)]
        return ids, labels, text
    ids, labels, text = comments(200, 0)
    train = pd.DataFrame({"id": ids, "comment_text": text, **{c: labels[:, j] for j, c in enumerate(JIGSAW)}})
    ids, labels, text = comments(80, 10_000)
    labels[-10:] = -1  # Kaggle marks the rows not used for scoring with -1
    test_labels = pd.DataFrame({"id": ids, **{c: labels[:, j] for j, c in enumerate(JIGSAW)}})
    sample = pd.DataFrame({"id": ids, **{c: 0.5 for c in JIGSAW}})
    for name, frame in (("train.csv", train), ("test.csv", pd.DataFrame({"id": ids, "comment_text": text})),
                        ("test_labels.csv", test_labels), ("sample_submission.csv", sample)):
        _zip(raw / f"{name}.zip", {name: _csv(frame)})


def raw_insults(raw: Path, rng) -> None:
    def rows(n, start):
        insult = (rng.random(n) < 0.3).astype(int)
        insult[:2] = [0, 1]
        vocab = np.array(["you", "are", "a", "moron", "nice", "point", "loser", "agree", "idiot", "thanks"])
        text = [f'"comment {start + i}: ' + " ".join(rng.choice(vocab, 6)) + '"' for i in range(n)]
        date = [f"2012{(i % 12) + 1:02d}01120000Z" if i % 5 else "" for i in range(n)]
        return pd.DataFrame({"Insult": insult, "Date": date, "Comment": text})
    rows(200, 0).to_csv(raw / "train.csv", index=False)
    test = rows(90, 1000)
    test["Usage"] = np.where(np.arange(90) % 2, "PrivateTest", "PublicTest")
    test.to_csv(raw / "test_with_solutions.csv", index=False)


def _tiny_jpeg(rng) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def raw_cactus(raw: Path, rng) -> None:
    n = 160
    ids = [f"{i:032x}.jpg" for i in range(n)]
    pd.DataFrame({"id": ids, "has_cactus": (rng.random(n) < 0.7).astype(int)}).to_csv(raw / "train.csv", index=False)
    _zip(raw / "train.zip", {f"train/{i}": _tiny_jpeg(rng) for i in ids})


PLANT = ["healthy", "multiple_diseases", "rust", "scab"]


def raw_plant_2020(raw: Path, rng) -> None:
    n = 200
    label = np.arange(n) % 4
    rng.shuffle(label)
    ids = [f"Train_{i}" for i in range(n)]
    pd.DataFrame({"image_id": ids, **{c: (label == j).astype(int) for j, c in enumerate(PLANT)}}).to_csv(
        raw / "train.csv", index=False)
    (raw / "images").mkdir()
    for i in ids:
        (raw / "images" / f"{i}.jpg").write_bytes(_tiny_jpeg(rng))


def raw_us_patent(raw: Path, rng) -> None:
    n = 200
    pd.DataFrame({
        "id": [f"{i:016x}" for i in range(n)],
        "anchor": [_words(rng, "abatement absorbent amplifier acid adjust", 2) for _ in range(n)],
        "target": [_words(rng, "reduction sponge booster base tune noise", 2) for _ in range(n)],
        "context": rng.choice(["A47", "H04", "C01", "F16"], n),
        "score": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n),
    }).to_csv(raw / "train.csv", index=False)


RAW = {  # competition id -> (category, fabricator)
    "spaceship-titanic": ("tabular", raw_spaceship_titanic),
    "tabular-playground-series-dec-2021": ("tabular", raw_tabular_dec_2021),
    "spooky-author-identification": ("text", raw_spooky),
    "jigsaw-toxic-comment-classification-challenge": ("text", raw_jigsaw),
    "detecting-insults-in-social-commentary": ("text", raw_insults),
    "us-patent-phrase-to-phrase-matching": ("text", raw_us_patent),
    "aerial-cactus-identification": ("image", raw_cactus),
    "plant-pathology-2020-fgvc7": ("image", raw_plant_2020),
}


@contextlib.contextmanager
def _cwd(path: Path):
    """Importing mlebench.data makes ./cache (diskcache): the official calls run from a temp dir."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Every competition of RAW prepared by MLE-bench's own prepare function, into `mlebench
    prepare`'s layout (<data_dir>/<id>/prepared/{public,private}, description.md in public/)."""
    root = tmp_path_factory.mktemp("mlebench")
    data = root / "data"
    registry = official_registry.set_data_dir(data)
    with _cwd(root):
        for k, (cid, (_, fabricate)) in enumerate(RAW.items()):
            comp = registry.get_competition(cid)
            for folder in (comp.raw_dir, comp.public_dir, comp.private_dir):
                folder.mkdir(parents=True, exist_ok=True)
            fabricate(comp.raw_dir, np.random.default_rng(100 + k))
            comp.prepare_fn(raw=comp.raw_dir, public=comp.public_dir, private=comp.private_dir)
            (comp.public_dir / "description.md").write_text(comp.description)
    return data


@pytest.fixture
def mleray_env(data_dir, tmp_path, monkeypatch) -> Path:
    """mleray pointed at the prepared data (MLERAY_MLEBENCH_DATA_DIR), with its own node cache."""
    monkeypatch.setenv("MLERAY_MLEBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MLERAY_CACHE_DIR", str(tmp_path / "cache"))
    return data_dir


# ------------------------------------------------------------------------------ comparison


def _same(ours, theirs) -> bool:
    """Equal as a grading report writes them (json.dump): the same digits, NaN as NaN, a bool never 1."""
    return json.dumps(ours) == json.dumps(theirs)


def official_entry(data_dir: Path, path: Path, cid: str, cwd: Path) -> dict:
    with _cwd(cwd):
        comp = official_registry.set_data_dir(data_dir).get_competition(cid)
        return official_grade.grade_csv(Path(path), comp).to_dict()


def differences(ours: dict, theirs: dict, skip=("created_at",)) -> list:
    return [(key, ours.get(key, "<absent>"), value) for key, value in theirs.items()
            if key not in skip and not _same(ours.get(key, "<absent>"), value)]


def test_fabricated_competitions_span_tabular_text_and_image(data_dir):
    kinds = {kind for kind, _ in RAW.values()}
    assert kinds == {"tabular", "text", "image"} and len(RAW) >= 6
    for cid in RAW:
        assert (data_dir / cid / "prepared" / "public" / "description.md").is_file(), cid
        assert any((data_dir / cid / "prepared" / "private").iterdir()), cid


def malformed(sample: Path, out: Path, rng) -> dict:
    """Submissions an agent gets wrong, made from the competition's sample submission."""
    frame = pd.read_csv(sample)
    target = frame.columns[-1]
    made = {"absent.csv": None, "not_a_csv.txt": frame, "empty.csv": "", "header_only.csv": frame.iloc[:0],
            "wrong_column.csv": frame.rename(columns={target: target + "_x"}),
            "rows_missing.csv": frame.iloc[: len(frame) // 2], "row_repeated.csv": pd.concat([frame, frame.iloc[:1]]),
            "shuffled.csv": frame.sample(frac=1.0, random_state=0),
            "nan_predictions.csv": frame.assign(**{target: np.nan}),
            "garbage.csv": b"\xff\xfe" + rng.bytes(600)}
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, content in made.items():
        path = paths[name] = out / name
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
    return paths


def test_malformed_submissions_grade_as_mlebench_grades_them(mleray_env, tmp_path):
    from mleray import competitions
    from mleray.grading import grade_submission

    compared, invalid = 0, 0
    mismatches: list = []
    crashed: list = []
    for k, cid in enumerate(RAW):
        prepared = competitions.prepare(competitions.get(cid))
        sample = mleray_env / cid / "prepared" / "public" / prepared.competition.sample_submission
        paths = {"sample.csv": sample, **malformed(sample, tmp_path / cid, np.random.default_rng(k))}
        for name, path in paths.items():
            ours = grade_submission(prepared, path)
            try:
                theirs = official_entry(mleray_env, path, cid, tmp_path)
            except Exception as err:  # noqa: BLE001 - grade_csv raises where its read_csv does (not UTF-8)
                crashed.append((cid, name, type(err).__name__))
                if ours["valid_submission"] or ours["score"] is not None or not ours["reason"]:
                    mismatches.append((cid, name, "mlebench raised, mleray graded it valid", ours))
                continue
            mismatches += [(cid, name, *d) for d in differences(ours, theirs)]
            compared += 1
            invalid += not theirs["valid_submission"]
    assert not mismatches, "\n".join(map(str, mismatches))
    # grade_csv raises on the binary file only (an invalid entry with its reason in mleray)
    assert {name for _, name, _ in crashed} <= {"garbage.csv"}, crashed
    assert compared >= len(RAW) * 10 and invalid >= len(RAW) * 5  # the malformed ones are mostly invalid


@pytest.mark.slow
def test_sweep_records_equal_mlebench_grade_on_the_kept_submissions(mleray_env, tmp_path, bwrap_path):
    storage = tmp_path / "runs"
    env = {**os.environ, "MLERAY_MLEBENCH_DATA_DIR": str(mleray_env), "MLERAY_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "mleray.sweep", "name=differential", f"storage={storage}",
               f"competitions=[{','.join(RAW)}]", "agents=[dummy,baseline]", "seeds=1", "sandbox=bwrap",
               "report=false", "tiers.cpu.time_limit=12", "tiers.cpu.memory_gb=1.5", "ray.num_cpus=2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in (storage / "differential" / "trials.jsonl").read_text().splitlines()]
    assert {(r["agent"], r["competition_id"]) for r in records} == {(a, c) for a in ("dummy", "baseline") for c in RAW}
    mismatches, valid = [], 0
    for r in records:
        kept = storage / "differential" / r["submission_path"] if r["submission_path"] else tmp_path / "none.csv"
        theirs = official_entry(mleray_env, kept, r["competition_id"], tmp_path)
        assert r["status"] == "graded", (r["competition_id"], r["agent"], r["reason"])
        assert not r["submission_path"] or Path(theirs["submission_path"]).resolve() == kept.resolve()
        mismatches += [(r["agent"], r["competition_id"], *d)
                       for d in differences(r, theirs, skip=("created_at", "submission_path"))]
        valid += theirs["valid_submission"]
    assert not mismatches, "\n".join(map(str, mismatches))
    assert valid >= len(RAW)  # the dummy's sample submissions at least (us-patent's constant one scores NaN)
    aggregate_exported_reports_as_mlebench(storage / "differential", tmp_path)


def aggregate_exported_reports_as_mlebench(sweep: Path, tmp_path: Path) -> None:
    """The sweep's exported grading reports (`mleray grade --sweep`), one run group per agent, read by
    MLE-bench's experiments/aggregate_grading_reports.py (a copy, in a folder laid out as its repository)
    and by `python -m analysis --experiment-id`: the same per-seed numbers and averages."""
    from analysis.__main__ import main as analysis_main
    from mleray.grading.report import export_sweep

    script = ROOT.parent / "shared" / "reference" / "mle-bench" / "experiments" / "aggregate_grading_reports.py"
    project = tmp_path / "mle-bench"
    (project / "experiments" / "splits").mkdir(parents=True)
    shutil.copy(script, project / "experiments")
    split = project / "experiments" / "splits" / "differential.txt"
    split.write_text("\n".join(RAW) + "\n")
    exported = export_sweep(sweep, tmp_path / "exported")
    (project / "runs").mkdir()
    lines = ["experiment_id,run_group"]
    for report in sorted(exported.glob("*_grading_report.json")):
        group = report.name.split("__")[0]
        (project / "runs" / group).mkdir()
        shutil.copy(report, project / "runs" / group)
        lines.append(f"mleray-{group},{group}")
    (project / "runs" / "run_group_experiments.csv").write_text("\n".join(lines))
    assert len(lines) == 3  # dummy and baseline
    for agent in ("dummy", "baseline"):
        done = subprocess.run([sys.executable, str(project / "experiments" / "aggregate_grading_reports.py"),
                               "--experiment-id", f"mleray-{agent}", "--split", "differential"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        average = json.loads(done.stdout.split("Average metrics across seeds:", 1)[1])
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = analysis_main(["--experiment-id", f"mleray-{agent}", "--runs-dir", str(project / "runs"),
                                  "--split", str(split), "--json"])
        assert code == 0
        mine = json.loads(out.getvalue())["experiment"]
        assert mine["average"] == average, agent
        assert average["num_seeds_averaged"] == 1 and average["num_competitions_per_seed"] == len(RAW)


def test_validate_answers_lead_with_the_grading_servers_sentences(mleray_env, tmp_path):
    """/validate's text for a rejected submission starts as MLE-bench's grading server's does; the valid one
    is its sentence exactly."""
    from mleray import competitions
    from mleray.grading import validate_only
    from mleray.sandbox.validation import answer

    for cid in ("spaceship-titanic", "spooky-author-identification", "aerial-cactus-identification"):
        prepared = competitions.prepare(competitions.get(cid))
        sample = mleray_env / cid / "prepared" / "public" / prepared.competition.sample_submission
        files = malformed(sample, tmp_path / cid, np.random.default_rng(0))
        for path in (sample, files["wrong_column.csv"], files["rows_missing.csv"]):
            with _cwd(tmp_path):
                official = official_registry.set_data_dir(mleray_env).get_competition(cid)
                valid, text = official_grade.validate_submission(path, official)
            ours = answer(*validate_only(prepared, path))
            assert ours["valid"] is valid, (cid, path.name, ours, text)
            assert ours["result"].split("\n")[0] == text.split("\n")[0], (cid, path.name, ours, text)


def _run(argv, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def _only_report(folder: Path) -> dict:
    reports = sorted(folder.glob("*_grading_report.json"))
    assert len(reports) == 1, reports
    return json.loads(reports[0].read_text())


def test_grade_cli_takes_mlebench_flags_and_writes_its_report(mleray_env, tmp_path):
    """`mleray grade --submission J --output-dir D` and `mleray grade-sample PATH ID`, the command lines
    of `mlebench grade` and `mlebench grade-sample`, give the same report and entry for the same files."""
    lines = []
    for k, cid in enumerate(RAW):
        sample = next((mleray_env / cid / "prepared" / "public").glob("sample_submission*.csv"))
        files = malformed(sample, tmp_path / "subs" / cid, np.random.default_rng(k))
        for path in (sample, files["wrong_column.csv"], files["absent.csv"], files["not_a_csv.txt"]):
            lines.append(json.dumps({"competition_id": cid, "submission_path": str(path)}))
    jsonl = tmp_path / "submissions.jsonl"
    jsonl.write_text("\n".join(["# MLE-bench skips commented-out lines", *lines]) + "\n")
    env = {**os.environ, "MLERAY_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MLERAY_MLEBENCH_DATA_DIR")  # --data-dir says where, as it does to mlebench
    data = ["--data-dir", str(mleray_env)]
    theirs = _run(["-m", "mlebench.cli", "grade", "--submission", str(jsonl), "--output-dir", str(tmp_path / "theirs"),
                   *data], tmp_path, env)
    assert theirs.returncode == 0, theirs.stderr[-3000:]
    ours = _run(["-m", "mleray", "grade", "--submission", str(jsonl), "--output-dir", str(tmp_path / "ours"), *data],
                tmp_path, env)
    assert ours.returncode == 0, ours.stderr[-3000:]
    a, b = _only_report(tmp_path / "ours"), _only_report(tmp_path / "theirs")
    assert list(a) == list(b) and all(a[k] == b[k] for k in b if k != "competition_reports")
    assert len(a["competition_reports"]) == len(b["competition_reports"]) == len(lines)
    mismatches = []
    for x, y in zip(a["competition_reports"], b["competition_reports"]):
        assert list(x) == list(y)
        mismatches += [(y["competition_id"], Path(y["submission_path"]).name, *d) for d in differences(x, y)]
    assert not mismatches, "\n".join(map(str, mismatches))
    assert 0 < b["total_valid_submissions"] < b["total_runs_with_submissions"] < b["total_runs"]

    cid = "spooky-author-identification"
    sample = mleray_env / cid / "prepared" / "public" / "sample_submission.csv"
    theirs = _run(["-m", "mlebench.cli", "grade-sample", str(sample), cid, *data], tmp_path, env)
    entry = json.loads(theirs.stderr[theirs.stderr.index("{"):theirs.stderr.rindex("}") + 1])
    for argv in (["grade-sample"], ["grade", "grade-sample"]):
        ours = _run(["-m", "mleray", *argv, str(sample), cid, *data], tmp_path, env)
        assert ours.returncode == 0, ours.stderr[-3000:]
        mine = json.loads(ours.stdout)
        assert not differences(mine, entry) and list(mine)[: len(entry)] == list(entry), (mine, entry)
