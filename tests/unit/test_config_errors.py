"""Config errors are one line naming the key or file and what to write: unknown keys at any depth,
a scalar where a list is needed, YAML syntax errors with their line and column."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest
from helpers import ROOT

from mleray.config import AgentConfig, ConfigError, SweepConfig, load_agent, load_sweep

TIER_KEYS = "cpus, memory_gb, gpus, time_limit, pids, shm_gb, disk_gb"


def _error(fn, *args) -> str:
    with pytest.raises(ConfigError) as err:
        fn(*args)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("override, expected", [
    ("tiers.cpu.tim_limit=5", f"unknown config key 'tiers.cpu.tim_limit' (allowed: {TIER_KEYS})"),
    ("tiers.gpu.cpu=2", f"unknown config key 'tiers.gpu.cpu' (allowed: {TIER_KEYS})"),
    ("ray.adress=auto", "unknown config key 'ray.adress' (allowed: address, num_cpus, num_gpus, dashboard, metrics)"),
    ("bogus=1", f"unknown config key 'bogus' (allowed: {', '.join(f.name for f in fields(SweepConfig))})"),
    ("competitions=titanic", "bad value for 'competitions': 'titanic' is not a list (write competitions='[titanic]')"),
    ("agents=dummy", "bad value for 'agents': 'dummy' is not a list (write agents='[dummy]')"),
    ("agents=[dummy", "bad override 'agents=[dummy': line 1, column 7: expected ',' or ']', but got "
                      "'<stream end>' (while parsing a flow sequence at line 1, column 1)"),
])
def test_override_errors(override, expected):
    assert _error(load_sweep, None, [override]) == expected


@pytest.mark.parametrize("text, expected", [
    ("tiers:\n  cpu:\n    tim_limit: 5\n",
     f"unknown config key 'tiers.cpu.tim_limit' in {{path}} (allowed: {TIER_KEYS})"),
    ("ray:\n  adress: auto\n",
     "unknown config key 'ray.adress' in {path} (allowed: address, num_cpus, num_gpus, dashboard, metrics)"),
    ("competitions: titanic\n", "bad value for 'competitions' in {path}: 'titanic' is not a list "
                                "(write competitions: [titanic])"),
    ("name: x\nseeds: 2\na: b: c\n",
     "cannot read config {path}: line 3, column 5: mapping values are not allowed here"),
    ("name: x\nagents: [dummy,\n", "cannot read config {path}: line 3, column 1: expected the node content, but "
                                   "found '<stream end>' (while parsing a flow node at line 3, column 1)"),
    ("- a\n- b\n", "cannot read config {path}: the top level is a list (write key: value lines)"),
])
def test_sweep_file_errors(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert _error(load_sweep, path) == expected.format(path=path)


def test_file_keys_then_overrides_are_checked_in_turn(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("competitions: [titanic]\n")
    assert load_sweep(path, ["competitions=[a,b]"]).competitions == ["a", "b"]
    assert "'competitions': 'c'" in _error(load_sweep, path, ["competitions=c"])


@pytest.mark.parametrize("text, expected", [
    ("command: [python3, run.py\nimage: x\n", "cannot read config {path}: line 2, column 6: expected ',' or ']', "
                                              "but got ':' (while parsing a flow sequence at line 1, column 10)"),
    ("comand: [python3]\n", "unknown config key 'comand' in {path} "
                            f"(allowed: {', '.join(f.name for f in fields(AgentConfig))})"),
    ("command: python3 run.py\n", "bad value for 'command' in {path}: 'python3 run.py' is not a list "
                                  "(write command: [python3 run.py])"),
])
def test_agent_file_errors(tmp_path, text, expected):
    path = tmp_path / "a.yaml"
    path.write_text(text)
    assert _error(load_agent, "a", tmp_path) == expected.format(path=path)


@pytest.mark.parametrize("args, expected", [
    (["competitions=titanic"], "mleray: bad value for 'competitions': 'titanic' is not a list"),
    (["--config", "{bad}"], "mleray: cannot read config {bad}: line 1, column 8: mapping values are not allowed here"),
])
def test_sweep_cli_prints_one_line_and_exits_2(tmp_path, args, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a: b\n")
    args = [a.format(bad=bad) for a in args]
    proc = subprocess.run([sys.executable, "-m", "mleray.sweep", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(expected.format(bad=bad)) and proc.stderr.count("\n") == 1
