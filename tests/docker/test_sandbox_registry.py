"""The sandbox registry: backends by name, auto's order of preference, each backend's problem()/reap(),
real errors before start(), and the one Docker client factory."""

from __future__ import annotations

import pytest
from helpers import make_spec

from mleray import sandbox
from mleray.sandbox import registry, select
from mleray.sandbox.base import NotStarted, Sandbox, SandboxError
from mleray.sandbox.bwrap import BwrapSandbox
from mleray.sandbox.docker import DockerSandbox, engine


def test_backends_by_name_most_preferred_first():
    assert sandbox.names() == ["docker", "bwrap"]
    assert sandbox.backend("docker") is DockerSandbox and sandbox.backend("bwrap") is BwrapSandbox
    with pytest.raises(SandboxError, match="unknown sandbox kind 'podman'"):
        sandbox.backend("podman")


def test_bwrap_reaps_nothing():
    assert BwrapSandbox.reap("any-sweep") == 0


def test_auto_asks_the_registry_in_order(monkeypatch):
    class Never(Sandbox):
        @classmethod
        def problem(cls, agents):
            return "never here"

    class Always(Never):
        @classmethod
        def problem(cls, agents):
            return None

    found = {"first": Never, "second": Always, "third": Always}
    monkeypatch.setattr(registry, "BACKENDS", dict.fromkeys(found))
    monkeypatch.setattr(select, "backend", found.__getitem__)
    assert select.choose("auto", []) == ("second", "auto: second, as first cannot: never here")
    with pytest.raises(SandboxError, match="sandbox=first but never here"):
        select.choose("first", [])


@pytest.mark.parametrize("cls", [BwrapSandbox, DockerSandbox])
def test_logs_and_wait_before_start_are_errors(cls, trial_dirs):
    box = cls(make_spec(trial_dirs, ["true"]))
    with pytest.raises(NotStarted, match="before start"):
        next(iter(box.logs()))
    with pytest.raises(NotStarted, match="before start"):
        box.wait(1)
    box.kill()  # safe before start


def test_one_client_per_address_and_timeout(docker_client, monkeypatch):
    assert engine.client() is engine.client() and engine.client(None) is not engine.client()
    assert engine.problem() is None
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(engine.EngineError, match="no Docker engine answers"):
        engine.client()
    assert "start dockerd" in engine.problem() and not engine.image_exists("mleray-base:local")
