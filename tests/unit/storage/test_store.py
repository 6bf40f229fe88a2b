"""The results file: appended and flushed per trial, never twice, survives a torn last line."""

import json

from mleray.storage.store import SweepStore


def test_append_once_and_reload(tmp_path):
    store = SweepStore(tmp_path)
    assert store.append({"trial_id": "a", "score": 1})
    assert not store.append({"trial_id": "a", "score": 2})
    assert store.append({"trial_id": "b"})
    again = SweepStore(tmp_path)
    assert again.done == {"a", "b"} and again.records[0]["score"] == 1
    assert len((tmp_path / "trials.jsonl").read_text().splitlines()) == 2


def test_torn_last_line_is_cut(tmp_path):
    path = tmp_path / "trials.jsonl"
    path.write_text(json.dumps({"trial_id": "a"}) + "\n" + '{"trial_id": "b", "sco')
    store = SweepStore(tmp_path)
    assert store.done == {"a"}
    store.append({"trial_id": "b"})
    assert [json.loads(line)["trial_id"] for line in path.read_text().splitlines()] == ["a", "b"]


def test_corrupt_middle_line_is_moved_out_with_a_warning(tmp_path, capsys):
    # Changed on purpose (issue 13): a bad line no longer stops the store; it goes to trials.jsonl.rejected.
    (tmp_path / "trials.jsonl").write_text("garbage\n" + json.dumps({"trial_id": "a"}) + "\n")
    assert SweepStore(tmp_path).done == {"a"}
    assert "trials.jsonl:1: not JSON" in capsys.readouterr().err
    assert (tmp_path / "trials.jsonl").read_text() == json.dumps({"trial_id": "a"}) + "\n"
    assert json.loads((tmp_path / "trials.jsonl.rejected").read_text())["text"] == "garbage"
