"""Images: the machine's Debian mirror, the offline base image, agent images built on it, an
MLE-bench-style agent image (start.sh convention) running unchanged in the Docker sandbox, and the bwrap
agent runtime sharing the base image's root file system (one debootstrap serves both)."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time

import pytest
from helpers import make_spec, require

from mleray.config import load_agent
from mleray.sandbox import runtime
from mleray.sandbox.docker import DockerSandbox
from mleray.sandbox.images import build_agent, build_base, debian_mirror, image_exists, main
from mleray.sandbox.validation import ValidationServer, socket_path_for


def test_mirror_from_deb822(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert debian_mirror(root=tmp_path) == "http://mirror.example/debian"


def test_mirror_from_one_line_format(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://old/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main\n")
    assert debian_mirror(root=tmp_path) == "http://mirror.example/debian"


def test_mirror_missing_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="no Debian mirror"):
        debian_mirror(root=tmp_path)


def test_base_image_has_python_stack(docker_client, base_image):
    out = docker_client.containers.run(base_image, ["python3", "-c", "import numpy, pandas, sklearn; print('ok')"],
                                       network_mode="none", user="1000:1000", remove=True)
    assert out.strip() == b"ok"
    assert main(["build", "--base-only"]) == 0  # exists: skipped, not rebuilt


def test_agent_images_build_offline(docker_client, base_image):
    assert main(["build", "--offline", "dummy"]) == 0
    assert image_exists("mleray-agent-dummy:latest")


def test_mlebench_style_agent_runs_unchanged(docker_client, base_image, trial_dirs):
    agent = load_agent("mlebench-example")
    tag = build_agent(agent, base=base_image)
    sock = socket_path_for(trial_dirs["trial"])
    spec = make_spec(trial_dirs, agent.command + agent.args, image=tag,
                     env={"COMPETITION_ID": "toy", **agent.env}, validate_socket=sock)
    with ValidationServer(lambda p: (p.read_text().startswith("id,y"), "header"), sock):
        box = DockerSandbox(spec)
        box.start()
        try:
            lines = []
            reader = threading.Thread(target=lambda: lines.extend(box.logs()))
            reader.start()
            info = box.wait(60)
            reader.join(10)
        finally:
            box.kill()
    assert info.exit_code == 0, (info, lines)
    assert lines[0] == "competition toy, uid 1000, 2 step(s)"
    assert lines[-1] == 'validation: {"result": "Submission is valid.", "valid": true}'
    trial = trial_dirs["trial"]
    assert (trial / "submission" / "submission.csv").is_file()
    assert (trial / "code" / "main.py").is_file() and (trial / "logs" / "agent.log").is_file()


def _runtime_python(root, code: str) -> subprocess.CompletedProcess:
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--uid", "1000", "--gid", "1000",
            *runtime.bwrap_args(root), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", runtime.PYTHON, "-c", code]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_runtime_exported_from_base_image(docker_client, base_image, bwrap_path, tmp_path, monkeypatch):
    """Where the base image exists and no runtime does, the runtime is its root file system, exported."""
    require(os.geteuid() == 0, "building the runtime needs root")
    monkeypatch.setenv(runtime.ENV_VAR, str(tmp_path))
    assert runtime.runtime_root() is None
    lines = []
    t0 = time.monotonic()
    root = runtime.build(log=lines.append)
    seconds = time.monotonic() - t0
    assert runtime.runtime_root() == root
    assert runtime.info(root)["method"] == f"docker export of {base_image}", lines
    assert seconds < 120 and not any("debootstrap" in line for line in lines), (seconds, lines)
    out = _runtime_python(root, "import numpy, pandas, sklearn, os; print(os.getuid())")
    assert out.returncode == 0 and out.stdout.strip() == "1000", out
    assert not (root / ".dockerenv").exists() and "agent:x:1000:" in (root / "etc/passwd").read_text()
    assert main(["build", "--runtime-only"]) == 0  # ready: skipped
    assert not list(tmp_path.glob(".*partial*"))
    assert not docker_client.containers.list(all=True, filters={"ancestor": base_image, "status": "created"})


def test_no_runtime_flag_skips_it(docker_client, base_image, tmp_path, monkeypatch):
    monkeypatch.setenv(runtime.ENV_VAR, str(tmp_path))
    assert main(["build", "--offline", "--no-runtime", "dummy"]) == 0
    assert runtime.runtime_root() is None and not list(tmp_path.iterdir())


def test_base_image_imported_from_the_runtime(docker_client, base_image, bwrap_path):
    """A machine building both debootstraps once: the base image is the ready runtime's folder, imported."""
    require(os.geteuid() == 0, "building images needs root")
    root = runtime.runtime_root() or runtime.build()
    tag = "mleray-test-from-runtime:local"
    lines = []
    try:
        assert build_base(tag, log=lines.append) == tag
        assert any("importing the bwrap runtime" in line for line in lines), lines
        assert not any("debootstrap" in line for line in lines), lines
        out = docker_client.containers.run(tag, ["python3", "-c", "import sklearn, os; print(os.getuid())"],
                                           network_mode="none", user="1000:1000", remove=True)
        assert out.strip() == b"1000"
        assert runtime.runtime_root() == root
        lines.clear()
        assert build_base(tag, log=lines.append) == tag and any("exists, skipped" in line for line in lines), lines
        # An image of the same tag made of another package list (an older mleray's base) is built again.
        docker_client.images.remove(tag, force=True)
        docker_client.images.get(base_image).tag(tag)
        dockerfile = io.BytesIO(b"FROM " + tag.encode() + b"\nLABEL mleray.made-of=old\n")
        stale = docker_client.images.build(fileobj=dockerfile, tag=tag, rm=True, network_mode="none")[0]
        assert stale.labels.get("mleray.made-of") == "old"
        lines.clear()
        build_base(tag, log=lines.append)
        assert any("building it again" in line for line in lines), lines
        assert docker_client.images.get(tag).labels.get("mleray.made-of") == runtime.key()
    finally:
        if image_exists(tag, docker_client):
            docker_client.images.remove(tag, force=True)
