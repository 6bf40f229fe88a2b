"""Choosing the sandbox backend: auto, docker, bwrap, with reasons and clear errors."""

from __future__ import annotations

import pytest

from mleray.config import AgentConfig, SandboxKind
from mleray.sandbox.base import SandboxError
from mleray.sandbox.select import choose


def agent(name, image):
    return AgentConfig(name=name, image=image, command=["true"])


def test_auto_picks_docker_when_every_image_exists(base_image):
    kind, reason = choose("auto", [agent("a", base_image), agent("b", base_image)])
    assert kind == "docker" and "auto" in reason
    assert choose(SandboxKind.auto, [agent("a", base_image)])[0] == "docker"


def test_auto_falls_back_to_bwrap_and_says_why(docker_client, bwrap_path, base_image):
    kind, reason = choose("auto", [agent("a", base_image), agent("ghost", "mleray-ghost:none")])
    assert kind == "bwrap"
    assert "mleray-ghost:none (ghost)" in reason and "mleray images build" in reason
    kind, reason = choose("auto", [AgentConfig(name="plain", command=["true"])])
    assert kind == "bwrap" and "plain" in reason


def test_explicit_docker_fails_clearly(docker_client):
    with pytest.raises(SandboxError, match=r"mleray-ghost:none.*mleray images build"):
        choose("docker", [agent("ghost", "mleray-ghost:none")])


def test_explicit_docker_without_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxError, match="no Docker engine answers"):
        choose("docker", [agent("a", "x:y")])


def test_bwrap(bwrap_path, monkeypatch):
    assert choose("bwrap", [])[0] == "bwrap"
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxError, match="bubblewrap"):
        choose("bwrap", [])
    with pytest.raises(SandboxError, match="unknown sandbox kind"):
        choose("podman", [])
