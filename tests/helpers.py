"""What the tests share besides fixtures: where things are, `require` (skip here, fail in CI) and
`make_spec` (a SandboxSpec over the `trial_dirs` fixture's folders). Importable from every test folder
because pytest puts tests/ (the folder of the root conftest.py) on sys.path."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from mleray.sandbox.base import SandboxSpec
from mleray.sandbox.images import BASE_TAG

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"
SHARED = ROOT.parent / "shared"
MLEBENCH_DATA = Path(os.environ.get("MLERAY_SHARED_DIR", SHARED)) / "data" / "mlebench"


def require(ok: bool, why: str) -> None:
    """Skips locally, fails in CI, when a real part the test needs is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


def make_spec(dirs: dict, command, image: str = BASE_TAG, sweep: str = "test-docker", **kw) -> SandboxSpec:
    """A small trial's SandboxSpec over `trial_dirs`; keyword arguments override any field."""
    trial: Path = dirs["trial"]
    fields = dict(
        sweep=sweep,
        trial_id=kw.pop("trial_id", "t-" + uuid.uuid4().hex[:8]),
        attempt=0,
        command=list(command),
        data_dir=dirs["public"],
        instructions=dirs["instructions"],
        submission_dir=trial / "submission",
        code_dir=trial / "code",
        logs_dir=trial / "logs",
        image=image,
        env={"COMPETITION_ID": "toy"},
        cpus=1.0,
        memory_gb=0.5,
        pids=128,
        shm_gb=0.0625,
    )
    fields.update(kw)
    return SandboxSpec(**fields)
