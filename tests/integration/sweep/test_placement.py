"""Placement rules on made-up node lists: how many of a shape fit, what to queue, when CPU-only trials
are kept off GPU nodes (the multi-node tests check that Ray honours the selector), and a tier no node
holds stopping a local sweep with a clear error."""

import subprocess
import sys

from mleray.config import TierConfig
from mleray.sweep.placement import GIB, NODE_ID_LABEL, cpu_only_selector, fits, plan_launches, unplaceable

CPU_NODE = {"id": "c", "resources": {"CPU": 8.0, "memory": 16 * GIB}}
GPU_NODE = {"id": "g", "resources": {"CPU": 4.0, "GPU": 1.0, "memory": 16 * GIB}}
GPU_NODE_2 = {"id": "h", "resources": {"CPU": 8.0, "GPU": 4.0}}
CPU_TIER = TierConfig(cpus=2, memory_gb=4, gpus=0)
GPU_TIER = TierConfig(cpus=1, memory_gb=4, gpus=0.5)


def test_fits_takes_the_scarcest_resource():
    assert fits(CPU_NODE["resources"], CPU_TIER) == 4
    assert fits(CPU_NODE["resources"], TierConfig(cpus=1, memory_gb=6)) == 2  # memory binds
    assert fits(CPU_NODE["resources"], GPU_TIER) == 0
    assert fits(GPU_NODE_2["resources"], GPU_TIER) == 8
    assert fits({"CPU": 20.0, "GPU": 5.0}, TierConfig(cpus=2, gpus=1, memory_gb=1)) == 5


def test_cpu_only_trials_are_kept_off_gpu_nodes_while_gpu_trials_wait():
    selector = cpu_only_selector(CPU_TIER, [CPU_NODE, GPU_NODE, GPU_NODE_2], gpu_trials_waiting=True)
    assert selector == {NODE_ID_LABEL: "!in(g,h)"}


def test_no_constraint_when_it_cannot_help_or_would_block():
    nodes = [CPU_NODE, GPU_NODE]
    assert cpu_only_selector(GPU_TIER, nodes, True) is None  # a GPU trial goes where its GPU is
    assert cpu_only_selector(CPU_TIER, nodes, False) is None  # no GPU trial waits: anywhere
    assert cpu_only_selector(CPU_TIER, [CPU_NODE], True) is None  # no GPU nodes
    assert cpu_only_selector(CPU_TIER, [GPU_NODE, GPU_NODE_2], True) is None  # nowhere else to go
    big = TierConfig(cpus=16, memory_gb=4)
    assert cpu_only_selector(big, nodes + [GPU_NODE_2], True) is None  # no GPU-free node holds it


FULL = TierConfig(cpus=2, memory_gb=1, gpus=1)
HALF = TierConfig(cpus=1, memory_gb=1, gpus=0.5)
TOTAL = {"CPU": 20.0, "GPU": 5.0}
NODES = [CPU_NODE, GPU_NODE, GPU_NODE_2]


def test_plan_queues_what_the_cluster_could_start_and_larger_gpu_shares_first():
    tiers = {"half": HALF, "full": FULL, "cpu": CPU_TIER}
    plan = plan_launches(tiers, {"half": 50, "full": 50, "cpu": 50}, {}, TOTAL, NODES)
    assert plan == {"full": 5, "cpu": 10}  # half-GPU trials wait until whole-GPU ones are placed
    plan = plan_launches(tiers, {"half": 50, "full": 50, "cpu": 50}, {"full": 2, "cpu": 5}, TOTAL, NODES)
    assert plan == {"full": 3, "cpu": 5}
    # every whole-GPU trial placed (none waiting, none left): the half-GPU ones flow
    assert plan_launches(tiers, {"half": 50, "full": 0, "cpu": 0}, {}, TOTAL, NODES) == {"half": 10}
    assert plan_launches(tiers, {"half": 3}, {}, TOTAL, NODES) == {"half": 3}  # no more than are left


def test_a_larger_share_no_node_can_hold_does_not_block_the_rest():
    huge = TierConfig(cpus=1, memory_gb=1, gpus=8)  # no node has 8 GPUs (an autoscaler may add one)
    plan = plan_launches({"huge": huge, "half": HALF}, {"huge": 2, "half": 4}, {}, TOTAL, NODES)
    assert plan == {"huge": 1, "half": 4}


def test_a_tier_no_node_holds_is_named():
    lines = unplaceable({"cpu": CPU_TIER, "big": TierConfig(cpus=2, memory_gb=4, gpus=2)}, [CPU_NODE, GPU_NODE])
    assert len(lines) == 1 and lines[0].startswith("tier 'big' asks for 2 CPU, 2 GPU, 4 GiB, but no node has that")
    assert "CPU 8, memory 16" in lines[0] and "CPU 4, GPU 1, memory 16" in lines[0]


def test_a_gpu_tier_on_a_gpu_less_local_ray_is_an_error_not_a_hang(tmp_path, bwrap_path):
    command = [sys.executable, "-m", "mleray.sweep", "name=nogpu", f"storage={tmp_path}", "competitions=[titanic]",
               "agents=[dummy]", "sandbox=bwrap", "tiers.cpu.gpus=1", "ray.num_cpus=2", "ray.num_gpus=0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "tier 'cpu' asks for" in done.stderr and "1 GPU" in done.stderr and "ray.address=auto" in done.stderr
