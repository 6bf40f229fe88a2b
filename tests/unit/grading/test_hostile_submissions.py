"""The host side survives any submission: hostile files are refused in well under a second and a few MB
with a short reason (the record stays small), an agent's file is graded from a private copy (swapping
it for a link to the answers after the copy changes nothing), a file over max_submission_mb is invalid
naming its size and the cap, and reasons never carry more than a short cleaned excerpt."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write_toy_competition

from mleray.cli import grade as grade_cli
from mleray.competitions import Competition, PreparedCompetition
from mleray.grading import grade as grade_mod
from mleray.grading import grade_submission, validate_only
from mleray.trial.agent_files import excerpt, private_copy
from mleray.trial.snapshots import Snapshotter

N = 20
IDS = list(range(100, 100 + N))
MB = 2**20


def make_competition(root: Path, metric="accuracy", grade_py=None) -> PreparedCompetition:
    public, private = root / "public", root / "private"
    for d in (root, public, private):
        d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": IDS, "y": [i % 2 for i in range(N)]}).to_csv(private / "answers.csv", index=False)
    pd.DataFrame({"id": IDS, "y": 0}).to_csv(public / "sample_submission.csv", index=False)
    if grade_py:
        (root / "grade.py").write_text(textwrap.dedent(grade_py))
    comp = Competition(id="toy", name="Toy", root=root, metric=metric, id_column="id", target_columns=["y"],
                       sample_submission="sample_submission.csv", answers="answers.csv", leaderboard=None,
                       source="local", version="1")
    return PreparedCompetition(comp, public, private)


def rows(value: str = "0") -> str:
    return "".join(f"{i},{value}\n" for i in IDS)


def write_hostile(folder: Path) -> dict:
    """The hostile submissions, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def put(name, *pieces: bytes, repeat: int = 1):
        path = folder / f"{name}.csv"
        with open(path, "wb") as f:
            for piece in pieces[:-1]:
                f.write(piece)
            for _ in range(repeat):
                f.write(pieces[-1])
        files[name] = path

    put("header_1mb_column", b"id," + b"y" * MB + b"\n" + rows().encode())
    put("single_line_200mb", b"a" * (4 * MB), repeat=50)
    garbage = np.random.default_rng(1).bytes(32 * MB)
    # Random bytes from a fixed seed, led by a byte that is never UTF-8: unseeded random bytes made a
    # header that decodes (a short first line of ASCII) about once in a few hundred runs.
    put("binary_garbage", b"\xff" + garbage)
    put("text_header_binary_body", b"id,y\n", garbage)
    put("30000_short_columns", (",".join(["id"] + ["y"] * 30000) + "\n"
                                + "".join(",".join([str(i)] + ["0"] * 30000) + "\n" for i in IDS)).encode())
    put("30000_named_columns", (",".join(["id"] + [f"col{j}" for j in range(30000)]) + "\n"
                                + "".join(",".join([str(i)] + ["0"] * 30000) + "\n" for i in IDS)).encode())
    put("200mb_data_line", b"id,y\n100,", b"7" * (4 * MB), repeat=50)
    put("control_characters", b'id,y\n"\x1b[31m\x07evil\nline\r\x00",1\n' + rows().encode())
    return files


# Peak memory is VmHWM, reset through /proc/self/clear_refs before each file: getrusage's ru_maxrss in a
# child starts at its parent's peak (fork then exec keeps it), which would hide the growth measured.
MEASURE = """
import json, sys, time
from pathlib import Path
from mleray.competitions import Competition, PreparedCompetition
from mleray.grading import grade_submission, validate_only

def rss(field):
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith(field + ":")))

root, metric = Path(sys.argv[1]), sys.argv[2]
comp = Competition(id="toy", name="Toy", root=root, metric=metric, id_column="id", target_columns=["y"],
                   sample_submission="sample_submission.csv", answers="answers.csv", leaderboard=None,
                   source="local", version="1")
prepared = PreparedCompetition(comp, root / "public", root / "private")
grade_submission(prepared, prepared.sample_submission_path, follow_links=False)  # imports, caches
for path in map(Path, sys.argv[3:]):
    open("/proc/self/clear_refs", "w").write("5")
    base = rss("VmRSS")
    t0 = time.monotonic()
    grade = grade_submission(prepared, path, follow_links=False)
    grade_s = time.monotonic() - t0
    t0 = time.monotonic()
    ok, why = validate_only(prepared, path)
    validate_s = time.monotonic() - t0
    print(json.dumps({"name": path.stem, "grade_s": grade_s, "validate_s": validate_s,
                      "peak_mb": (rss("VmHWM") - base) / 1024, "record_bytes": len(json.dumps(grade)),
                      "grade": grade, "valid": ok, "why": why}), flush=True)
"""


