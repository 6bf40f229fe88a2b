"""Sweep config: defaults load, overrides apply, every bad input is a one-line error naming the key."""

import pytest

from mleray.config import ConfigError, load_agent, load_sweep


def test_default_sweep_loads():
    cfg = load_sweep()
    assert cfg.suite == "offline-lite" and cfg.agents == ["dummy", "baseline"] and cfg.seeds == 2
    assert cfg.sandbox.value == "auto"


def test_overrides_apply_and_add_tiers():
    cfg = load_sweep(overrides=["seeds=3", "tiers.gpu.gpus=0.5", "tiers.gpu.cpus=2", "sandbox=bwrap"])
    assert cfg.seeds == 3 and cfg.sandbox.value == "bwrap"
    assert cfg.tiers["gpu"].gpus == 0.5 and cfg.tiers["gpu"].cpus == 2


@pytest.mark.parametrize("override, expected", [
    ("bogus=1", "unknown config key 'bogus' (allowed: name,"),
    ("ray.bogus=1", "unknown config key 'ray.bogus' (allowed: address, num_cpus, num_gpus, dashboard, metrics)"),
    ("tiers.cpu.cpus=lots", "bad value for 'tiers.cpu.cpus'"),
    ("sandbox=podman", "expected one of [auto, docker, bwrap]"),
    ("tiers.cpu.gpus=1.5", "'tiers.cpu.gpus': 1.5 (allowed: 0, a fraction below 1, or a whole number)"),
    ("tiers.cpu.memory_gb=0", "'tiers.cpu.memory_gb': 0.0 (must be > 0)"),
    ("seeds=0", "'seeds': 0 (must be >= 1)"),
    ("retries=-1", "'retries'"),
    ("agents=[]", "'agents': empty"),
    ("noequals", "expected key=value"),
])
def test_bad_input_is_one_line_error(override, expected):
    with pytest.raises(ConfigError) as err:
        load_sweep(overrides=[override])
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_sweep(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_sweep(bad)


def test_unknown_agent_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown agent 'nope' \(known: .*baseline.*dummy"):
        load_agent("nope")


def test_agent_paths_resolve_relative_to_yaml(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "a.yaml").write_text("code: code\ncommand: [python3, /home/agent/run.py]\nenv_passthrough: [KEY]\n")
    agent = load_agent("a", tmp_path)
    assert agent.code == str((tmp_path / "code").resolve()) and agent.env_passthrough == ["KEY"]
    (tmp_path / "b.yaml").write_text("image: x\n")
    with pytest.raises(ConfigError, match="'command'"):
        load_agent("b", tmp_path)
