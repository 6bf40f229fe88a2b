"""Real sweeps against a damaged or failing trials.jsonl, and infrastructure failures on resume.

- A full disk under trials.jsonl (a file of a full 64 KiB tmpfs bind-mounted over it; root only, as
  this machine runs tests): `python -m mleray.sweep` stops with one line and exit code 2, and the next
  run records the trial from its result.json without running it again.
- A trial whose only line was cut short runs again, its line moved to trials.jsonl.rejected.
- Permission denied, for real: the store appends as uid 65534 to a 0400 file (root bypasses modes).
- Trials whose actor died or that raised inside mleray are infrastructure failures: a second run on
  the same store runs only them, as attempt 1, and their new records win.
Real parts: the sweep command in a subprocess, local Ray, bwrap, titanic and the dummy agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import ray
from helpers import ROOT, as_user, require

from mleray.config import load_sweep
from mleray.records import Status, read_file
from mleray.storage.store import SweepStore
from mleray.sweep.scheduler import Scheduler
from mleray.sweep.trials import expand
from mleray.trial.actor import TrialHost

TRIAL = "dummy__titanic__cpu__s0"


def sweep(storage: Path, name: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mleray.sweep", f"name={name}", f"storage={storage}", "competitions=[titanic]",
               "agents=[dummy]", "seeds=1", "sandbox=bwrap", "report=false", "tiers.cpu.memory_gb=1",
               "tiers.cpu.time_limit=60", "ray.num_cpus=2"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    require(done.returncode == 0, f"cannot mount here (root and CAP_SYS_ADMIN needed): {done.stderr.strip()}")


def test_a_full_disk_stops_the_sweep_with_one_message_and_the_next_run_records_without_rerunning(tmp_path, bwrap_path):
    sweep_dir = tmp_path / "runs" / "full"
    sweep_dir.mkdir(parents=True)
    records = sweep_dir / "trials.jsonl"
    records.touch()
    small = tmp_path / "fs"
    small.mkdir()
    _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small))
    try:
        (small / "trials.jsonl").touch()
        with open(small / "filler", "wb", buffering=0) as f:
            with pytest.raises(OSError, match="No space left"):
                while True:
                    f.write(b"\0" * 4096)
        _mount("--bind", str(small / "trials.jsonl"), str(records))  # reads work; the first append needs a page
        try:
            first = sweep(tmp_path / "runs", "full")
        finally:
            subprocess.run(["umount", str(records)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=True)

    assert first.returncode == 2, first.stdout[-2000:] + first.stderr[-2000:]
    assert "Traceback" not in first.stdout + first.stderr
    assert first.stderr.strip().splitlines()[-1] == (
        f"mleray: cannot append to {records}: [Errno 28] No space left on device; the trial's result is kept in "
        f"trials/{TRIAL}/result.json and is recorded on the next run")
    result = sweep_dir / "trials" / TRIAL / "result.json"
    kept = result.read_bytes()
    assert json.loads(kept)["status"] == Status.GRADED and records.read_bytes() == b""

    second = sweep(tmp_path / "runs", "full")
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{result}: recorded (its trial finished, but its record was missing from trials.jsonl)" in second.stderr
    assert "1 trials to run" not in second.stdout  # nothing was run again ...
    assert result.read_bytes() == kept  # ... a new attempt would have rewritten its folder
    assert read_file(records) == [json.loads(kept)]


def test_a_trial_whose_only_line_is_cut_short_runs_again(tmp_path, bwrap_path):
    assert sweep(tmp_path, "cut").returncode == 0
    records = tmp_path / "cut" / "trials.jsonl"
    line = records.read_text()
    first = json.loads(line)
    records.write_text(line[: len(line) // 2] + "\n")  # cut mid-JSON, as a lost write leaves it
    (tmp_path / "cut" / "trials" / TRIAL / "result.json").unlink()  # nothing to record it from

    again = sweep(tmp_path, "cut")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Traceback" not in again.stdout + again.stderr
    warnings = [w for w in again.stderr.splitlines() if w.startswith("mleray: warning:")]
    assert warnings == [f"mleray: warning: {records}:1: not JSON, or cut short: "
                        f"{warnings[0].split('cut short: ')[1].split(';')[0]}; moved to trials.jsonl.rejected"]
    assert "1 trials to run" in again.stdout
    (rejected,) = [json.loads(r) for r in (tmp_path / "cut" / "trials.jsonl.rejected").read_text().splitlines()]
    assert rejected["line"] == 1 and rejected["text"] == line[: len(line) // 2]
    (record,) = read_file(records)
    assert record["trial_id"] == TRIAL and record["valid_submission"] and record["started_at"] > first["started_at"]


def test_permission_denied_is_one_message_naming_the_file(bwrap_path):
    folder = Path(tempfile.mkdtemp(prefix="mleray-perm-"))  # outside pytest's root-only tmp folder
    try:
        os.chmod(folder, 0o755)
        sweep_dir = folder / "sw"
        sweep_dir.mkdir()
        (sweep_dir / "trials.jsonl").write_text(json.dumps({"trial_id": "a", "status": "graded"}) + "\n")
        for path in (sweep_dir, sweep_dir / "trials.jsonl"):
            os.chown(path, 65534, 65534)
        os.chmod(sweep_dir / "trials.jsonl", 0o400)
        code = ("import sys\nfrom mleray.storage.store import SweepStore, AppendError\n"
                f"store = SweepStore({str(sweep_dir)!r})\n"
                "try:\n    store.append({'trial_id': 'b', 'status': 'graded'})\n"
                "except AppendError as err:\n    print(err)\n    sys.exit(2)\n")
        done = subprocess.run(as_user(65534, [sys.executable, "-c", code]), capture_output=True, text=True,
                              timeout=120, cwd="/")
        require("Operation not permitted" not in done.stderr, f"setpriv cannot drop to uid 65534: {done.stderr}")
        assert done.returncode == 2, done.stderr
        assert done.stdout.strip() == (f"cannot append to {sweep_dir}/trials.jsonl: [Errno 13] Permission denied; "
                                       "trial b runs again on the next run")
        assert (sweep_dir / "trials.jsonl").read_text().count("\n") == 1
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=True)


@ray.remote(max_restarts=0, max_concurrency=2)
class FlakyActor(TrialHost):
    """Stands in for a trial: `crash` dies on attempt 0 (a lost node; `crash2` on attempts 0 and 1), `raise`
    raises on attempt 0 (an error inside mleray); `timeout` and `invalid` are graded, final outcomes.
    Every attempt leaves a mark."""

    def work(self, job):
        spec = job.spec
        with open(Path(job.location) / "attempts.log", "a") as log:
            log.write(f"{spec.competition} {job.attempt}\n")
        if spec.competition.startswith("crash") and job.attempt < int(spec.competition[5:] or 1):
            os._exit(1)
        if job.attempt == 0 and spec.competition == "raise":
            raise OSError(28, "No space left on device")
        return {"trial_id": spec.trial_id, "competition_id": spec.competition, "attempt": job.attempt,
                "status": Status.GRADED, "timed_out": spec.competition == "timeout",
                "valid_submission": spec.competition not in ("invalid", "timeout")}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_infrastructure_failures_run_again_on_resume_and_graded_trials_stay_final(local_ray, tmp_path, capsys):
    cfg = load_sweep(overrides=["agents=[dummy]", "seeds=1", "tiers.cpu.cpus=0.5", "tiers.cpu.memory_gb=0.1",
                                "retries=0"])
    trials = expand(cfg, ["crash", "raise", "timeout", "invalid", "crash2"])
    by_comp = {t.competition: t.trial_id for t in trials}
    Scheduler(cfg, SweepStore(tmp_path), "bwrap", [], actor_cls=FlakyActor).run(trials)
    first = {r["competition_id"]: r for r in SweepStore(tmp_path).records}
    for comp in ("crash", "raise", "crash2"):
        assert (first[comp]["status"], first[comp]["infra_failure"], first[comp]["attempt"]) == (Status.FAILED, True, 0)
    assert "No space left on device" in first["raise"]["reason"]
    assert first["timeout"]["timed_out"] and not first["invalid"]["valid_submission"]

    resumed = SweepStore(tmp_path)
    assert resumed.done == {by_comp["timeout"], by_comp["invalid"]}
    cfg.retries = 1  # this run's own retries: crash2's attempt 1 dies too, and is retried as attempt 2
    assert Scheduler(cfg, resumed, "bwrap", [], actor_cls=FlakyActor).run(trials)
    attempts = (tmp_path / "attempts.log").read_text().split("\n")
    # only the infrastructure failures ran again
    assert sorted(attempts[5:-1]) == ["crash 1", "crash2 1", "crash2 2", "raise 1"]

    capsys.readouterr()
    final = {r["competition_id"]: r for r in SweepStore(tmp_path).records}
    assert {c: (r["attempt"], r["status"]) for c, r in final.items()} == {
        "crash": (1, Status.GRADED), "raise": (1, Status.GRADED), "timeout": (0, Status.GRADED),
        "invalid": (0, Status.GRADED), "crash2": (2, Status.GRADED)}
    assert "warning" not in capsys.readouterr().err  # the superseded failures are history, not duplicates
    assert len((tmp_path / "trials.jsonl").read_text().splitlines()) == 8