def test_hostile_submissions_are_refused_fast_small_and_with_short_reasons(tmp_path):
    prepared = make_competition(tmp_path / "comp")
    files = write_hostile(tmp_path / "hostile")
    out = subprocess.run([sys.executable, "-c", MEASURE, str(prepared.competition.root), "accuracy",
                          *map(str, files.values())], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    results = {r["name"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert set(results) == set(files)
    for name, r in results.items():
        size_mb = files[name].stat().st_size / MB
        print(f"{name}: {size_mb:.1f} MB, graded in {r['grade_s']:.3f} s, validated in {r['validate_s']:.3f} s, "
              f"peak +{r['peak_mb']:.0f} MB, reason {len(r['grade']['reason'])} chars, record {r['record_bytes']} "
              f"bytes: {r['grade']['reason'][:100]}")
        grade = r["grade"]
        assert grade["valid_submission"] is False and grade["score"] is None and not r["valid"]
        for reason in (grade["reason"], r["why"]):
            assert 0 < len(reason) < 1000
            assert reason.isprintable(), reason  # one line, no control characters
        assert r["record_bytes"] < 2000
        assert r["grade_s"] < 2.0 and r["validate_s"] < 2.0, r
        assert r["peak_mb"] < 150, r
    assert "header line is over" in results["header_1mb_column"]["grade"]["reason"]
    assert "header line is over" in results["single_line_200mb"]["grade"]["reason"]
    assert "not UTF-8" in results["binary_garbage"]["grade"]["reason"]
    assert "30001 columns" in results["30000_short_columns"]["grade"]["reason"]
    assert "line 2 is over" in results["200mb_data_line"]["grade"]["reason"]


def test_valid_submissions_grade_within_a_small_multiple_of_their_size(tmp_path):
    """A large valid submission (400k rows, text ids, float predictions, RMSE): grading's peak memory
    stays a small multiple of its file size (measured 4-5.5x; 11-12x before ids stayed in Arrow
    buffers), and the score is the metric's."""
    n = 400_000
    rng = np.random.default_rng(0)
    root = tmp_path / "comp"
    public, private = root / "public", root / "private"
    for d in (public, private):
        d.mkdir(parents=True)
    ids = [f"img_{i:07d}" for i in range(n)]
    truth, pred = rng.random(n), rng.random(n)
    pd.DataFrame({"id": ids, "y": truth}).to_csv(private / "answers.csv", index=False)
    pd.DataFrame({"id": ids, "y": 0.5}).to_csv(public / "sample_submission.csv", index=False)
    sub = tmp_path / "submission.csv"
    pd.DataFrame({"id": ids, "y": pred}).to_csv(sub, index=False)
    out = subprocess.run([sys.executable, "-c", MEASURE, str(root), "rmse", str(sub)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.splitlines()[-1])
    size_mb = sub.stat().st_size / MB
    print(f"valid {size_mb:.1f} MB submission: graded in {r['grade_s']:.2f} s, peak +{r['peak_mb']:.0f} MB "
          f"({r['peak_mb'] / size_mb:.1f}x its size)")
    written = pd.read_csv(sub)["y"].to_numpy()  # the predictions as the file holds them
    assert r["grade"]["valid_submission"], r["grade"]["reason"]
    assert r["grade"]["score"] == round(float(np.sqrt(np.mean((pd.read_csv(private / "answers.csv")["y"].to_numpy()
                                                                - written) ** 2))), 5)
    assert r["peak_mb"] < 7 * size_mb + 20, r["peak_mb"]


def test_the_grader_reads_a_private_copy_whatever_the_agent_swaps_in(tmp_path, monkeypatch):
    """The agent replaces submission.csv with a link to the answers once the copy is made (a
    deterministic TOCTOU): the grade is the copied file's, and the scorer never sees the agent's path."""
    prepared = make_competition(tmp_path / "comp")
    submission = tmp_path / "submission" / "submission.csv"
    submission.parent.mkdir()
    submission.write_text("id,y\n" + rows("0"))  # all zeros: accuracy 0.5; the answers would score 1.0
    seen = []
    real = grade_mod._score_file

    def swap_then_score(prepared_, path):
        submission.unlink()
        submission.symlink_to(prepared.answers_path)  # the swap, between the check and the read
        seen.append((path, stat.S_IMODE(os.stat(path).st_mode), stat.S_IMODE(os.stat(path.parent).st_mode)))
        return real(prepared_, path)

    monkeypatch.setattr(grade_mod, "_score_file", swap_then_score)
    grade = grade_submission(prepared, submission, follow_links=False)
    assert grade["score"] == 0.5 and grade["valid_submission"] and grade["reason"] == ""
    (path, mode, folder_mode), = seen
    assert path != submission and submission not in path.parents and path.name == "submission.csv"
    assert mode == 0o600 and folder_mode == 0o700 and not path.exists()  # removed after grading
    assert grade["submission_path"] == str(submission)
    # graded again, now that it is a link: refused, never followed
    monkeypatch.setattr(grade_mod, "_score_file", real)
    again = grade_submission(prepared, submission, follow_links=False)
    assert again["score"] is None and "symbolic link" in again["reason"] and not again["submission_exists"]


def test_private_copy_is_what_was_opened(tmp_path):
    agent = tmp_path / "submission.csv"
    agent.write_text("id,y\n1,0\n")
    with private_copy(agent) as copy:
        agent.write_text("id,y\n1,1\n")  # rewritten in place after the copy
        assert copy.read_text() == "id,y\n1,0\n"
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not copy.exists() and not copy.parent.exists()


def test_a_file_over_max_submission_mb_is_invalid_naming_its_size_and_the_cap(tmp_path):
    prepared = make_competition(tmp_path / "comp")
    path = tmp_path / "submission.csv"
    path.write_text("id,y\n" + rows("1"))
    size = path.stat().st_size
    for follow in (False, True):
        grade = grade_submission(prepared, path, follow_links=follow, max_submission_mb=100 / MB)
        assert grade["valid_submission"] is False and grade["score"] is None and grade["submission_exists"]
        assert f"{size} bytes" in grade["reason"] and "100 bytes" in grade["reason"]
        assert "max_submission_mb" in grade["reason"]
    assert grade_submission(prepared, path, follow_links=False)["valid_submission"] is True  # default cap


def test_snapshots_skip_a_file_over_the_cap(tmp_path):
    submission = tmp_path / "submission.csv"
    submission.write_bytes(b"id,y\n" + b"1,0\n" * 1000)
    shots = Snapshotter(submission, tmp_path / "snaps", interval=3600, t0=0.0, max_submission_mb=1000 / MB)
    (tmp_path / "snaps").mkdir()
    assert shots.take() is None and "limit" in (shots.refused or "")
    submission.write_bytes(b"id,y\n1,0\n")
    snap = shots.take()
    assert snap is not None and snap.path.read_bytes() == b"id,y\n1,0\n"
    assert shots.take() is None  # unchanged: no second copy
    assert [p.name for p in (tmp_path / "snaps").iterdir()] == [snap.path.name]


def test_reasons_quote_only_short_cleaned_excerpts(tmp_path):
    prepared = make_competition(tmp_path / "comp")
    long_ids = tmp_path / "long_ids.csv"
    long_ids.write_text("id,y\n" + "".join(f"{'x' * 100_000}{i},0\n" for i in range(N)))
    controls = tmp_path / "controls.csv"
    controls.write_bytes(b'id,y\n"\x1b[31m\x07evil\nline\r",1\n' + rows().encode())
    numeric = tmp_path / "numeric.csv"
    numeric.write_text("id,y\n" + "".join(f"{i},{'n' * 50_000}\n" for i in IDS))
    for path in (long_ids, controls, numeric):
        grade = grade_submission(prepared, path, follow_links=False)
        reason = grade["reason"]
        assert not grade["valid_submission"] and 0 < len(reason) <= 500, (path.name, len(reason))
        assert reason.isprintable() and "\x1b" not in reason, reason
        ok, why = validate_only(prepared, path)
        assert not ok and len(why) <= 500 and why.isprintable()
    assert "x" * 40 not in grade_submission(prepared, long_ids)["reason"]  # each value cut to a short excerpt


def test_exception_messages_are_bounded(tmp_path):
    grade_py = """
        def grade(submission, answers):
            raise ValueError("first line " + "z" * 100000 + "\\nsecond line\\x1b[0m")
    """
    prepared = make_competition(tmp_path / "comp", metric="custom", grade_py=grade_py)
    path = tmp_path / "submission.csv"
    path.write_text("id,y\n" + rows())
    grade = grade_submission(prepared, path, follow_links=False)
    assert not grade["valid_submission"] and "first line zzz" in grade["reason"]
    assert len(grade["reason"]) <= 500 and grade["reason"].isprintable() and "second line" not in grade["reason"]


def test_excerpt():
    assert excerpt("a\nb\tc\x00d") == "a b c?d"
    assert excerpt("x" * 1000) == "x" * 197 + "..." and len(excerpt("x" * 1000)) == 200
    assert excerpt(b"\xff\xfeok", 10) == "\ufffd\ufffdok"  # undecodable bytes: replacement characters
    assert len(excerpt("é" * 10**7)) == 200


# ------------------------------------------------------------------------- mleray grade (the CLI)

@pytest.fixture
def toy(tmp_path, monkeypatch, cache_dir):
    folder = write_toy_competition(tmp_path / "competitions" / "toy")
    monkeypatch.setenv("MLERAY_COMPETITIONS_DIR", str(folder.parent))
    return tmp_path


def test_cli_follows_the_owners_link_but_keeps_the_cap_and_refuses_special_files(toy, capsys):
    real = toy / "real.csv"
    real.write_text("id,y\n" + "".join(f"{i},{i % 2}\n" for i in range(1, 11)))
    link = toy / "link.csv"
    link.symlink_to(real)
    assert grade_cli.main([str(link), "toy"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 1.0  # the host owner's link is followed
    assert grade_cli.main([str(link), "toy", "--max-submission-mb", "0.00001"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert not entry["valid_submission"] and f"{real.stat().st_size} bytes" in entry["reason"]
    fifo = toy / "fifo.csv"
    os.mkfifo(fifo)
    zero = toy / "zero.csv"
    zero.symlink_to("/dev/zero")
    for special in (fifo, zero):  # answered at once, never opened
        assert grade_cli.main([str(special), "toy"]) == 0
        entry = json.loads(capsys.readouterr().out)
        assert not entry["valid_submission"] and "not a regular file" in entry["reason"], entry["reason"]
    with pytest.raises(SystemExit):
        grade_cli.main([str(real), "toy", "--max-submission-mb", "0"])


def test_validate_never_tells_the_agent_the_hosts_paths_or_errors(tmp_path):
    """A host-side failure (here the answers gone) is in the record with its detail, but the agent's
    /validate answer names it without the private folder's path or the error's text."""
    prepared = make_competition(tmp_path / "comp")
    path = tmp_path / "submission.csv"
    path.write_text("id,y\n" + rows())
    prepared.answers_path.unlink()
    grade = grade_submission(prepared, path, follow_links=False)
    assert not grade["valid_submission"] and str(prepared.private_dir) in grade["reason"]
    ok, why = validate_only(prepared, path)
    assert not ok and "problem on the host" in why
    assert str(prepared.private_dir) not in why and "answers" not in why and "No such file" not in why


def test_the_narrowest_valid_submission_grades_within_a_small_multiple_of_its_size(tmp_path):
    """The narrowest valid file (1M rows of `id,digit`, 8.5 MB): ids parsed as Python strings made grading
    peak at 20-26x its size; read by Arrow as text and matched as integers it stays a small multiple, in a
    process whose answers are already held (the snapshots of a trial), and the score is the metric's."""
    n = 1_000_000
    rng = np.random.default_rng(1)
    root = tmp_path / "comp"
    public, private = root / "public", root / "private"
    for d in (public, private):
        d.mkdir(parents=True)
    ids = np.arange(1, n + 1)
    truth = rng.integers(0, 10, n)
    pred = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 10, n))
    pd.DataFrame({"id": ids, "y": truth}).to_csv(private / "answers.csv", index=False)
    pd.DataFrame({"id": ids, "y": 0}).to_csv(public / "sample_submission.csv", index=False)
    sub, shuffled = tmp_path / "submission.csv", tmp_path / "shuffled.csv"
    pd.DataFrame({"id": ids, "y": pred}).to_csv(sub, index=False)
    order = rng.permutation(n)
    pd.DataFrame({"id": ids[order], "y": pred[order]}).to_csv(shuffled, index=False)
    out = subprocess.run([sys.executable, "-c", MEASURE, str(root), "accuracy", str(sub), str(shuffled)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    size_mb = sub.stat().st_size / MB
    for line in out.stdout.splitlines():
        r = json.loads(line)
        print(f"{r['name']}: {size_mb:.1f} MB, graded in {r['grade_s']:.2f} s, peak +{r['peak_mb']:.0f} MB "
              f"({r['peak_mb'] / size_mb:.1f}x its size)")
        assert r["grade"]["valid_submission"], r["grade"]["reason"]
        assert r["grade"]["score"] == round(float(np.mean(pred == truth)), 5)
        assert r["peak_mb"] < 8 * size_mb + 20, r["peak_mb"]
