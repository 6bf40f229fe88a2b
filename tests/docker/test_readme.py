"""Every command in README.md's bash blocks is exercised, so the page cannot drift from the code.

Commands that fit on one machine run for real, with small overrides (one competition, one seed, short
time limits, a temporary storage); cluster commands have their sweep config loaded and checked; the
two set-up commands are checked against `.ci/run`; `pip install` is run by tests/docker/test_install.py.
A README command no handler here recognises fails the test: add one when you add a command."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from helpers import ROOT

from mleray import competitions, paths
from mleray.config import load_agent, load_sweep

pytestmark = pytest.mark.slow


def readme_commands() -> List[str]:
    """The command lines of README.md's ```bash blocks, comments dropped."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def alternatives(argv: List[str]) -> List[List[str]]:
    """`[--a] [--b]` and `x|y|z` as written in the README, expanded into the command lines they stand for."""
    plain, options, group = [], [], None
    for arg in argv:  # shlex splits `[--split low]` into two words: join them again
        if arg.startswith("[") or group is not None:
            group = (group or []) + [arg.strip("[]")]
            if arg.endswith("]"):
                options.append(group)
                group = None
        else:
            plain.append(arg)
    runs = [plain] + [plain + opt for opt in options] + (
        [plain + [o for opt in options for o in opt]] if len(options) > 1 else [])
    out = []
    for run in runs:
        bar = next((i for i, a in enumerate(run) if "|" in a), None)
        out += [run[:bar] + [alt] + run[bar + 1:] for alt in run[bar].split("|")] if bar is not None else [run]
    return out


def python_m(argv: List[str]) -> List[str]:
    """`mleray X` and `python -m mleray X` both run with this interpreter."""
    if argv[:2] == ["python", "-m"]:
        return [sys.executable, "-m", *argv[2:]]
    if argv[0] == "mleray":
        return [sys.executable, "-m", "mleray", *argv[1:]]
    raise AssertionError(f"not a python command: {argv}")


def check_sweep_config(args: List[str]) -> None:
    """A sweep command's config loads and names agents and competitions that exist."""
    ns = _parse(args)
    cfg = load_sweep(ns.config, list(ns.overrides) + ([f"ray.address={ns.address}"] if ns.address else []))
    for agent in cfg.agents:
        load_agent(agent)
    for cid in cfg.competitions or competitions.suite(cfg.suite):
        competitions.get(cid)


def run(argv: List[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"{shlex.join(argv)} exited {result.returncode}:\n{result.stdout[-2000:]}\n"
                                    f"{result.stderr[-3000:]}")
    return result


def test_readme_starts_with_the_two_commands_ci_runs():
    commands = readme_commands()
    assert commands[:2] == ["bash .ci/setup && python -m mleray.sweep", "bash .ci/setup && python -m pytest -q"]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert "bash .ci/setup" in ci and ci[-1] == "python -m pytest -q", ci


def _parse(args: List[str]):
    """A sweep command's arguments, read by `python -m mleray.sweep`'s own parser."""
    from mleray.sweep.driver import main_parser

    return main_parser().parse_args(args)


def test_every_readme_command_works(tmp_path, docker_client):
    storage = tmp_path / "runs"
    small = [f"storage={storage}", "competitions=[titanic]", "seeds=1"]
    commands = [(line, shlex.split(line)) for line in readme_commands()]
    handled, sweep_dir = [], None
    for line, argv in commands:  # the sweeps first: the other commands read what they wrote
        if argv[:3] != ["python", "-m", "mleray.sweep"]:
            continue
        handled.append(line)
        ns = _parse(argv[3:])
        if ns.address or any(a.startswith("ray.address=") for a in ns.overrides):
            check_sweep_config(argv[3:])  # needs a cluster: tests/test_cluster_*.py run the cluster path
            continue
        if any(load_agent(a).llm for a in load_sweep(ns.config, ns.overrides).agents):
            check_sweep_config(argv[3:])  # needs an LLM provider: tests/docker/test_aide_agent.py runs aide
            continue                      # end to end against a stand-in one
        tiers = load_sweep(ns.config, ns.overrides).tiers
        out = run(python_m(argv) + small + [f"tiers.{name}.time_limit=20" for name in tiers], cwd=tmp_path)
        assert any(f"| {tier} |" in out.stdout for tier in tiers), out.stdout
        name = load_sweep(ns.config, ns.overrides).name
        sweep_dir = sweep_dir or storage / name
    assert sweep_dir is not None, "the README shows no sweep that runs on one machine"
    record = json.loads((sweep_dir / "trials.jsonl").read_text().splitlines()[0])
    submission = sweep_dir / record["submission_path"]
    jsonl = tmp_path / "submissions.jsonl"
    jsonl.write_text(json.dumps({"competition_id": "titanic", "submission_path": str(submission)}) + "\n")
    subs = {"SUBMISSION.csv": str(submission), "COMPETITION_ID": "titanic", "submissions.jsonl": str(jsonl),
            "SWEEP": sweep_dir.name, "TRIAL_ID": record["trial_id"], "runs/default": str(sweep_dir)}

    for line, argv in commands:
        if argv[:3] == ["python", "-m", "mleray.sweep"]:
            continue
        handled.append(line)
        if line.startswith("bash .ci/setup && "):  # checked by test_readme_starts_with_the_two_commands_ci_runs
            continue
        if argv[:2] == ["pip", "install"]:  # tests/docker/test_install.py installs exactly this way
            assert "requirements.lock" in (ROOT / "tests" / "docker" / "test_install.py").read_text()
            continue
        if argv[:2] in (["ray", "up"], ["ray", "attach"]):  # tests/unit/test_cluster_config.py validates the file
            assert (ROOT / argv[2]).is_file()
            continue
        if argv[:3] == ["ray", "job", "submit"]:
            check_sweep_config(argv[argv.index("--") + 4:])
            continue
        for variant in alternatives([subs.get(a, a) for a in argv]):
            if "images" in variant and "--offline" not in variant:
                continue  # no registry on these machines: the --offline form is the one that can run
            if "setup" in variant:
                # .ci/setup installed them; tests/docker/test_install.py runs it for real
                variant = variant + ["--dry-run"]
            if "logs" in variant:
                variant = variant + ["--storage", str(storage)]
            run(python_m(variant), cwd=tmp_path, timeout=1200)
    assert sorted(handled) == sorted(readme_commands())


def test_cluster_examples_are_checked(tmp_path):
    """The cluster examples' configs load (no cluster needed), so a renamed key or agent fails here."""
    cluster = [shlex.split(line) for line in readme_commands()
               if "--address auto" in line or "ray.address=auto" in line]
    assert cluster, "the README shows no cluster sweep"
    for argv in cluster:
        check_sweep_config(argv[argv.index("--") + 4:] if "--" in argv else argv[3:])
    assert paths.find("agents", "baseline.yaml") is not None
