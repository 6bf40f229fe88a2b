"""The offline conda shim (mleray/sandbox/mlebench_env/conda, conda.sh) on this machine's bash, over a real
venv: what MLE-bench's start.sh scripts and agent Dockerfiles call of conda."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mleray.sandbox.mlebench_images import SHIM_DIR


@pytest.fixture(scope="module")
def conda_root(tmp_path_factory) -> Path:
    """A conda root laid out as in the compatible base image, with a venv named `agent`."""
    root = tmp_path_factory.mktemp("conda")
    (root / "bin").mkdir()
    (root / "etc" / "profile.d").mkdir(parents=True)
    shutil.copy(SHIM_DIR / "conda", root / "bin" / "conda")
    shutil.copy(SHIM_DIR / "conda.sh", root / "etc" / "profile.d" / "conda.sh")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "envs" / "agent")], check=True)
    return root


def bash(script: str, root: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": f"{root}/bin:/usr/bin:/bin", "MLERAY_CONDA_ROOT": str(root), "HOME": str(root)}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_hook_then_activate_agent(conda_root):
    out = bash('eval "$(conda shell.bash hook)"; conda activate agent; '
               'echo "$CONDA_DEFAULT_ENV|$CONDA_PREFIX|$(command -v python)"; '
               'python -c "import sys; print(sys.prefix)"; conda deactivate; echo "after:${VIRTUAL_ENV:-none}"',
               conda_root)
    assert out.returncode == 0, out.stderr
    agent = conda_root / "envs" / "agent"
    assert out.stdout.splitlines() == [f"agent|{agent}|{agent}/bin/python", str(agent), "after:none"]


def test_run_n_agent(conda_root, tmp_path):
    out = bash("conda run -n agent --no-capture-output python -c 'import os, sys; print(sys.prefix, os.getcwd())'",
               conda_root, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{conda_root / 'envs' / 'agent'} {tmp_path}"


def test_what_an_agent_dockerfile_calls_succeeds(conda_root):
    out = bash("conda clean -afy && conda env list && conda --version && conda create -n agent -y python=3.11",
               conda_root)
    assert out.returncode == 0, out.stderr
    assert f"agent  {conda_root / 'envs' / 'agent'}" in out.stdout


def test_create_makes_a_venv(conda_root):
    out = bash("conda create -n second python=3.11 -y && conda run -n second python -c 'import sys; print(sys.prefix)'",
               conda_root)
    try:
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == str(conda_root / "envs" / "second")
    finally:
        shutil.rmtree(conda_root / "envs" / "second", ignore_errors=True)


@pytest.mark.parametrize("script, message", [
    ("conda activate agent", "needs the shell function"),
    ('eval "$(conda shell.bash hook)"; conda activate nosuch', "Could not find conda environment: nosuch"),
    ("conda run -n nosuch python -c 1", "no environment 'nosuch'"),
    ("conda install -y numpy", "not supported offline"),
    ("conda create -n x numpy", "cannot install 'numpy' offline"),
])
def test_what_it_cannot_do_fails_with_one_clear_line(conda_root, script, message):
    out = bash(script, conda_root)
    assert out.returncode != 0
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (conda_root / "envs" / "x").exists()


def test_the_shim_is_executable_in_the_package():
    assert os.access(SHIM_DIR / "conda", os.X_OK)
