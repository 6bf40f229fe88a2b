"""Sweep storage: local paths, pyarrow's LocalFileSystem through file:// URIs, and the part-object
append path object stores take (exercised on a file:// URI with native append switched off)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from mleray.storage.backends import ArrowSweepStorage, LocalSweepStorage, StorageError, SweepStorage, open_sweep_storage


def _local(tmp_path: Path) -> SweepStorage:
    return open_sweep_storage(tmp_path / "runs", "s")


def _file_uri(tmp_path: Path) -> SweepStorage:
    return open_sweep_storage(f"file://{tmp_path}/runs", "s")


def _parts(tmp_path: Path) -> SweepStorage:
    import pyarrow.fs as pafs

    return ArrowSweepStorage(f"file://{tmp_path}/runs", "s", fs=pafs.LocalFileSystem(),
                             base=f"{tmp_path}/runs", append=False)


BACKENDS = {"local": _local, "file-uri": _file_uri, "parts": _parts}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request, tmp_path) -> SweepStorage:
    return BACKENDS[request.param](tmp_path)


def test_kinds(tmp_path):
    assert isinstance(_local(tmp_path), LocalSweepStorage)
    uri = _file_uri(tmp_path)
    assert isinstance(uri, ArrowSweepStorage) and uri.native_append
    assert uri.local_path == tmp_path / "runs" / "s"
    assert _local(tmp_path).local_path == tmp_path / "runs" / "s"


def test_append_and_read_lines(storage, tmp_path):
    records = [{"trial_id": f"t{i}", "score": i / 3} for i in range(20)]
    for r in records:
        storage.append_line(json.dumps(r))
    assert [json.loads(line) for line in storage.read_lines()] == records
    storage.compact()
    assert [json.loads(line) for line in storage.read_lines()] == records
    # everything ends up in <root>/s/trials.jsonl, one JSON object per line
    on_disk = (tmp_path / "runs" / "s" / "trials.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in on_disk] == records
    with pytest.raises(ValueError):
        storage.append_line("two\nlines")


def test_reopen_sees_earlier_lines(storage, tmp_path):
    storage.append_line('{"trial_id": "a"}')
    again = type(storage)(**_reopen_args(storage, tmp_path))
    again.append_line('{"trial_id": "b"}')
    assert [json.loads(line)["trial_id"] for line in again.read_lines()] == ["a", "b"]


def _reopen_args(storage, tmp_path):
    if isinstance(storage, LocalSweepStorage):
        return {"root": tmp_path / "runs", "sweep": "s"}
    return {"uri": storage.uri, "sweep": "s", "fs": storage.fs, "base": f"{tmp_path}/runs",
            "append": storage.native_append}


def test_torn_last_line_is_cut(storage, tmp_path):
    storage.append_line('{"trial_id": "a"}')
    storage.compact()
    path = tmp_path / "runs" / "s" / "trials.jsonl"
    with open(path, "a") as f:
        f.write('{"trial_id": "b", "sc')  # the writer died mid-line
    assert [json.loads(line)["trial_id"] for line in storage.read_lines()] == ["a"]
    again = type(storage)(**_reopen_args(storage, tmp_path))
    again.append_line('{"trial_id": "c"}')
    assert [json.loads(line)["trial_id"] for line in again.read_lines()] == ["a", "c"]
    again.compact()
    assert [json.loads(line)["trial_id"] for line in path.read_text().splitlines()] == ["a", "c"]


def test_files(storage, tmp_path):
    storage.write_file("config.yaml", "name: s\n")
    assert storage.read_file("config.yaml") == b"name: s\n"
    storage.write_file("trials/t1/agent.log", b"one\n")
    assert storage.size("trials/t1/agent.log") == 4
    assert storage.size("nope") is None and not storage.exists("nope")
    assert storage.read_from("trials/t1/agent.log", 2) == b"e\n"
    assert storage.read_from("trials/t1/agent.log", 4) == b""
    assert storage.read_from("missing.log", 0) == b""
    assert storage.list_dir("trials") == ["t1"]
    assert storage.list_dir("no-such-dir") == []
    assert storage.is_dir("trials/t1") and storage.exists("trials/t1")


def test_upload_trial_folder(storage, tmp_path):
    local = tmp_path / "node-scratch" / "t1"
    (local / "submission").mkdir(parents=True)
    (local / "submission" / "submission.csv").write_text("id,y\n1,0\n")
    (local / "agent.log").write_text("hello\n")
    storage.upload_dir(local, "trials/t1")
    assert storage.read_file("trials/t1/submission/submission.csv") == b"id,y\n1,0\n"
    assert storage.read_file("trials/t1/agent.log") == b"hello\n"
    (local / "agent.log").write_text("hello again\n")
    storage.upload_dir(local, "trials/t1")  # a retry's upload replaces the files
    assert storage.read_file("trials/t1/agent.log") == b"hello again\n"


def _writer(root: str, n: int, tag: str) -> None:
    storage = open_sweep_storage(root, "s")
    for i in range(n):
        storage.append_line(json.dumps({"trial_id": f"{tag}{i}", "pad": "x" * 2000}))


def test_concurrent_appenders_never_interleave(tmp_path):
    root = str(tmp_path / "runs")
    procs = [multiprocessing.Process(target=_writer, args=(root, 200, tag)) for tag in "abc"]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = open_sweep_storage(root, "s").read_lines()
    assert len(lines) == 600
    assert {json.loads(line)["trial_id"] for line in lines} == {f"{t}{i}" for t in "abc" for i in range(200)}


def test_bad_uri_and_name(tmp_path):
    with pytest.raises(StorageError, match="nosuchscheme"):
        open_sweep_storage("nosuchscheme://bucket/x", "s")
    with pytest.raises(StorageError, match="sweep name"):
        open_sweep_storage(tmp_path, "a/b")


def test_a_rewritten_file_is_never_seen_short(storage):
    """A log uploaded whole again and again as it grows (how a trial's agent.log reaches a sweep's storage):
    a reader polling its size, as `mleray logs --follow` does, never sees it shorter than before, which it
    would take for a restarted log (a file:// URI was truncated and then written, in place)."""
    import threading

    stop, sizes = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            size = storage.size("trials/t/agent.log")
            if size is not None:
                sizes.append(size)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    text = ""
    for i in range(400):
        text += f"line {i} " + "x" * 200 + "\n"
        storage.write_file("trials/t/agent.log", text)
    stop.set()
    reader.join()
    assert sizes and all(a <= b for a, b in zip(sizes, sizes[1:])), "the reader saw the file shrink"
    assert storage.read_file("trials/t/agent.log").decode() == text
    assert storage.list_dir("trials/t") == ["agent.log"]  # no temporary file left beside it
