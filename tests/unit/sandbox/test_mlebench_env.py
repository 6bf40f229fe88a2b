"""MLE-bench's agent variables and instructions files (mleray.sandbox.mlebench_images), in process."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SHARED

from mleray.config import load_agent
from mleray.mlebench import catalog
from mleray.sandbox import mlebench_images as mi
from mleray.sandbox.docker.spec import mounts
from mleray.trial.folder import TrialPaths

REFERENCE = SHARED / "reference" / "mle-bench"


def test_hardware_as_mlebench_start_scripts_word_it():
    names = {"0": "NVIDIA A100-SXM4-80GB", "1": "NVIDIA A100-SXM4-80GB", "2": "NVIDIA H100 80GB HBM3"}
    assert mi.hardware([], names=names) == "a CPU"
    assert mi.hardware(["0"], names=names) == "1 NVIDIA A100-SXM4-80GB"
    assert mi.hardware(["2", "0", "1"], names=names) == "2 NVIDIA A100-SXM4-80GB, 1 NVIDIA H100 80GB HBM3"
    assert mi.hardware(["7"], names={}) == "1 GPU"
    assert mi.hardware(["0"], 0.5, names=names) == "1 NVIDIA A100-SXM4-80GB (a 0.5 share of each)"


def test_agent_env_time_limit_follows_the_tier_and_step_limit_the_agent():
    own = {"TIME_LIMIT_SECS": "86400", "HARDWARE": "a big machine", "OTHER": "1"}
    env = mi.agent_env(own, 1234.9, 7, [], 0.0)
    assert env["TIME_LIMIT_SECS"] == "1234"  # the tier's, not the agent's 24 h
    assert env["STEP_LIMIT"] == "7" and env["HARDWARE"] == "a big machine" and env["OTHER"] == "1"
    assert {k: env[k] for k in mi.LAYOUT} == {"SUBMISSION_DIR": "/home/submission", "LOGS_DIR": "/home/logs",
                                             "CODE_DIR": "/home/code", "AGENT_DIR": "/home/agent"}
    plain = mi.agent_env({"STEP_LIMIT": "3"}, 60, None, ["0"], 1.0, names={"0": "X"})
    assert plain["STEP_LIMIT"] == "3" and plain["HARDWARE"] == "1 X" and plain["TIME_LIMIT_SECS"] == "60"
    assert "STEP_LIMIT" not in mi.agent_env({}, 60, None, [])


def test_step_limit_is_an_agent_key(tmp_path):
    (tmp_path / "a.yaml").write_text("image: x\ncommand: [bash, /home/agent/start.sh]\nstep_limit: 12\n")
    assert load_agent("a", tmp_path).step_limit == 12
    (tmp_path / "b.yaml").write_text("image: x\ncommand: [bash]\nstep_limit: many\n")
    with pytest.raises(Exception, match="step_limit"):
        load_agent("b", tmp_path)


def test_without_a_clone_the_instructions_are_mleray_own(monkeypatch, tmp_path):
    monkeypatch.setattr(catalog, "package_dir", lambda: tmp_path / "site-packages" / "mlebench")
    monkeypatch.setattr(mi, "_clone_roots", lambda: iter([tmp_path / "site-packages"]))
    assert mi.mlebench_environment_dir() is None
    assert mi.instructions() == mi.OWN_INSTRUCTIONS / "instructions.txt"
    assert mi.instructions(obfuscated=True) == mi.OWN_INSTRUCTIONS / "instructions_obfuscated.txt"
    assert all(p.is_file() for p in (mi.instructions(), mi.instructions(obfuscated=True)))


def _fake_clone(root: Path) -> Path:
    (root / "mlebench").mkdir(parents=True)
    (root / "mlebench" / "__init__.py").write_text("")
    (root / "environment").mkdir()
    (root / "environment" / "instructions.txt").write_text("clone's instructions\n")
    (root / "environment" / "instructions_obfuscated.txt").write_text("clone's obfuscated instructions\n")
    return root


def test_a_clone_on_the_path_gives_its_own_instructions(monkeypatch, tmp_path):
    clone = _fake_clone(tmp_path / "mle-bench")
    monkeypatch.setattr(catalog, "package_dir", lambda: clone / "mlebench")
    assert mi.mlebench_environment_dir() == clone / "environment"
    paths = TrialPaths(tmp_path / "trial").fresh()
    assert paths.instructions.read_text() == "clone's instructions\n"
    assert paths.instructions_obfuscated.read_text() == "clone's obfuscated instructions\n"


def test_a_wheel_installed_from_a_clone_is_found_through_direct_url(monkeypatch, tmp_path):
    clone = _fake_clone(tmp_path / "my clone")  # a space: the URL is quoted

    class Dist:
        def read_text(self, name):
            return '{"url": "%s", "dir_info": {}}' % clone.as_uri() if name == "direct_url.json" else None

    monkeypatch.setattr(catalog, "package_dir", lambda: tmp_path / "site-packages" / "mlebench")
    monkeypatch.setattr(mi.importlib.metadata, "distribution", lambda name: Dist())
    assert mi.mlebench_environment_dir() == clone / "environment"


def test_the_reference_clone_gives_mlebench_text(monkeypatch):
    """Against MLE-bench's own checkout (../shared/reference/mle-bench): its text, read from it at run time."""
    if not (REFERENCE / "environment" / "instructions.txt").is_file():
        pytest.skip(f"no MLE-bench checkout at {REFERENCE}")
    monkeypatch.setattr(catalog, "package_dir", lambda: REFERENCE / "mlebench")
    assert mi.instructions().read_bytes() == (REFERENCE / "environment" / "instructions.txt").read_bytes()
    obfuscated = REFERENCE / "environment" / "instructions_obfuscated.txt"
    assert mi.instructions(obfuscated=True).read_bytes() == obfuscated.read_bytes()
    assert mi.instructions().read_bytes() != (mi.OWN_INSTRUCTIONS / "instructions.txt").read_bytes()


def test_both_instructions_files_are_mounted(trial_dirs):
    from helpers import make_spec

    other = trial_dirs["instructions"].with_name("instructions_obfuscated.txt")
    other.write_text("obfuscated\n")
    spec = make_spec(trial_dirs, ["true"], instructions_obfuscated=other)
    targets = {c: (h, m) for h, c, m in mounts(spec)}
    assert targets["/home/instructions_obfuscated.txt"] == (str(other.resolve()), "ro")
    assert targets["/home/instructions.txt"] == (str(trial_dirs["instructions"].resolve()), "ro")
    assert "/home/instructions_obfuscated.txt" not in {c for _, c, _ in mounts(make_spec(trial_dirs, ["true"]))}


def test_the_compatible_base_needs_no_second_debootstrap():
    """What MLE-bench's agent scripts call is in the bwrap runtime's own package list, so the compatible
    base's root file system is an import of the runtime's folder (images.build_base's fast path)."""
    from mleray.sandbox import mlebench_images, runtime

    assert set(mlebench_images.EXTRA_PACKAGES) <= set(runtime.PACKAGES)
    assert tuple(mlebench_images.PACKAGES) == tuple(runtime.PACKAGES)
