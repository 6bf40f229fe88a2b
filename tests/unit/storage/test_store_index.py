"""The store's small index and its line index (trials.jsonl.idx): a resume that parses no JSON for the
lines the index covers must decide exactly as the full parse does, and fall back to it on any doubt."""

import json

from mleray.storage.store import INDEX, SweepStore


def _rec(trial, attempt=0, infra=False, score=0.5):
    return {"trial_id": trial, "attempt": attempt, "status": "failed" if infra else "graded",
            "infra_failure": infra, "score": score}


def test_done_is_kept_up_to_date_and_records_stream_from_the_file(tmp_path):
    store = SweepStore(tmp_path)
    store.append(_rec("a"))
    store.append(_rec("b", infra=True))
    assert store.done == {"a"} and store.next_attempt("b") == 1 and len(store) == 2
    store.append(_rec("b", attempt=1, score=0.9), flush=False)
    assert store.done == {"a"}  # not yet written: not recorded
    assert not store.append(_rec("b", attempt=1))  # but not appended twice either
    store.flush()
    assert store.done == {"a", "b"}
    assert [(r["trial_id"], r["score"]) for r in store.iter_records()] == [("a", 0.5), ("b", 0.9)]
    assert (tmp_path / INDEX).read_text().count("\n") == 3


def test_a_resume_through_the_index_matches_the_full_parse(tmp_path):
    store = SweepStore(tmp_path)
    for i in range(50):
        store.append(_rec(f"t{i}", infra=i % 7 == 0), flush=False)
    store.flush()
    store.append(_rec("t0", attempt=1))
    with open(tmp_path / "trials.jsonl", "a") as f:  # a line another writer added after the index
        f.write(json.dumps(_rec("late")) + "\n")
    indexed = SweepStore(tmp_path)
    (tmp_path / INDEX).unlink()
    full = SweepStore(tmp_path)
    assert indexed.done == full.done and "late" in indexed.done and "t7" not in indexed.done and "t0" in indexed.done
    assert indexed.records == full.records and indexed.next_attempt("t14") == full.next_attempt("t14") == 1


def test_a_byte_changed_under_the_index_is_caught_and_the_line_moved_out(tmp_path, capsys):
    store = SweepStore(tmp_path)
    for trial in ("a", "b", "c"):
        store.append(_rec(trial))
    data = (tmp_path / "trials.jsonl").read_bytes()
    cut = data.index(b'"b"')
    (tmp_path / "trials.jsonl").write_bytes(data[:cut] + b"{" + data[cut + 1:])  # same size, b's line broken
    again = SweepStore(tmp_path)
    assert again.done == {"a", "c"}  # the CRC did not match: the full parse moved the broken line out
    assert "trials.jsonl:2" in capsys.readouterr().err
    assert (tmp_path / "trials.jsonl.rejected").exists()
    assert SweepStore(tmp_path).done == {"a", "c"}  # and the rebuilt index agrees


def test_an_index_claiming_a_duplicate_or_a_longer_file_is_not_trusted(tmp_path):
    store = SweepStore(tmp_path)
    store.append(_rec("a"))
    store.append(_rec("b"))
    index = (tmp_path / INDEX).read_text().splitlines()
    (tmp_path / INDEX).write_text("\n".join([index[0], index[0].replace(" a", " b")] + index[1:]) + "\n")
    assert SweepStore(tmp_path).done == {"a", "b"}
    end = int(index[-1].split()[0])
    (tmp_path / INDEX).write_text(index[0] + "\n" + f"{end + 100} 00000000 0 1 zzz\n")
    reopened = SweepStore(tmp_path)
    assert reopened.done == {"a", "b"} and "zzz" not in reopened.done
