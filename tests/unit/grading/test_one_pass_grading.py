"""Grading in one pass: the fast parse (ids read by Arrow as text, the other columns by pandas) grades every
file as the whole-file pandas parse does, reasons included; a trial's files whose content was already graded
reuse that grade (`memo`); the answers and sample are read once per process, never copied."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mleray.competitions import Competition, PreparedCompetition
from mleray.grading import grade as grade_mod
from mleray.grading import grade_submission, validate
from mleray.grading import validate as validate_mod


def competition(root, ids, truth, metric="accuracy", sample_fill=0):
    public, private = root / "public", root / "private"
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids, "y": truth}).to_csv(private / "answers.csv", index=False)
    pd.DataFrame({"id": ids, "y": sample_fill}).to_csv(public / "sample_submission.csv", index=False)
    comp = Competition(id=f"one-pass-{root.name}", name="t", root=root, metric=metric, id_column="id",
                       target_columns=["y"], sample_submission="sample_submission.csv", answers="answers.csv",
                       leaderboard=None, source="local", version="1")
    return PreparedCompetition(comp, public, private)


INT_IDS = list(range(1, 41))
TEXT_IDS = [f"img_{i:04d}" for i in range(40)]


def files(folder, ids):
    """Submissions of every kind, valid and not, as text: name -> content."""
    n = len(ids)
    labels = [i % 3 for i in range(n)]
    rows = [f"{i},{y}" for i, y in zip(ids, labels)]
    out = {
        "in_order": rows,
        "shuffled": rows[::-1],
        "one_missing": rows[1:],
        "one_extra": rows + ["999999,1"],
        "repeated": rows[:-1] + [rows[0]],
        "empty_id": [",1"] + rows[1:],
        "na_id": ["NA,1"] + rows[1:],
        "padded_ids": [f" {r.split(',')[0]} ,{r.split(',')[1]}" for r in rows],
        "leading_zeros": [f"0{r}" for r in rows],
        "nan_value": [f"{ids[0]},"] + rows[1:],
        "text_value": [f"{ids[0]},abc"] + rows[1:],
        "float_labels": [f"{i},{y}.0" for i, y in zip(ids, labels)],
        "quoted": [f'"{i}",{y}' for i, y in zip(ids, labels)],
        "ragged_short": [f"{ids[0]}"] + rows[1:],
        "ragged_long": [f"{ids[0]},1,2"] + rows[1:],
        "trailing_commas": [r + "," for r in rows],
        "blank_lines": rows[:5] + [""] + rows[5:],
        "crlf": rows,
        "inf_value": [f"{ids[0]},inf"] + rows[1:],
    }
    paths = {}
    for name, lines in out.items():
        path = folder / f"{name}.csv"
        end = "\r\n" if name == "crlf" else "\n"
        path.write_bytes(("id,y" + end + end.join(lines) + end).encode())
        paths[name] = path
    (folder / "wrong_header.csv").write_text("id,label\n" + "\n".join(rows) + "\n")
    paths["wrong_header"] = folder / "wrong_header.csv"
    return paths


@pytest.mark.parametrize("metric", ["accuracy", "rmse"])
@pytest.mark.parametrize("kind", ["int", "text"])
def test_the_fast_parse_grades_as_the_whole_file_parse(tmp_path, monkeypatch, kind, metric):
    ids = INT_IDS if kind == "int" else TEXT_IDS
    prepared = competition(tmp_path / f"{kind}-{metric}", ids, [i % 3 for i in range(len(ids))], metric)
    folder = tmp_path / "subs"
    folder.mkdir()
    subs = files(folder, ids)
    fast = {name: grade_submission(prepared, path, follow_links=False) for name, path in subs.items()}
    taken = []
    real = validate_mod._fast_parse

    def spy(path, id_column):
        parsed = real(path, id_column)
        taken.append(parsed is not None)
        return parsed

    monkeypatch.setattr(validate_mod, "_fast_parse", spy)
    for name, path in subs.items():
        grade_submission(prepared, path, follow_links=False)
    assert any(taken) and not all(taken)  # both ways are exercised by these files
    monkeypatch.setattr(validate_mod, "_fast_parse", lambda path, id_column: None)  # pandas alone, as before
    for name, path in subs.items():
        slow = grade_submission(prepared, path, follow_links=False)
        assert (fast[name]["score"], fast[name]["valid_submission"]) == (slow["score"], slow["valid_submission"]), name
        assert fast[name]["reason"].replace(str(path), "") == slow["reason"].replace(str(path), ""), name
    assert fast["in_order"]["valid_submission"] and fast["shuffled"]["score"] == fast["in_order"]["score"]
    for bad in ("one_missing", "one_extra", "repeated", "empty_id", "na_id", "nan_value", "wrong_header"):
        assert not fast[bad]["valid_submission"], bad
    zeros = fast["leading_zeros"]  # ids as written: "01" is not the id 1
    assert not zeros["valid_submission"] and "missing id" in zeros["reason"], zeros["reason"]


def test_shuffled_integer_and_text_ids_score_as_aligned(tmp_path):
    rng = np.random.default_rng(3)
    for kind, ids in (("int", list(range(10, 5010))), ("text", [f"t{i}" for i in range(5000)])):
        truth = rng.random(len(ids))
        prepared = competition(tmp_path / kind, ids, truth, "rmse", sample_fill=0.5)
        pred = truth + rng.normal(0, 0.1, len(ids))
        order = rng.permutation(len(ids))
        path = tmp_path / f"{kind}.csv"
        pd.DataFrame({"id": np.asarray(ids, dtype=object)[order], "y": pred[order]}).to_csv(path, index=False)
        written = pd.read_csv(path).set_index("id")["y"]
        expected = round(float(np.sqrt(np.mean((written.loc[ids].to_numpy() - truth) ** 2))), 5)
        assert grade_submission(prepared, path, follow_links=False)["score"] == expected


def test_a_content_already_graded_reuses_its_grade(tmp_path, monkeypatch):
    prepared = competition(tmp_path / "memo", INT_IDS, [i % 2 for i in range(40)])
    a, b, c = tmp_path / "0000001.0s.csv", tmp_path / "0000002.0s.csv", tmp_path / "submission.csv"
    a.write_text("id,y\n" + "".join(f"{i},0\n" for i in INT_IDS))
    b.write_text("id,y\n" + "".join(f"{i},{(i - 1) % 2}\n" for i in INT_IDS))
    c.write_bytes(a.read_bytes())  # the final submission is the first snapshot's content again
    calls = []
    real = grade_mod._score_file
    monkeypatch.setattr(grade_mod, "_score_file", lambda p, path: calls.append(path.name) or real(p, path))
    memo: dict = {}
    grades = [grade_submission(prepared, path, follow_links=False, memo=memo) for path in (a, b, c, a)]
    assert calls == [a.name, b.name]  # c and a again: their content was graded
    assert [g["score"] for g in grades] == [0.5, 1.0, 0.5, 0.5]
    assert grades[2]["submission_path"] == str(c) and grades[2]["created_at"] >= grades[0]["created_at"]
    grade_submission(prepared, c, follow_links=False)  # no memo: graded again
    assert calls == [a.name, b.name, c.name]


def test_answers_and_sample_are_read_once_per_process_and_never_copied(tmp_path, monkeypatch):
    prepared = competition(tmp_path / "once", INT_IDS, [i % 2 for i in range(40)])
    grade_mod._reference_cached.cache_clear()
    reads = []
    real = grade_mod.read_csv
    monkeypatch.setattr(grade_mod, "read_csv", lambda path: reads.append(path) or real(path))
    path = tmp_path / "s.csv"
    for value in range(3):
        path.write_text("id,y\n" + "".join(f"{i},{value}\n" for i in INT_IDS))
        grade_submission(prepared, path, follow_links=False)
    assert reads == [prepared.answers_path]  # the answers once; the sample's summary once with them
    ref = grade_mod.reference(prepared)
    held = ref.answers
    given = grade_mod._shared(held)
    given.loc[0, "y"] = 99  # a grader writing into what it was handed
    assert held.loc[0, "y"] != 99 and grade_mod.reference(prepared).answers is held
    prepared.answers_path.write_text("id,y\n" + "".join(f"{i},0\n" for i in INT_IDS) + "\n")  # re-prepared
    assert grade_mod.reference(prepared).answers is not held  # the key is the content's (size, mtime)


def test_reasons_for_many_bad_ids_show_a_few_and_the_count(tmp_path):
    ids = list(range(1, 2001))
    prepared = competition(tmp_path / "many", ids, [0] * len(ids))
    path = tmp_path / "s.csv"
    path.write_text("id,y\n" + "".join(f"{i + 5000},0\n" for i in ids))
    reason = grade_submission(prepared, path, follow_links=False)["reason"]
    assert "2000 missing id(s)" in reason and "2000 unexpected id(s)" in reason and "(2000 in all)" in reason
    assert len(reason) <= validate.REASON


def test_integer_keys_only_for_ids_written_as_their_integer():
    import pyarrow as pa

    keys = validate_mod._int_keys(pa.array(["0", "7", "-12", "1000000", str(2**63 - 1)]))
    assert keys is not None and keys.tolist() == [0, 7, -12, 1000000, 2**63 - 1]
    for other in (["1", "007"], ["1", "+7"], ["1", "-0"], ["1", " 7"], ["1", "7.0"], ["1", "x"], ["a1"], ["1", None],
                  ["1", str(2**63)]):
        assert validate_mod._int_keys(pa.array(other)) is None, other
