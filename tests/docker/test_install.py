"""mleray installed the ordinary way: `pip install <repo>` (not editable) into a new venv with the lock,
on each supported Python (3.11, 3.12, 3.13), then `mleray setup offline`, then, from a folder that is
not the source tree, a dummy sweep on titanic, `mleray grade`, `python -m analysis` on MLE-bench's
Famou-Agent reports and `mleray images build`."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT, require

pytestmark = pytest.mark.slow


def _run(args, cwd, timeout=900, env=None):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited {result.returncode}:\n" \
                                   f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _runs(python: str) -> bool:
    return subprocess.run([python, "-c", "import venv"], capture_output=True).returncode == 0


def interpreters():
    """This Python, and the other supported minor versions where the machine has them (pyenv or PATH)."""
    found = {f"{sys.version_info.major}.{sys.version_info.minor}": sys.executable}
    for minor in ("3.11", "3.12", "3.13"):
        candidates = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}.*/bin/python3")))
        candidates += [shutil.which(f"python{minor}")]  # last: a pyenv shim on PATH may not run
        found.setdefault(minor, next((c for c in candidates if c and _runs(c)), None))
    return [pytest.param(path, id=minor) for minor, path in sorted(found.items())]


@pytest.fixture(scope="module", params=interpreters())
def installed(request, tmp_path_factory):
    """A fresh venv of one supported Python holding a non-editable install of this checkout, and a work
    folder outside it."""
    if request.param is None:  # .ci/setup installs no other Python: test the ones the machine has
        pytest.skip(f"no Python {request.node.callspec.id} on this machine")
    base = tmp_path_factory.mktemp("install")
    venv = base / "venv"
    _run([request.param, "-m", "venv", str(venv)], cwd=base)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(pip + ["-c", str(ROOT / "requirements.lock"), str(ROOT)], cwd=base)
    work = base / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLERAY_") and k != "PYTHONPATH"}
    env["MLERAY_CACHE_DIR"] = str(base / "cache")
    return venv / "bin", work, env


def test_the_package_is_not_the_source_tree(installed):
    bin_dir, work, env = installed
    where = _run([bin_dir / "python", "-c", "import mleray, analysis, mleray.paths as p; "
                  "print(mleray.__file__); print(analysis.__file__); print(p.project_root())"], cwd=work, env=env)
    for line in where.stdout.split():
        assert str(ROOT) not in line and "site-packages" in line, where.stdout
    version = _run([bin_dir / "mleray", "--version"], cwd=work, env=env)
    assert version.stdout.startswith("mleray 0."), version.stdout


def test_sweep_grade_analyse_and_build_images_from_anywhere(installed, docker_client, mlebench_data):
    bin_dir, work, env = installed
    python = str(bin_dir / "python")
    _run([bin_dir / "mleray", "setup", "offline"], cwd=work, env=env)

    sweep = _run([python, "-m", "mleray.sweep", "name=inst", f"storage={work / 'runs'}", "competitions=[titanic]",
                  "agents=[dummy]", "seeds=1", "tiers.cpu.time_limit=20"], cwd=work, env=env)
    assert "| dummy | cpu |" in sweep.stdout, sweep.stdout
    records = [json.loads(line) for line in (work / "runs" / "inst" / "trials.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["graded"], records
    assert (work / "runs" / "inst" / "report" / "report.md").is_file()

    submission = work / "runs" / "inst" / records[0]["submission_path"]
    graded = _run([python, "-m", "mleray", "grade", str(submission), "titanic"], cwd=work, env=env)
    assert str(records[0]["score"]) in graded.stdout, graded.stdout

    reports = sorted(str(p) for p in (mlebench_data / "grading_reports").glob("famou-agent_group*/*.json"))
    require(len(reports) == 3, "the Famou-Agent grading reports are not in the shared data")
    for split in ("low", "medium", "high", "all"):
        table = _run([python, "-m", "analysis", *reports, "--split", split], cwd=work, env=env)
        assert "famou-agent" in table.stdout, table.stdout

    images = _run([bin_dir / "mleray", "images", "build", "--offline"], cwd=work, env=env, timeout=1200)
    assert "FAILED" not in images.stdout + images.stderr
