"""Images: the machine's Debian mirror, the offline base image, agent images built on it, and an
MLE-bench-style agent image (start.sh convention) running unchanged in the Docker sandbox."""

from __future__ import annotations

import threading

import pytest

from mleray.config import load_agent
from mleray.sandbox.images import build_agent, debian_mirror, image_exists, main
from mleray.sandbox.docker import DockerSandbox
from mleray.sandbox.validation import ValidationServer, socket_path_for
from helpers import make_spec


def test_mirror_from_deb822(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
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
