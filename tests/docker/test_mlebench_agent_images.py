"""MLE-bench's agent images run unchanged: the offline MLE-bench-compatible base image, the /home-writable
layer derived per image id, and MLE-bench's own agents/dummy (from ../shared/reference/mle-bench, built
FROM the compatible base in a temporary copy of its folder) in a real mleray sweep on titanic."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, SHARED, require

from mleray.sandbox import images
from mleray.sandbox import mlebench_images as mi
from mleray.sandbox.docker.engine import image_exists

REFERENCE = SHARED / "reference" / "mle-bench"
DUMMY = REFERENCE / "agents" / "dummy"
DUMMY_TAG = "mleray-test-mlebench-dummy:local"
TIME_LIMIT = 97  # the tier's limit the agent must see (no default has this value)


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def compat_base(docker_client) -> str:
    """mleray-mlebench-env:local, built when missing (debootstrap: a few minutes, root, once per machine)."""
    if not image_exists(mi.COMPAT_TAG, docker_client):
        require(os.geteuid() == 0, "building the compatible base image needs root (debootstrap)")
    assert mi.build_compatible_base() == mi.COMPAT_TAG
    return mi.COMPAT_TAG


@pytest.fixture(scope="module")
def dummy_image(compat_base) -> str:
    """MLE-bench's agents/dummy built by `mleray images mlebench-agent` FROM the compatible base."""
    require(DUMMY.is_dir(), f"MLE-bench's agents/dummy is not at {DUMMY}")
    before = _tree_hash(DUMMY)
    assert images.main(["mlebench-agent", str(DUMMY), "--tag", DUMMY_TAG, "--base", compat_base]) == 0
    assert image_exists(DUMMY_TAG)
    assert _tree_hash(DUMMY) == before  # built from a copy: MLE-bench's folder untouched
    return DUMMY_TAG


def test_a_folder_without_a_dockerfile_is_one_line(docker_client, tmp_path, capsys):
    assert images.main(["mlebench-agent", str(tmp_path), "--tag", "mleray-test-never:local"]) == 1
    err = capsys.readouterr().err
    assert "no Dockerfile in" in err and len(err.strip().splitlines()) == 1, err
    assert not image_exists("mleray-test-never:local")


def _run(client, image: str, script: str) -> str:
    return client.containers.run(image, ["bash", "-c", script], network_mode="none", user="1000:1000",
                                 remove=True, stderr=True).decode()


def test_compatible_base_takes_mlebench_start_scripts(docker_client, compat_base):
    """What MLE-bench's start.sh scripts call, as the agent's uid with no network: python on PATH, envsubst,
    the conda hook, `conda activate agent` and `conda run -n agent` over the venv (numpy & co. visible)."""
    out = _run(docker_client, compat_base,
               'command -v python; X=42 envsubst <<< "x=\\$X"; eval "$(conda shell.bash hook)"; conda activate agent; '
               'python -c "import sys, numpy, pandas, sklearn; print(sys.prefix)"; '
               "conda run -n agent python -m pip --version | cut -d' ' -f1; conda run -n agent python -c "
               '"import os; print(os.environ[\'CONDA_DEFAULT_ENV\'])"')
    assert out.splitlines() == ["/usr/bin/python", "x=42", "/opt/conda/envs/agent", "pip", "agent"], out
    assert mi.build_compatible_base() == mi.COMPAT_TAG  # same shim and packages: skipped


def test_writable_layer_is_derived_once_per_image_id(docker_client, dummy_image):
    source = docker_client.images.get(dummy_image)
    denied = _run(docker_client, dummy_image, "touch /home/agent/x 2>&1; echo rc=$?")
    assert "Permission denied" in denied, denied  # as MLE-bench builds it: root's /home/agent
    t0 = time.monotonic()
    tag = mi.writable_image(dummy_image)
    first = time.monotonic() - t0
    assert tag == f"{mi.WRITABLE_REPO}:{source.id.split(':')[1][:16]}"
    derived = docker_client.images.get(tag)
    assert derived.labels[mi.LABEL_WRITABLE_OF] == source.id
    assert docker_client.images.get(dummy_image).id == source.id  # the user's tag left alone
    t1 = time.monotonic()
    assert mi.writable_image(dummy_image) == tag and docker_client.images.get(tag).id == derived.id  # cached
    assert mi.writable_image(tag) == tag  # a derived image is writable already
    assert time.monotonic() - t1 < max(first / 2, 0.5), (first, time.monotonic() - t1)
    assert _run(docker_client, tag, "touch /home/agent/x && mkdir /home/agent/w && echo ok").strip() == "ok"
    assert derived.attrs["Config"].get("Entrypoint") == source.attrs["Config"].get("Entrypoint")
    assert mi.writable_image("mleray-no-such-image:never") == "mleray-no-such-image:never"


