"""What the tests share besides fixtures: where things are, `require` (skip here, fail in CI) and
`make_spec` (a SandboxSpec over the `trial_dirs` fixture's folders). Importable from every test folder
because pytest puts tests/ (the folder of the root conftest.py) on sys.path."""

from __future__ import annotations

import os
import shutil
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


# A private mount namespace in which /root (0700 on most machines, and holding pyenv's Python and its
# packages) is a 0755 tmpfs with each of its entries bound back in place, keeping their own modes:
# a process of another uid can then run this interpreter and import mleray, as it could from a Python
# outside /root, and nothing changes on the host (the namespace dies with the process).
_REACHABLE_ROOT = r'''
set -e
uid=$1; shift
mount -t tmpfs -o mode=0700 mleray-hold /mnt
mkdir /mnt/root && mount --rbind /root /mnt/root
mount -t tmpfs -o mode=0755 mleray-root-view /root
for entry in /mnt/root/* /mnt/root/.[!.]*; do
  [ -e "$entry" ] || continue
  name=${entry##*/}
  if [ -d "$entry" ]; then mkdir "/root/$name"; else : > "/root/$name"; fi
  mount --rbind "$entry" "/root/$name"
done
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
'''


def as_user(uid: int, argv) -> list:
    """`argv` run as `uid` (setpriv), able to run this Python even where it lives under a 0700 /root.
    Needs root, unshare and setpriv (util-linux)."""
    require(os.geteuid() == 0, "needs root to drop to another uid")
    for tool in ("unshare", "setpriv"):
        require(shutil.which(tool) is not None, f"{tool} (util-linux) is not installed")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _REACHABLE_ROOT, "sh", str(uid), *argv]


TOY_PREPARE = """\
import pandas as pd

def prepare(public, private):
    ids = list(range(1, 11))
    pd.DataFrame({"id": ids, "x": ids}).to_csv(public / "test.csv", index=False)
    pd.DataFrame({"id": ids, "y": 0}).to_csv(public / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids, "y": [i % 2 for i in ids]}).to_csv(private / "answers.csv", index=False)
"""


def write_toy_competition(folder: Path, prepare: str = TOY_PREPARE, version: str = "1",
                          description: str = "Predict y.\n") -> Path:
    """A local competition `toy` in `folder` (accuracy on y over ids 1..10, answers i % 2): its
    config.yaml, prepare.py (`prepare`: the script's text) and description.md. Returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(
        "id: toy\nname: Toy\nmetric: accuracy\nid_column: id\ntarget_columns: [y]\n"
        f"sample_submission: sample_submission.csv\nanswers: answers.csv\nversion: \"{version}\"\n")
    (folder / "prepare.py").write_text(prepare)
    (folder / "description.md").write_text(description)
    return folder


AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def moto_s3(monkeypatch, bucket_path: str):
    """A generator for an S3 fixture: a fresh moto server (the S3 stand-in) in a thread of this process, AWS
    test credentials set before anything (Ray) starts; yields the s3:// URI of `bucket_path` on it."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        require(False, "moto[server] is not installed (pip install -e .[test])")
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"s3://{bucket_path}?endpoint_override={host}:{port}&scheme=http&allow_bucket_creation=true"
    finally:
        server.stop()


def dummy_sweep(overrides, comps):
    """A sweep config of the dummy agent, one seed, 1-CPU 0.1-GiB trials (plus `overrides`), and its trials on
    `comps`."""
    from mleray.config import load_sweep
    from mleray.sweep.trials import expand

    cfg = load_sweep(overrides=["agents=[dummy]", "seeds=1", "tiers.cpu.cpus=1", "tiers.cpu.memory_gb=0.1",
                                *overrides])
    return cfg, expand(cfg, comps)
