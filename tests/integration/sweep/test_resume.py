"""A sweep whose driver is SIGKILLed mid-run finishes only what was missing when run again.

Real parts throughout: the sweep command in a subprocess, local Ray, bwrap sandboxes, the titanic
competition and a slow copy-the-sample agent.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

AGENT = """
import glob, os, shutil, time
time.sleep(float(os.environ.get("SLEEP", "2")))
shutil.copyfile(glob.glob("/home/data/sample_submission*.csv")[0], "/home/submission/submission.csv")
print("slow agent done")
"""


def sweep_command(storage: Path) -> list:
    return [sys.executable, "-m", "mleray.sweep", "name=resume", f"storage={storage}", "competitions=[titanic]",
            "agents=[slow]", "seeds=6", "max_in_flight=1", "sandbox=bwrap", "report=false",
            "tiers.cpu.memory_gb=1", "ray.num_cpus=2"]


def records(storage: Path) -> list:
    path = storage / "resume" / "trials.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_killed_driver_resumes_without_rerunning_or_duplicating(tmp_path, bwrap_path):
    agents = tmp_path / "agents"
    (agents / "slow").mkdir(parents=True)
    (agents / "slow" / "agent.py").write_text(AGENT)
    (agents / "slow.yaml").write_text("code: slow\ncommand: [python3, /home/agent/agent.py]\nenv: {SLEEP: '2'}\n")
    env = {**os.environ, "MLERAY_AGENTS_DIR": str(agents)}
    storage = tmp_path / "runs"

    driver = subprocess.Popen(sweep_command(storage), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while len(records(storage)) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = records(storage)
    assert 2 <= len(before) < 6, f"{len(before)} records when the driver was killed"

    done = subprocess.run(sweep_command(storage), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = records(storage)
    ids = [r["trial_id"] for r in after]
    assert len(ids) == len(set(ids)) == 6
    assert after[: len(before)] == before  # what was recorded stayed, untouched
    assert all(r["valid_submission"] and r["status"] == "graded" for r in after)

    again = subprocess.run(sweep_command(storage), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and records(storage) == after  # a finished sweep re-runs nothing
