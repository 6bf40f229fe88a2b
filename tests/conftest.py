"""Shared fixtures. Under CI=true a missing Docker engine or bubblewrap is a failure, never a skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
SHARED = Path(__file__).resolve().parents[2] / "shared"
MLEBENCH_DATA = Path(os.environ.get("MLERAY_SHARED_DIR", SHARED)) / "data" / "mlebench"


def require(ok: bool, why: str) -> None:
    """Skips locally, fails in CI, when a real part the test needs is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


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
