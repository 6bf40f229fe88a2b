"""Shared fixtures, and markers set by folder: tests/unit (in-process, no Ray, no sandbox),
tests/integration (real Ray, bubblewrap, sweeps in subprocesses), tests/docker (the Docker engine).
Under CI=true a missing Docker engine or bubblewrap is a failure, never a skip."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from helpers import MLEBENCH_DATA, require

from mleray.sandbox.docker.engine import image_exists
from mleray.sandbox.images import BASE_TAG, build_base

FOLDER_MARKERS = {"unit": ("unit",), "integration": ("integration",), "docker": ("integration", "docker")}


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).resolve().parent
    for item in items:
        folder = Path(item.path).resolve().relative_to(tests).parts[0]
        for name in FOLDER_MARKERS.get(folder, ()):
            item.add_marker(name)


@pytest.fixture(scope="session")
def mlebench_data() -> Path:
    require(MLEBENCH_DATA.is_dir(), f"the shared MLE-bench data is not at {MLEBENCH_DATA}")
    return MLEBENCH_DATA


@pytest.fixture(scope="session")
def docker_client():
    """A docker SDK client for the local engine."""
    from mleray.sandbox.docker import engine

    try:
        client = engine.client()
        client.ping()
    except Exception as err:  # engine absent or not answering
        require(False, f"no Docker engine answers ({err})")
    return client


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """The offline base image `mleray-base:local`, built with debootstrap + docker import when missing
    (2-3 minutes, once per machine)."""
    if not image_exists(BASE_TAG, docker_client):
        build_base(BASE_TAG)
    assert image_exists(BASE_TAG, docker_client)
    return BASE_TAG


@pytest.fixture(scope="session")
def bwrap_path() -> str:
    path = shutil.which("bwrap")
    require(path is not None, "bubblewrap (bwrap) is not installed")
    return path


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An isolated prepared-data cache for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MLERAY_CACHE_DIR", str(path))
    return path


@pytest.fixture
def trial_dirs(tmp_path) -> dict:
    """A prepared competition's public side, a private side (never mounted) and a trial's folders."""
    public = tmp_path / "comp" / "public"
    private = tmp_path / "comp" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    (public / "description.md").write_text("# A competition\n")
    (public / "train.csv").write_text("id,x,y\n1,0.5,1\n2,0.1,0\n")
    (public / "sample_submission.csv").write_text("id,y\n3,0\n4,0\n")
    token = "SECRET-" + uuid.uuid4().hex
    (private / "answers.csv").write_text(f"id,y\n3,1\n4,{token}\n")
    instructions = tmp_path / "instructions.txt"
    instructions.write_text("Predict y.\n")
    trial = tmp_path / "trial"
    return {"public": public, "private": private, "token": token, "instructions": instructions, "trial": trial}
