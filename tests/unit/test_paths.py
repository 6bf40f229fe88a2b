"""The search path for agents, suites and competitions: flags, then $MLERAY_*_DIR, then the working
directory's folders, then the shipped ones; the shipped data found inside an installed package."""

from __future__ import annotations

import argparse
import os

import pytest

from mleray import competitions, paths
from mleray.config import ConfigError, load_agent


def agent_yaml(folder, name, command="[true]"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(f"image: x:latest\ncommand: {command}\n")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for _, variable in paths.KINDS.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_order_is_flags_env_cwd_shipped(clean_env, monkeypatch):
    tmp = clean_env
    for where in ("flag", "env", "configs"):
        agent_yaml(tmp / where / "agents" if where != "configs" else tmp / "configs" / "agents", "mine",
                   command=f"[echo, {where}]")
    agent_yaml(tmp / "configs" / "agents", "baseline", command="[echo, shadow]")
    assert load_agent("mine").command == ["echo", "configs"]  # the working directory's configs/agents
    assert load_agent("baseline").command == ["echo", "shadow"]  # shadows the shipped one
    monkeypatch.setenv("MLERAY_AGENTS_DIR", str(tmp / "env" / "agents"))
    assert load_agent("mine").command == ["echo", "env"]
    parser = argparse.ArgumentParser()
    paths.add_search_flags(parser)
    paths.apply_search_flags(parser.parse_args(["--agents-dir", "flag/agents"]))
    assert load_agent("mine").command == ["echo", "flag"]
    # exported as absolute folders, so trial actors started elsewhere find the same agent
    assert all(os.path.isabs(p) for p in os.environ["MLERAY_AGENTS_DIR"].split(os.pathsep))
    assert load_agent("dummy").command  # the shipped agents stay reachable


def test_unknown_names_never_point_into_the_package(clean_env):
    with pytest.raises(ConfigError) as err:
        load_agent("no-such-agent")
    message = str(err.value)
    assert "known: aide, baseline, dummy" in message and "--agents-dir" in message and "MLERAY_AGENTS_DIR" in message
    assert str(paths.shipped_dir("agents")) not in message and "site-packages" not in message
    with pytest.raises(competitions.CompetitionError) as err:
        competitions.suite("nope")
    assert "--suites-dir" in str(err.value) and str(paths.shipped_dir("suites")) not in str(err.value)


def test_suites_and_competitions_of_your_own(clean_env, monkeypatch):
    tmp = clean_env
    (tmp / "configs" / "suites").mkdir(parents=True)
    (tmp / "configs" / "suites" / "mine.yaml").write_text("competitions: [titanic]\n")
    assert competitions.suite("mine") == ["titanic"]
    assert "offline-lite" in paths.names("suites", "*.yaml")


def test_an_installed_package_reads_its_own_data(monkeypatch, tmp_path):
    """Outside a source tree (no pyproject.toml beside the package) the data is mleray/_data."""
    monkeypatch.setattr(paths, "_SOURCE_ROOT", tmp_path)
    root = paths.project_root()
    assert root.name == "_data" and root.parent.name == "mleray"
    assert paths.shipped_dir("competitions") == root / "competitions"


def test_a_bad_interpolation_in_an_agent_file_is_one_line(clean_env):
    agent_yaml(clean_env / "configs" / "agents", "broken", command="[run]")
    with open(clean_env / "configs" / "agents" / "broken.yaml", "a") as f:
        f.write("code: ${no_such_resolver:x}\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: Unsupported interpolation type no_such_resolver"):
        load_agent("broken")
