"""Disk and log bounds of a real bwrap trial through the runner: writing past the tier's disk_gb (into
/home/submission, or into the sandbox's own tmpfs: /tmp, /dev/shm) stops the trial within a few seconds
and is recorded as such; an agent printing 200 MB leaves an agent.log under its cap that keeps the start, the end and a
marker naming what was dropped, with over-long lines cut."""

from __future__ import annotations

import re
import textwrap
import time

import pytest

from mleray.config import load_sweep
from mleray.sweep.trials import TrialJob, expand
from mleray.trial.bounds import LOG_CAP_BYTES
from mleray.trial.runner import run_trial

FILLER = """
import os, sys, time
target = sys.argv[1]
print("filling", target, flush=True)
chunk = os.urandom(1024 * 1024)
with open(target, "wb") as out:
    for i in range(4000):  # 4 GiB at most, 1 MiB every 10 ms: far past 0.01 GiB in a fraction of a second
        out.write(chunk)
        out.flush()
        time.sleep(0.01)
print("wrote it all", flush=True)
time.sleep(600)
"""

PRINTER = r"""
yes "$(head -c 999 /dev/zero | tr '\0' x)" | head -c 200000000
echo
python3 -c 'print("L" * 300000)'
echo LAST-1
echo LAST-2
"""


def _agent(tmp_path, monkeypatch, name: str, files: dict, command: str) -> None:
    agents = tmp_path / "agents"
    (agents / name).mkdir(parents=True)
    for file, text in files.items():
        (agents / name / file).write_text(textwrap.dedent(text))
    (agents / f"{name}.yaml").write_text(f"code: {name}\ncommand: {command}\n")
    monkeypatch.setenv("MLERAY_AGENTS_DIR", str(agents))


def _run(tmp_path, agent: str, *overrides: str):
    cfg = load_sweep(overrides=[f"agents=[{agent}]", "competitions=[titanic]", "seeds=1", "grace_period=1",
                                *overrides])
    spec = expand(cfg, ["titanic"])[0]
    record = run_trial(TrialJob.of(cfg, spec, tmp_path / "sweep", "bwrap"))
    return record, tmp_path / "sweep" / "trials" / spec.trial_id


@pytest.mark.parametrize("where", ["/home/submission/big.bin", "/tmp/big.bin", "/dev/shm/big.bin"])
def test_writing_past_disk_gb_stops_the_trial(tmp_path, monkeypatch, bwrap_path, where):
    _agent(tmp_path, monkeypatch, "filler", {"agent.py": FILLER}, f"[python3, /home/agent/agent.py, {where}]")
    t0 = time.monotonic()
    record, folder = _run(tmp_path, "filler", "tiers.cpu.time_limit=120", "tiers.cpu.disk_gb=0.01")
    elapsed = time.monotonic() - t0
    log = (folder / "agent.log").read_text()
    assert "filling" in log and "wrote it all" not in log
    assert record.disk_exceeded and not record.timed_out
    assert "stopped: wrote more than 0.01 GiB" in record.reason
    assert record.agent_s < 15, record.agent_s  # polled every 2 s: stopped within a few seconds, not at 120 s
    assert elapsed < 60
    if where.startswith("/home/submission"):
        written = (folder / "submission" / "big.bin").stat().st_size
        assert 0.01 * 1024**3 < written < 1024**3  # over the bound, but stopped long before the 4 GiB


def test_writing_past_disk_gb_and_exiting_between_polls_is_recorded(tmp_path, monkeypatch, bwrap_path):
    """20 MiB written and the agent gone before the watch's first poll: still recorded as over the bound."""
    quick = "open('/home/submission/big.bin', 'wb').write(b'x' * (20 * 1024 * 1024)); print('done', flush=True)\n"
    _agent(tmp_path, monkeypatch, "quick", {"agent.py": quick}, "[python3, /home/agent/agent.py]")
    record, folder = _run(tmp_path, "quick", "tiers.cpu.time_limit=60", "tiers.cpu.disk_gb=0.01")
    assert record.agent_s < 2 and record.exit_code == 0
    assert record.disk_exceeded and "wrote (found when the agent ended) more than 0.01 GiB" in record.reason


def test_agent_log_is_capped_keeping_its_end(tmp_path, monkeypatch, bwrap_path):
    _agent(tmp_path, monkeypatch, "printer", {"print.sh": PRINTER}, "[/bin/sh, /home/agent/print.sh]")
    t0 = time.monotonic()
    record, folder = _run(tmp_path, "printer", "tiers.cpu.time_limit=300")
    elapsed = time.monotonic() - t0
    log_path = folder / "agent.log"
    size = log_path.stat().st_size
    data = log_path.read_bytes()
    assert size < LOG_CAP_BYTES, size
    assert size > LOG_CAP_BYTES * 0.9  # both halves kept, not just the first
    assert data.startswith(b"x" * 999 + b"\n")
    assert data.endswith(b"LAST-1\nLAST-2\n"), data[-200:]
    dropped = re.findall(rb"\[mleray: (\d+) bytes of agent output dropped here\]\n", data)
    assert len(dropped) == 1 and 140_000_000 < int(dropped[0]) < 160_000_000, dropped
    cut = re.search(rb"L{65536} \[mleray: line cut, (\d+) more bytes dropped\]\n", data)
    assert cut and int(cut.group(1)) == 300000 - 65536
    assert max(len(line) for line in data.split(b"\n")) < 65536 + 100
    assert not record.disk_exceeded and record.exit_code == 0
    assert "polled every" in record.isolation["disk"]
    assert elapsed < 120, elapsed
