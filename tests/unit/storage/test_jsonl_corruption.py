"""trials.jsonl is robust: every kind of bad line is moved to trials.jsonl.rejected (with its line number
and one warning) when the sweep's store opens the file, read-only readers skip it and never rewrite,
a trial folder's result.json whose record is missing is recorded, a failing append is one clear
error that names where the result is kept, and infrastructure failures are not final.

Disk full is real: a 64 KiB tmpfs mounted as the sweep folder (this needs root, as the tests' machine
has; elsewhere the test is skipped, and fails under CI=true).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import require

from analysis import load
from mleray import records as records_module
from mleray.cli import logs as logs_cli
from mleray.config import TierConfig
from mleray.grading import report
from mleray.records import Status, TrialResult, failed_record, is_final, read_file
from mleray.storage.backends import ArrowSweepStorage, open_sweep_storage
from mleray.storage.store import AppendError, SweepStore
from mleray.sweep.trials import TrialSpec


def _rec(trial, attempt=0, **kw) -> dict:
    return TrialResult(competition_id="c", trial_id=trial, agent="a", tier="cpu", attempt=attempt, **kw).to_dict()


def _line(record) -> bytes:
    return json.dumps(record).encode()


A0, A0_AGAIN, C, D = _rec("a", score=1.0), _rec("a", score=2.0), _rec("c"), _rec("d")
# One line of each kind of damage, numbered as in the file; blank line 8 is no damage.
BAD_FILE = [
    _line(A0),                                 # 1: a duplicate: line 7 repeats trial a at the same attempt
    b'{"trial_id": "b", "competition_id": "c", "sco',  # 2: cut mid-JSON (trial b's only line)
    b"\xff\xfe\x00\x01binary",                 # 3: not UTF-8
    b"[1, 2]",                                 # 4: JSON, not an object
    b'{"competition_id": "c", "score": 0.5}',  # 5: no trial_id
    _line(C),                                  # 6
    _line(A0_AGAIN),                           # 7: wins over line 1 (same attempt: the later line)
    b"",                                       # 8: blank
    _line(D),                                  # 9
]
EXPECTED_WHY = {
    1: r"a duplicate record of trial a: line 7 \(attempt 0\) counts",
    2: r"not JSON, or cut short: Unterminated string starting at, column \d+",
    3: r"not UTF-8 text \(byte 0xff at column 1\)",
    4: r"a JSON array, not an object",
    5: r"an object without a trial_id",
}


def _local(root: Path):
    return open_sweep_storage(root, "sw")


def _file_uri(root: Path):
    return open_sweep_storage(f"file://{root}", "sw")


def _parts(root: Path):  # an object store: no appends, one part object per line, whole-object writes
    import pyarrow.fs as pafs

    return ArrowSweepStorage(f"file://{root}", "sw", fs=pafs.LocalFileSystem(), base=str(root), append=False)


BACKENDS = {"local": _local, "file-uri": _file_uri, "parts": _parts}


def _write(root: Path, lines) -> Path:
    path = root / "sw" / "trials.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _warnings(err: str) -> list:
    return [line for line in err.splitlines() if line.startswith("mleray: warning:")]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_kind_of_bad_line_is_moved_to_rejected_with_one_warning_each(tmp_path, capsys, backend):
    path = _write(tmp_path, BAD_FILE)
    store = SweepStore(BACKENDS[backend](tmp_path))

    assert store.done == {"a", "c", "d"}  # b's only line was bad: b is not done, it runs again
    assert [r["trial_id"] for r in store.records] == ["c", "a", "d"] and store.records[1]["score"] == 2.0
    # rewritten without the bad lines, the good ones byte for byte, in file order
    assert path.read_bytes() == b"".join(line + b"\n" for line in (BAD_FILE[5], BAD_FILE[6], BAD_FILE[8]))
    assert not list(path.parent.glob(".trials.jsonl.*.tmp"))  # the temporary file was renamed over it

    rejected = [json.loads(line) for line in (path.parent / "trials.jsonl.rejected").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [1, 2, 3, 4, 5]
    for entry in rejected:
        assert re.fullmatch(EXPECTED_WHY[entry["line"]], entry["why"]), entry
        assert entry["source"] == "trials.jsonl" and entry["rejected_at"]
    assert [r["text"] for r in rejected] == [BAD_FILE[0].decode(), BAD_FILE[1].decode(), "\\xff\\xfe\x00\x01binary",
                                             "[1, 2]", BAD_FILE[4].decode()]

    warnings = _warnings(capsys.readouterr().err)
    assert len(warnings) == 5
    for n, warning in zip((1, 2, 3, 4, 5), warnings):
        assert re.fullmatch(rf"mleray: warning: \S*trials\.jsonl:{n}: {EXPECTED_WHY[n]}; "
                            r"moved to trials\.jsonl\.rejected", warning), warning

    # b's record appended now is accepted; a clean file reopens without a word and rejects nothing more
    assert store.append(_rec("b"))
    again = SweepStore(BACKENDS[backend](tmp_path))
    assert again.done == {"a", "b", "c", "d"}
    assert _warnings(capsys.readouterr().err) == []
    assert len((path.parent / "trials.jsonl.rejected").read_text().splitlines()) == 5


def test_a_line_whose_attempt_is_not_a_number_or_trial_id_not_a_name_is_bad(tmp_path, capsys):
    _write(tmp_path, [_line({**C, "attempt": "first"}), _line({**D, "trial_id": ["d"]}), _line(A0)])
    assert SweepStore(tmp_path / "sw").done == {"a"}
    warnings = _warnings(capsys.readouterr().err)
    assert "trials.jsonl:1: attempt 'first' is not a whole number" in warnings[0]
    assert "trials.jsonl:2: trial_id ['d'] is not a name" in warnings[1]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_torn_last_line_is_moved_out_and_a_whole_last_record_only_gains_its_newline(tmp_path, capsys, backend):
    path = _write(tmp_path, [_line(A0)])
    with open(path, "ab") as f:
        f.write(b'{"trial_id": "c", "sc')  # the driver was killed mid-append
    assert SweepStore(BACKENDS[backend](tmp_path)).done == {"a"}
    (warning,) = _warnings(capsys.readouterr().err)
    assert re.fullmatch(r"mleray: warning: \S*trials\.jsonl:2: an unfinished last line \(a writer stopped mid-line: "
                        r"not JSON, or cut short: .*\); moved to trials\.jsonl\.rejected", warning), warning
    assert path.read_bytes() == _line(A0) + b"\n"
    (entry,) = [json.loads(line) for line in (path.parent / "trials.jsonl.rejected").read_text().splitlines()]
    assert (entry["line"], entry["text"]) == (2, '{"trial_id": "c", "sc')

    with open(path, "ab") as f:
        f.write(_line(C))  # a whole record, only its newline missing (a file put together by hand)
    assert SweepStore(BACKENDS[backend](tmp_path)).done == {"a", "c"}
    assert path.read_bytes() == _line(A0) + b"\n" + _line(C) + b"\n"
    assert _warnings(capsys.readouterr().err) == []


def test_read_only_readers_skip_bad_lines_with_a_warning_and_never_rewrite(tmp_path, capsys):
    path = _write(tmp_path, BAD_FILE)
    with open(path, "ab") as f:
        f.write(b'{"trial_id": "e", "sc')  # torn: a reader may be looking while a writer is mid-line
    before = path.read_bytes()

    readers = {
        "analysis": lambda: load.sweep_records(path.parent),
        "grading report": lambda: report.read_records(path),
        "mleray logs": lambda: list(logs_cli._records(logs_cli._open_existing(str(tmp_path), "sw")).values()),
    }
    for name, read in readers.items():
        records_module._warned.clear()  # a process warns once per line (a live view rereads); here each reader
        records = read()
        assert sorted(r["trial_id"] for r in records) == ["a", "c", "d"], name
        assert next(r for r in records if r["trial_id"] == "a")["score"] == 2.0, name
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if name != "mleray logs":  # logs reads complete lines only: the torn one may still be written
            warned = sorted(int(m) for m in re.findall(r"trials\.jsonl:(\d+): .*; skipped", err))
            assert warned == [1, 2, 3, 4, 5, 10], (name, err)
    assert path.read_bytes() == before  # never rewritten
    assert not (path.parent / "trials.jsonl.rejected").exists()
    # the command itself (`mleray logs sw c`): the trial's outcome, nothing rewritten
    out, err = io.StringIO(), io.StringIO()
    assert logs_cli.main(["sw", "c", "--storage", str(tmp_path)], out=out, err=err) == 0
    assert "trial c finished: graded" in err.getvalue(), err.getvalue()
    assert path.read_bytes() == before


def _result(root: Path, trial: str, record) -> Path:
    """A trial folder's result.json as the runner writes it (mleray.trial.runner: indent=2)."""
    path = root / "sw" / "trials" / trial / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) if isinstance(record, dict) else record)
    return path


