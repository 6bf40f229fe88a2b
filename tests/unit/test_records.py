"""The one reader of trials.jsonl: torn tails, blank and bad lines, one dedupe rule, the same for every caller."""

import json
from datetime import datetime, timezone

import pytest

from analysis import load
from mleray.cli import logs as logs_cli
from mleray.config import TierConfig
from mleray.grading import report
from mleray.records import TrialResult, failed_record, now, read_records
from mleray.storage.backends import ArrowSweepStorage, open_sweep_storage
from mleray.storage.store import SweepStore
from mleray.sweep.trials import TrialSpec


def _rec(trial, attempt=0, status="graded", score=None, seed=0):
    return TrialResult(competition_id=f"c-{trial}", trial_id=trial, agent="a", tier="cpu", seed=seed,
                       attempt=attempt, status=status, score=score).to_dict()


def _lines(*records):
    return [json.dumps(r) for r in records]


def test_blank_lines_and_a_torn_last_line_are_skipped():
    lines = ["", *_lines(_rec("a")), "   ", *_lines(_rec("b")), '{"trial_id": "c", "sco', ""]
    assert [r["trial_id"] for r in read_records(lines)] == ["a", "b"]


def test_a_bad_line_anywhere_is_skipped_with_a_warning_naming_it_or_an_error_when_strict(capsys):
    # Changed on purpose (issue 13): a reader skips a bad line with a warning instead of raising.
    for n, bad in enumerate(("garbage", "[1, 2]", "3")):
        lines = [*_lines(_rec("a")), bad, *_lines(_rec("b"))]
        assert [r["trial_id"] for r in read_records(lines, f"x{n}/trials.jsonl")] == ["a", "b"]
        assert capsys.readouterr().err.startswith(f"mleray: warning: x{n}/trials.jsonl:2: ")
        with pytest.raises(ValueError, match=rf"^x{n}/trials.jsonl:2: "):
            read_records(lines, f"x{n}/trials.jsonl", strict=True)


def test_the_highest_attempt_wins_then_the_later_line_in_file_order():
    lines = _lines(_rec("x", 1, score=1.0), _rec("y"), _rec("x", 0, "failed"),  # retry listed before its first try
                   _rec("z", score=1.0), _rec("z", score=2.0), _rec("w"))        # a tie: the later line
    kept = read_records(lines)
    assert [(r["trial_id"], r["attempt"], r["score"]) for r in kept] == [
        ("x", 1, 1.0), ("y", 0, None), ("z", 0, 2.0), ("w", 0, None)]


def test_a_record_without_trial_id_is_a_bad_line():
    # Changed on purpose (issue 13): no record is keyed by a trial id built from its fields any more; a
    # line without trial_id is bad (the sweep's store moves it out, and its trial runs again).
    a = {"competition_id": "c", "agent": "a", "tier": "cpu", "seed": 0, "attempt": 0}
    assert read_records(_lines(a, _rec("b"))) == [_rec("b")]


# A file on which any of the old rules (last line wins; graded beats failed; first line wins) picks
# differently from the documented one.
_FILE = [
    _rec("x", 1, score=1.0), _rec("x", 0, "failed"),          # last line wins would take the failed try
    _rec("y", 0, score=0.5), _rec("y", 1, "failed"),          # graded beats failed would take attempt 0
    _rec("z", score=1.0, seed=1), _rec("z", score=2.0, seed=1),  # first line wins would take 1.0
]
_EXPECTED = {"x": (1, "graded"), "y": (1, "failed"), "z": (0, "graded", 2.0)}


def _summary(records):
    return {r["trial_id"]: (r["attempt"], r["status"], *((r["score"],) if r["trial_id"] == "z" else ()))
            for r in records}


@pytest.mark.parametrize("backend", ["local", "parts"])
def test_every_reader_keeps_the_same_records(tmp_path, backend):
    if backend == "local":
        storage = open_sweep_storage(tmp_path, "sw")
        for line in _lines(*_FILE):
            storage.append_line(line)
        path = tmp_path / "sw" / "trials.jsonl"
        path.write_text(path.read_text() + '{"trial_id": "torn')
        assert _summary(report.read_records(path)) == _EXPECTED
        assert _summary(load.sweep_records(path)) == _EXPECTED
    else:  # an object store without appends: one part object per line
        import pyarrow.fs as pafs

        storage = ArrowSweepStorage(f"file://{tmp_path}", "sw", fs=pafs.LocalFileSystem(), base=str(tmp_path),
                                    append=False)
        for line in _lines(*_FILE):
            storage.append_line(line)
    assert _summary(logs_cli._records(storage).values()) == _EXPECTED
    assert _summary(SweepStore(storage).records) == _EXPECTED


def test_times_are_utc_with_their_offset():
    spec = TrialSpec("sw", "a", "c", "cpu", 0, TierConfig(cpus=2, memory_gb=4))
    record = failed_record(spec, 2, "node died")
    for stamp in (record["created_at"], record["finished_at"], now()):
        assert datetime.fromisoformat(stamp).tzinfo == timezone.utc
    assert (record["status"], record["attempt"], record["cpus"]) == ("failed", 2, 2)
    assert record["trial_id"] == "a__c__cpu__s0"
