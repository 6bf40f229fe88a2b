"""Preflight names the pip package an official MLE-bench grader imports when it is not installed, instead
of every trial of that competition being graded invalid. Checked against the real package: a grader's
module imports exactly when preflight finds nothing missing for it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from helpers import require

from mleray.mlebench import catalog

MISSING = None
try:
    import mlebench.registry  # noqa: F401
except Exception as err:  # noqa: BLE001 - absent, or installed without its dependencies
    MISSING = f"the official mlebench package is not importable ({type(err).__name__}: {err}); run .ci/setup"


@pytest.fixture(autouse=True, scope="module")
def _official_package():
    """Each test fails under CI=true without the official package (a collection error would stop the whole
    run), and is skipped elsewhere, saying why."""
    require(MISSING is None, str(MISSING))


def _imports(module: str) -> str:
    """'' when the module imports, else the name of the module it could not find."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        return str(err.name)
    return ""


def test_what_preflight_reads_matches_what_importing_each_grader_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # importing mlebench.data makes ./cache
    checked = 0
    for cid in catalog.ids():
        module = catalog._grade_module(cid)
        assert module and module.startswith(f"mlebench.competitions.{cid}."), (cid, module)
        missing = catalog.missing_grader_modules(cid)
        failed = _imports(module)
        assert (failed == "") == (not missing), (cid, failed, missing)
        if failed:
            assert failed.split(".")[0] in missing, (cid, failed, missing)
        checked += 1
    assert checked == len(catalog.ids()) == 82
    assert "Levenshtein" in catalog.grader_modules("billion-word-imputation")
    assert set(catalog.grader_modules("jigsaw-toxic-comment-classification-challenge")) == {"pandas", "sklearn"}


def test_missing_module_is_one_line_naming_the_pip_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "Levenshtein" else real(name, *a))
    problems = catalog.grader_dependency_problems(["billion-word-imputation", "spaceship-titanic", "titanic"])
    assert len(problems) == 1 and "\n" not in problems[0]
    assert "'billion-word-imputation'" in problems[0] and "Levenshtein" in problems[0]
    assert problems[0].endswith("pip install 'levenshtein>=0.25.1'")  # the pin the package asks for
    assert catalog.grader_dependency_problems(["spaceship-titanic", "titanic"]) == []


def test_a_sweep_stops_in_preflight_naming_the_package(tmp_path):
    missing = {cid: catalog.missing_grader_modules(cid) for cid in catalog.ids()}
    missing = {cid: mods for cid, mods in missing.items() if mods}
    require(bool(missing), "every official grader's imports are installed here (Levenshtein, pycocotools, ...)")
    cid = "billion-word-imputation" if "billion-word-imputation" in missing else next(iter(missing))
    comp = catalog.get(cid)
    data = tmp_path / "data" / cid / "prepared"  # prepared data, so the missing module is the one problem
    for folder, name in (("public", comp.sample_submission), ("private", comp.answers)):
        (data / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (data / folder / name).write_text("id,x\n1,2\n")
    env = {**os.environ, "MLERAY_MLEBENCH_DATA_DIR": str(tmp_path / "data"), "MLERAY_CACHE_DIR": str(tmp_path / "c")}
    done = subprocess.run([sys.executable, "-m", "mleray.sweep", f"storage={tmp_path / 'runs'}",
                           f"competitions=[{cid}]", "agents=[dummy]", "sandbox=bwrap"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert not list(tmp_path.glob("runs/*/trials.jsonl"))  # stopped before any trial
    lines = [line for line in done.stderr.splitlines() if "pip install" in line]
    assert len(lines) == len(missing[cid]), done.stderr
    assert all(f"'{cid}'" in line and "Traceback" not in done.stderr for line in lines), done.stderr