@pytest.mark.parametrize("backend", ["local", "parts"])
def test_a_result_json_without_its_record_is_recorded_when_the_store_opens(tmp_path, capsys, backend):
    spec = TrialSpec("sw", "a", "c", "cpu", 0, TierConfig())
    _write(tmp_path, [_line(_rec("done", score=0.5)), _line(failed_record(spec, 0, "node died"))])
    _result(tmp_path, "lost", _rec("lost", score=0.8))                  # its append failed: recorded now
    _result(tmp_path, "done", _rec("done", score=0.1))                  # recorded already: left alone
    _result(tmp_path, spec.trial_id, _rec(spec.trial_id, 1, score=0.3))  # a retry after an infra failure
    _result(tmp_path, "half", '{"trial_id": "half", "sc')               # cut short: the trial runs again
    _result(tmp_path, "other", _rec("someone-else"))                    # another trial's file: ignored
    (tmp_path / "sw" / "trials" / "running").mkdir()                    # no result yet

    storage = BACKENDS[backend](tmp_path)
    store = SweepStore(storage)
    assert store.done == {"done", "lost", spec.trial_id}
    assert {r["trial_id"]: r["score"] for r in store.records} == {"done": 0.5, "lost": 0.8, spec.trial_id: 0.3}
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mleray: ")]
    assert sorted(notes) == sorted(f"mleray: {storage.shown(f'trials/{t}/result.json')}: recorded (its trial "
                                   "finished, but its record was missing from trials.jsonl)"
                                   for t in ("lost", spec.trial_id))
    again = SweepStore(BACKENDS[backend](tmp_path))  # recorded once: nothing to pick up again, no warning
    assert again.records == store.records
    assert capsys.readouterr().err == ""


