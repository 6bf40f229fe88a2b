"""Uploading a trial folder copies regular files only: a symbolic link (to /etc/shadow, to /etc, a
loop), a FIFO, a socket and a device the agent planted are skipped, never followed or opened, and
named in agent.log. Against moto's S3 server (the stand-in for S3 used by test_s3_storage.py) through
trial_folder, and through upload_dir on a path and on a pyarrow file:// store without native append."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest
from helpers import moto_s3

from mleray.storage.backends import ArrowSweepStorage, LocalSweepStorage, open_location, open_sweep_storage
from mleray.trial.folder import trial_folder

SECRET = Path("/etc/shadow")


@pytest.fixture
def s3_root(monkeypatch):
    """An s3:// storage root on a fresh moto server in a thread of this process."""
    yield from moto_s3(monkeypatch, "mleray-test/runs")


def plant(root: Path) -> list:
    """A trial folder as a hostile agent leaves it; returns the sockets to close afterwards."""
    for folder in ("submission", "code", "logs"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "submission" / "submission.csv").write_text("id,y\n1,0\n")
    (root / "code" / "train.py").write_text("print('hi')\n")
    (root / "agent.log").write_text("agent says hello\n")
    (root / "submission" / "shadow.csv").symlink_to(SECRET)
    (root / "code" / "etc").symlink_to("/etc")  # a folder link: its files never walked
    (root / "logs" / "loop").symlink_to("loop")  # a link to itself
    (root / "logs" / "a").symlink_to("b")
    (root / "logs" / "b").symlink_to("a")
    os.mkfifo(root / "submission" / "pipe.csv")  # opening it for reading would block forever
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(root / "code" / "agent.sock"))
    if os.geteuid() == 0:
        os.mknod(root / "logs" / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    return [sock]


EXPECTED_NOTES = {"submission/shadow.csv (a symbolic link)", "code/etc (a symbolic link)",
                  "logs/loop (a symbolic link)", "logs/a (a symbolic link)", "logs/b (a symbolic link)",
                  "submission/pipe.csv (a FIFO)", "code/agent.sock (a socket)"}


def expected_notes() -> set:
    return EXPECTED_NOTES | ({"logs/null (a character device)"} if os.geteuid() == 0 else set())


def uploaded(storage, dest: str) -> dict:
    """{relative path: bytes} of every file under `dest`, walked with the storage's own listing."""
    out, pending = {}, [""]
    while pending:
        rel = pending.pop()
        for name in storage.list_dir(f"{dest}/{rel}".rstrip("/")):
            path = f"{rel}/{name}" if rel else name
            if storage.is_dir(f"{dest}/{path}"):
                pending.append(path)
            else:
                out[path] = storage.read_file(f"{dest}/{path}")
    return out


def secret_bytes() -> bytes:
    try:
        return SECRET.read_bytes()
    except OSError:
        return b""


def run_bounded(fn, seconds: float = 60.0):
    """Runs `fn` in a thread: a FIFO opened by mistake would hang it, which fails here instead."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as err:  # reported below
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"upload still running after {seconds:.0f} s (a FIFO opened?)"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def check(files: dict, notes) -> None:
    assert files["submission/submission.csv"] == b"id,y\n1,0\n"
    assert files["code/train.py"] == b"print('hi')\n"
    assert not any(name.split("/")[-1] in ("shadow.csv", "pipe.csv", "agent.sock", "loop", "a", "b", "null")
                   or name.startswith("code/etc") for name in files), sorted(files)
    secret = secret_bytes()
    if secret:
        assert all(secret not in data for data in files.values())
    assert set(notes) == expected_notes()


def test_trial_folder_upload_to_s3_skips_links_and_special_files(s3_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MLERAY_SCRATCH_DIR", str(tmp_path / "scratch"))
    location = open_sweep_storage(s3_root, "links").location
    sockets: list = []

    def trial():
        with trial_folder(location, "links", "t1", mirror_every=3600) as root:
            sockets.extend(plant(root))

    try:
        run_bounded(trial)
    finally:
        for sock in sockets:
            sock.close()
    files = uploaded(open_location(location), "trials/t1")
    log = files["agent.log"].decode().splitlines()
    notes = [line.removeprefix("upload: skipped ") for line in log if line.startswith("upload: skipped ")]
    assert log[0] == "agent says hello"
    check(files, notes)
    assert not (tmp_path / "scratch" / "links" / "t1").exists()  # the scratch is gone, links and all


@pytest.mark.parametrize("kind", ["path", "file-uri-no-append"])
def test_upload_dir_skips_links_and_special_files(kind, tmp_path):
    local = tmp_path / "node-scratch" / "t1"
    sockets = plant(local)
    try:
        if kind == "path":
            storage = LocalSweepStorage(tmp_path / "runs", "s")
        else:
            storage = ArrowSweepStorage(f"file://{tmp_path / 'runs'}", "s", append=False)
        notes = run_bounded(lambda: storage.upload_dir(local, "trials/t1"))
    finally:
        for sock in sockets:
            sock.close()
    dest = tmp_path / "runs" / "s" / "trials" / "t1"
    links = [p for p in dest.rglob("*") if p.is_symlink() or not (p.is_file() or p.is_dir())]
    assert links == []
    check(uploaded(storage, "trials/t1"), notes)