# The dummy's start.sh, unchanged, started by `bash /home/agent/start.sh`; BASH_ENV (sourced by that bash
# before the script's first line) makes the script's own process say what it sees (and only that script:
# every bash it starts sources BASH_ENV too).
PROBE = ('if [ "$0" = /home/agent/start.sh ]; then echo "$0 sees TIME_LIMIT_SECS=$TIME_LIMIT_SECS '
         'STEP_LIMIT=$STEP_LIMIT HARDWARE=$HARDWARE AGENT_DIR=$AGENT_DIR"; fi')
COMMAND = f"cat > /tmp/probe.sh <<'EOF'\n{PROBE}\nEOF\nBASH_ENV=/tmp/probe.sh exec bash /home/agent/start.sh"


def test_mlebench_dummy_runs_unchanged_in_a_sweep(dummy_image, tmp_path):
    require((REFERENCE / "mlebench").is_dir(), f"no MLE-bench checkout at {REFERENCE}")
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "mlebench-dummy.yaml").write_text(yaml.safe_dump(
        {"image": dummy_image, "command": ["bash", "-c", COMMAND], "step_limit": 5}))
    # MLE-bench's clone on the path, as an editable install puts it: its instructions are shown.
    env = {**os.environ, "MLERAY_AGENTS_DIR": str(agents),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REFERENCE), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(
        [sys.executable, "-m", "mleray.sweep", f"storage={tmp_path / 'runs'}", "name=mlebench-dummy",
         "competitions=[titanic]", "agents=[mlebench-dummy]", "seeds=1", "sandbox=docker", "report=false",
         f"tiers.cpu.time_limit={TIME_LIMIT}", "tiers.cpu.memory_gb=1"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = tmp_path / "runs" / "mlebench-dummy"
    (record,) = [json.loads(line) for line in (sweep / "trials.jsonl").read_text().splitlines()]
    trial = sweep / "trials" / record["trial_id"]
    log = (trial / "agent.log").read_text()
    assert record["status"] == "graded" and record["exit_code"] == 0, (record["reason"], log[-3000:])
    assert record["valid_submission"] and record["submission_exists"], record["reason"]
    assert record["time_limit"] == TIME_LIMIT
    lines = log.splitlines()
    assert (f"/home/agent/start.sh sees TIME_LIMIT_SECS={TIME_LIMIT} STEP_LIMIT=5 HARDWARE=a CPU "
            "AGENT_DIR=/home/agent") in lines, log[-3000:]
    assert "+ python /home/agent/main.py" in lines  # start.sh's own trace, after `conda activate agent`
    assert "/opt/conda/envs/agent/bin/python" in lines  # main.py ran in the venv the shim activated
    assert "Sample submission copied to /home/submission/submission.csv." in lines
    assert "+ touch /home/agent/agent_was_here.txt" in lines and "Permission denied" not in log
    assert "conda (mleray offline shim)" not in log  # no conda call it makes was refused
    assert any('"Submission is valid."' in line for line in lines), log[-3000:]  # its validate_submission.sh
    mlebench_text = (REFERENCE / "environment" / "instructions.txt").read_text()
    assert mlebench_text.splitlines()[0] in lines  # its `cat /home/instructions.txt`: MLE-bench's own text
    assert (trial / "instructions.txt").read_text() == mlebench_text
    obfuscated = (REFERENCE / "environment" / "instructions_obfuscated.txt").read_text()
    assert (trial / "instructions_obfuscated.txt").read_text() == obfuscated