def test_infrastructure_failures_are_not_final_and_the_next_attempt_supersedes_them(tmp_path, capsys):
    spec = TrialSpec("sw", "a", "c", "cpu", 0, TierConfig())
    infra = failed_record(spec, 0, "actor or node died (attempt 0): ...; no retries left")
    assert infra["status"] == Status.FAILED and infra["infra_failure"] is True and not is_final(infra)
    old_style = {k: v for k, v in infra.items() if k != "infra_failure"}  # written before the field existed
    final = [_rec("t", reason="no submission", timed_out=True), _rec("t", oom_killed=True),
             _rec("t", valid_submission=False, reason="invalid"), failed_record(spec, 0, "bad", infra=False)]
    assert not is_final(old_style) and all(is_final(r) for r in final)

    store = SweepStore(tmp_path / "sw")
    assert store.append(infra)
    assert store.done == set() and store.next_attempt(spec.trial_id) == 1
    assert not store.append({**infra, "reason": "the same attempt again"})  # only a later attempt supersedes
    graded = {**_rec(spec.trial_id, 1, score=0.7)}
    assert store.append(graded)
    assert store.done == {spec.trial_id} and not store.append(_rec(spec.trial_id, 2))  # final now

    again = SweepStore(tmp_path / "sw")
    assert again.records == [graded]
    # the superseded infrastructure failure stays as history: no duplicate, no warning, nothing rejected
    assert len((tmp_path / "sw" / "trials.jsonl").read_text().splitlines()) == 2
    assert capsys.readouterr().err == "" and not (tmp_path / "sw" / "trials.jsonl.rejected").exists()
    assert read_file(tmp_path / "sw" / "trials.jsonl") == [graded]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs at tmp_path/fs (root only), unmounted afterwards."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(folder: Path) -> Path:
    """Writes into `folder` until its filesystem is full."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError as err:
            assert err.errno == 28
    return filler


def test_a_full_disk_stops_the_append_with_one_message_and_the_next_open_records_the_result(tiny_tmpfs):
    store = SweepStore(tiny_tmpfs / "sw")
    pad = 4096 - len(_line(_rec("first", reason=""))) - 1
    assert store.append(_rec("first", reason="x" * pad))  # exactly one page: the next line needs another
    _result(tiny_tmpfs, "lost", _rec("lost", score=0.9))
    filler = _fill(tiny_tmpfs)

    with pytest.raises(AppendError) as caught:
        store.append(_rec("lost", score=0.9))
    assert str(caught.value) == (f"cannot append to {tiny_tmpfs}/sw/trials.jsonl: "
                                 "[Errno 28] No space left on device; "
                                 "the trial's result is kept in trials/lost/result.json "
                                 "and is recorded on the next run")
    with pytest.raises(AppendError,
                       match=r"\[Errno 28\] No space left on device; trial gone runs again on the next run$"):
        store.append(failed_record(TrialSpec("sw", "a", "c", "cpu", 0, TierConfig()), 0, "x") | {"trial_id": "gone"})
    assert "lost" not in store.done

    os.unlink(filler)
    again = SweepStore(tiny_tmpfs / "sw")
    assert again.done == {"first", "lost"}
    assert [json.loads(line)["trial_id"] for line in (tiny_tmpfs / "sw" / "trials.jsonl").read_text().splitlines()] \
        == ["first", "lost"]  # no half line was left by the failed appends
