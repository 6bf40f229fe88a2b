"""`mleray logs`: show and follow a trial's agent log, on a local path and a file:// URI."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from mleray.cli import logs as logs_cli
from mleray.storage.backends import open_sweep_storage

TRIAL = "dummy__titanic__cpu__s0"


@pytest.fixture(params=["path", "uri"])
def root(request, tmp_path) -> str:
    return str(tmp_path / "runs") if request.param == "path" else f"file://{tmp_path}/runs"


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = logs_cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_show_log_by_unique_part(root):
    storage = open_sweep_storage(root, "sw")
    storage.write_file(f"trials/{TRIAL}/agent.log", "line 1\nline 2\n")
    storage.write_file("trials/baseline__titanic__cpu__s0/agent.log", "other\n")
    assert _run("sw", TRIAL, "--storage", root) == (0, "line 1\nline 2\n", "")
    assert _run("sw", "dummy__tit", "--storage", root)[1] == "line 1\nline 2\n"
    code, _, err = _run("sw", "titanic", "--storage", root)
    assert code == 2 and "matches 2 trials" in err
    code, _, err = _run("sw", "nope", "--storage", root)
    assert code == 2 and "no trial matches 'nope'" in err and TRIAL in err


def test_unknown_sweep_lists_sweeps(root):
    open_sweep_storage(root, "sw").write_file(f"trials/{TRIAL}/agent.log", "x\n")
    code, _, err = _run("other", TRIAL, "--storage", root)
    assert code == 2 and "no sweep 'other'" in err and "sw" in err


def test_recorded_trial_without_log(root):
    storage = open_sweep_storage(root, "sw")
    storage.append_line(json.dumps({"trial_id": TRIAL, "status": "failed", "reason": "node died; no retries left"}))
    code, out, err = _run("sw", TRIAL, "--storage", root)
    assert code == 0 and out == "" and "failed" in err and "node died" in err


def test_follow_until_recorded(root):
    storage = open_sweep_storage(root, "sw")
    storage.write_file(f"trials/{TRIAL}/agent.log", "start\n")

    def agent():
        path = storage.local_path / "trials" / TRIAL / "agent.log"
        for i in range(5):
            time.sleep(0.1)
            with open(path, "a") as f:
                f.write(f"step {i}\n")
        time.sleep(0.1)
        storage.append_line(json.dumps({"trial_id": TRIAL, "status": "graded", "score": 0.77, "bronze_medal": True}))

    thread = threading.Thread(target=agent)
    thread.start()
    t0 = time.monotonic()
    code, out, err = _run("sw", TRIAL, "--storage", root, "--follow", "--poll", "0.05")
    thread.join()
    assert code == 0
    assert out == "start\n" + "".join(f"step {i}\n" for i in range(5))
    assert "graded" in err and "score 0.77" in err and "bronze medal" in err
    assert time.monotonic() - t0 < 5


def test_follow_sees_a_restarted_log(tmp_path):
    storage = open_sweep_storage(tmp_path, "sw")
    storage.write_file(f"trials/{TRIAL}/agent.log", "attempt 0 line\n" * 3)
    out, err = io.StringIO(), io.StringIO()
    storage.write_file(f"trials/{TRIAL}/agent.log", "attempt 0 line\n" * 3)

    def retry():
        time.sleep(0.2)
        storage.write_file(f"trials/{TRIAL}/agent.log", "a1\n")
        time.sleep(0.2)
        storage.append_line(json.dumps({"trial_id": TRIAL, "status": "graded", "attempt": 1}))

    thread = threading.Thread(target=retry)
    thread.start()
    code = logs_cli.show(storage, TRIAL, True, out, err, poll=0.05, timeout=10)
    thread.join()
    assert code == 0
    assert out.getvalue().endswith("a1\n")
    assert "log restarted" in err.getvalue() and "attempt 1" in err.getvalue()


def test_cli_entry_is_wired():
    from mleray.cli.main import COMMANDS

    assert COMMANDS["logs"][0] == "mleray.cli.logs"


def test_follow_reads_only_what_was_appended(tmp_path):
    storage = open_sweep_storage(tmp_path, "sw")
    storage.append_lines([json.dumps({"trial_id": f"other{i}", "status": "graded", "pad": "x" * 300})
                          for i in range(3000)])
    storage.write_file(f"trials/{TRIAL}/agent.log", "start\n")
    reads = []
    read_from = storage.read_from

    def counted(path, offset):
        data = read_from(path, offset)
        reads.append((path, len(data)))
        return data

    storage.read_from = counted  # type: ignore[method-assign]

    def later():
        time.sleep(2.5)
        storage.append_lines([json.dumps({"trial_id": "another", "status": "graded"}),
                              json.dumps({"trial_id": TRIAL, "status": "graded", "score": 0.5})])

    thread = threading.Thread(target=later)
    thread.start()
    out, err = io.StringIO(), io.StringIO()
    code = logs_cli.show(storage, TRIAL, True, out, err, poll=0.05, timeout=20)
    thread.join()
    assert code == 0 and "score 0.5" in err.getvalue()
    record_reads = [n for path, n in reads if path == "trials.jsonl"]
    assert len(record_reads) >= 3  # looked several times ...
    assert sum(record_reads) == storage.size("trials.jsonl")  # ... and read each byte once


def test_record_follower_on_append_parts_reads_each_part_once(tmp_path):
    import pyarrow.fs as pafs

    from mleray.storage.backends import ArrowSweepStorage

    storage = ArrowSweepStorage(str(tmp_path), "sw", fs=pafs.LocalFileSystem(), base=str(tmp_path), append=False)
    follower = logs_cli.RecordFollower(storage, TRIAL)
    total = 0
    for i in range(5):
        lines = [json.dumps({"trial_id": f"t{i}-{j}", "status": "graded"}) for j in range(3)]
        storage.append_lines(lines)
        total += sum(len(line) + 1 for line in lines)
        assert follower.poll() is None
    storage.append_lines([json.dumps({"trial_id": TRIAL, "status": "failed", "attempt": 0, "infra_failure": True})])
    storage.append_lines([json.dumps({"trial_id": TRIAL, "status": "graded", "attempt": 1})])
    record = follower.poll()
    assert record is not None and record["attempt"] == 1
    assert follower.bytes_read < total + 200  # every part once
