"""One driver per sweep: a second `python -m mleray.sweep` on a running sweep refuses in one line naming
the running driver; the lock of a SIGKILLed driver is taken over; a stale heartbeat too; the lease on
a storage that is not a local path (the SweepStorage API only).

Real parts: the sweep command in subprocesses, local Ray, bwrap sandboxes, the titanic competition."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from mleray.storage.backends import ArrowSweepStorage, LocalSweepStorage
from mleray.storage.lock import LOCK, LockHeld, SweepLock

AGENT = """
import glob, os, shutil, time
time.sleep(float(os.environ.get("SLEEP", "1")))
shutil.copyfile(glob.glob("/home/data/sample_submission*.csv")[0], "/home/submission/submission.csv")
"""


def sweep_command(storage: Path) -> list:
    return [sys.executable, "-m", "mleray.sweep", "name=locked", f"storage={storage}", "competitions=[titanic]",
            "agents=[slow]", "seeds=1", "sandbox=bwrap", "report=false", "tiers.cpu.memory_gb=1",
            "tiers.cpu.time_limit=120", "ray.num_cpus=2"]


def agents_dir(tmp_path: Path, sleep: float) -> Path:
    agents = tmp_path / "agents"
    (agents / "slow").mkdir(parents=True, exist_ok=True)
    (agents / "slow" / "agent.py").write_text(AGENT)
    (agents / "slow.yaml").write_text(
        f"code: slow\ncommand: [python3, /home/agent/agent.py]\nenv: {{SLEEP: '{sleep}'}}\n")
    return agents


def test_second_driver_refuses_and_a_killed_drivers_lock_is_taken_over(tmp_path, bwrap_path):
    env = {**os.environ, "MLERAY_AGENTS_DIR": str(agents_dir(tmp_path, 60))}
    storage = tmp_path / "runs"
    lock = storage / "locked" / LOCK
    first = subprocess.Popen(sweep_command(storage), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not lock.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        held = json.loads(lock.read_text())
        assert held["pid"] == first.pid and held["host"] == socket.gethostname()
        time.sleep(6)  # one heartbeat
        assert json.loads(lock.read_text())["heartbeat"] > held["heartbeat"]

        t0 = time.monotonic()
        second = subprocess.run(sweep_command(storage), env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"mleray: sweep locked is already being run by pid {first.pid} on host {socket.gethostname()} "
            "(heartbeat "), second.stderr
        assert time.monotonic() - t0 < 30 and first.poll() is None  # refused at once; the first runs on
        records = storage / "locked" / "trials.jsonl"
        assert not records.exists() or records.read_text() == ""  # the second wrote nothing
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver dies without releasing its lock
        first.wait()
    assert lock.exists()

    env["MLERAY_AGENTS_DIR"] = str(agents_dir(tmp_path, 0.5))
    third = subprocess.run(sweep_command(storage), env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    assert (f"mleray: note: taking over the lock of sweep locked from pid {first.pid} on host "
            f"{socket.gethostname()} (pid {first.pid} on host {socket.gethostname()} is not running)") in third.stderr
    records = [json.loads(line) for line in (storage / "locked" / "trials.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["valid_submission"], records
    assert not lock.exists()  # released at exit


def test_stale_heartbeat_from_another_host_is_taken_over(tmp_path, capsys):
    storage = LocalSweepStorage(tmp_path, "s")
    (storage.dir / LOCK).write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0,
                                                "heartbeat": time.time() - 120, "token": "x"}))
    with SweepLock(storage, "s", stale_s=60):
        assert json.loads((storage.dir / LOCK).read_text())["pid"] == os.getpid()
    note = "taking over the lock of sweep s from pid 1 on host elsewhere (its heartbeat is 120 s old)"
    assert note in capsys.readouterr().err
    assert not (storage.dir / LOCK).exists()


def test_live_lock_from_another_host_is_refused(tmp_path):
    storage = LocalSweepStorage(tmp_path, "s")
    (storage.dir / LOCK).write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0,
                                                "heartbeat": time.time() - 3, "token": "x"}))
    refusal = r"^sweep s is already being run by pid 1 on host elsewhere \(heartbeat 3 s ago\)"
    with pytest.raises(LockHeld, match=refusal):
        SweepLock(storage, "s").acquire()
    assert json.loads((storage.dir / LOCK).read_text())["token"] == "x"  # untouched


def test_lease_through_the_storage_api(tmp_path):
    """A storage that is no local path (as an object store): the lease is an object, read back after settling."""
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())

    def store():
        return ArrowSweepStorage("mock://bucket/runs", "s", fs=fs, base="runs")

    first = SweepLock(store(), "s")
    assert first.storage.local_path is None
    first.acquire()
    try:
        with pytest.raises(LockHeld, match=f"by pid {os.getpid()} on host"):
            SweepLock(store(), "s").acquire()
    finally:
        first.release()
    with SweepLock(store(), "s") as again:  # released: no note, no takeover
        assert json.loads(store().read_file(LOCK))["token"] == again.token
