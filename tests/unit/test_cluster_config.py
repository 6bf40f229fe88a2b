"""cluster.yaml validates against Ray's own autoscaler schema (shipped in the wheel), and the
ablation configs load and validate as sweep configs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mleray.config import load_sweep

from helpers import ROOT  # noqa: E402


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


def test_cluster_shape():
    c = _cluster()
    types = c["available_node_types"]
    assert c["provider"]["type"] == "aws"
    assert types[c["head_node_type"]]["resources"] == {"CPU": 0}  # the driver's node takes no trials
    gpu_nodes = {name: t for name, t in types.items() if t["resources"].get("GPU")}
    assert {t["node_config"]["InstanceType"] for t in gpu_nodes.values()} >= {"g5.xlarge", "g5.12xlarge"}
    assert sum(t.get("min_workers", 0) for t in types.values()) <= c["max_workers"]
    commands = "\n".join(c["initialization_commands"] + c["setup_commands"] + c["worker_setup_commands"])
    assert "nvidia-ctk runtime configure --runtime=docker" in commands
    assert "pip install --user -c /home/ubuntu/mleray/requirements.lock -e /home/ubuntu/mleray" in commands
    assert "mleray setup offline" in commands  # the raw data the staging warm-up prepares from
    assert "mleray images build" in commands
    assert "python3 -m mleray.trial.staging warm" in commands
    assert c["file_mounts"]["/home/ubuntu/mleray"] == "."


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
