"""What mleray adds around a Docker container: a no-op agent trial end to end ÷ a bare `docker run`.

In the same run, alternating, with several repetitions each (median reported):
- bare:  `docker run --rm --network none IMAGE true` (the docker CLI, what a person would type),
         and the same through the docker SDK (containers.run(..., remove=True));
- trial: `mleray.trial.runner.run_trial(job)` with sandbox_kind "docker" for a no-op agent (command
         `true` in the same image) on a prepared competition: fresh trial folders, the outside
         validation server and the shim inside, the hardened container with its limits and mounts,
         log streaming, waiting, removal, grading of the (absent) submission and result.json.

Target: trial / bare (CLI) <= 1.3. Writes bench/results/docker_overhead.json and .md.

    python bench/docker_overhead.py [--reps 7] [--image mleray-agent-dummy:latest] [--competition titanic]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from measure import ROOT

from mleray.config import AgentConfig, SweepConfig, TierConfig
from mleray.sandbox import images
from mleray.sweep.trials import TrialJob, TrialSpec
from mleray.trial import runner

RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    from mleray.sandbox.docker import engine

    info = engine.client().info()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker_engine": info.get("ServerVersion"),
        "storage_driver": info.get("Driver"),
        "cgroup": info.get("CgroupVersion"),
        "os": info.get("OperatingSystem"),
        "load_average_1m": round(os.getloadavg()[0], 2),  # a shared machine: other work inflates both sides
    }


def bare_cli(image: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bare_sdk(client, image: str) -> float:
    t0 = time.perf_counter()
    client.containers.run(image, ["true"], network_mode="none", remove=True)
    return time.perf_counter() - t0


def trial(sweep_dir: Path, cfg: SweepConfig, spec: TrialSpec) -> tuple[float, dict]:
    t0 = time.perf_counter()
    record = runner.run_trial(TrialJob.of(cfg, spec, sweep_dir, "docker"))
    took = time.perf_counter() - t0
    assert record.exit_code == 0 and record.sandbox == "docker", record
    return took, {"staging_s": record.staging_s, "agent_s": record.agent_s, "grading_s": record.grading_s}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--image", default="mleray-agent-dummy:latest")
    parser.add_argument("--competition", default="titanic")
    parser.add_argument("--out", default=str(RESULTS / "docker_overhead"))
    args = parser.parse_args(argv)

    from mleray.sandbox.docker import engine

    client = engine.client()
    if not images.image_exists(args.image, client):
        print(f"{args.image} missing: building the dummy agent offline", flush=True)
        images.build(["dummy"], offline=True)

    noop = AgentConfig(name="noop", image=args.image, command=["true"])
    runner.load_agent = lambda name: noop  # the no-op agent, without adding a yaml to configs/agents
    tier = TierConfig(cpus=1, memory_gb=2, gpus=0, time_limit=60)
    cfg = SweepConfig(name="bench-docker-overhead", competitions=[args.competition], agents=["noop"],
                      tiers={"cpu": tier}, seeds=1, snapshot_interval=3600)
    spec = TrialSpec(cfg.name, "noop", args.competition, "cpu", 0, tier)

    with tempfile.TemporaryDirectory(prefix="mleray-bench-") as tmp:
        sweep_dir = Path(tmp)
        # warm-up: prepare the competition, page the image in, first container start
        trial(sweep_dir, cfg, spec)
        bare_cli(args.image)
        bare_sdk(client, args.image)
        cli, sdk, trials, parts = [], [], [], []
        for i in range(args.reps):
            cli.append(bare_cli(args.image))
            sdk.append(bare_sdk(client, args.image))
            took, part = trial(sweep_dir, cfg, spec)
            trials.append(took)
            parts.append(part)
            print(f"rep {i}: docker run {cli[-1]:.3f} s, sdk run {sdk[-1]:.3f} s, trial {took:.3f} s {part}",
                  flush=True)

    med = {k: statistics.median(v) for k, v in {"bare_cli_s": cli, "bare_sdk_s": sdk, "trial_s": trials}.items()}
    part_med = {k: round(statistics.median(p[k] for p in parts), 3) for k in parts[0]}
    result = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "image": args.image,
        "competition": args.competition,
        "reps": args.reps,
        "median": {k: round(v, 3) for k, v in med.items()},
        "trial_parts_median": part_med,
        "ratio_trial_over_docker_run": round(med["trial_s"] / med["bare_cli_s"], 3),
        "ratio_trial_over_sdk_run": round(med["trial_s"] / med["bare_sdk_s"], 3),
        "target": 1.3,
        "samples": {"bare_cli_s": [round(x, 3) for x in cli], "bare_sdk_s": [round(x, 3) for x in sdk],
                    "trial_s": [round(x, 3) for x in trials]},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    ok = "meets" if result["ratio_trial_over_docker_run"] <= result["target"] else "misses"
    parts = " / ".join(f"{part_med[k]:.3f}" for k in ("staging_s", "agent_s", "grading_s"))
    md = f"""# Docker overhead: a no-op trial end to end ÷ a bare `docker run`

Measured {result['measured_at']} on {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['os']}, kernel {m['kernel']},
Docker engine {m['docker_engine']} ({m['storage_driver']}, cgroup v{m['cgroup']}), Python {m['python']};
load average {m['load_average_1m']} when it finished (the machine is shared: expect noise of ±30 % per run).
Image `{args.image}`, competition `{args.competition}`, {args.reps} repetitions each, alternating, medians.

| what | median (s) |
|---|---|
| `docker run --rm --network none IMAGE true` (CLI) | {med['bare_cli_s']:.3f} |
| the same through the docker SDK | {med['bare_sdk_s']:.3f} |
| `run_trial` of a no-op agent (`true`), sandbox docker | {med['trial_s']:.3f} |
| — of which staging / agent / grading | {parts} |

**trial ÷ docker run = {result['ratio_trial_over_docker_run']:.2f}** (target ≤ {result['target']}: {ok} it);
trial ÷ SDK run = {result['ratio_trial_over_sdk_run']:.2f}.

The trial includes what a bare run does not: fresh trial folders, the outside validation server and the
shim inside the container, limits, mounts and labels, log streaming into agent.log, grading the (absent)
submission outside, and result.json. Reproduce: `python bench/docker_overhead.py --reps {args.reps}`.
"""
    out.with_suffix(".md").write_text(md)
    print(json.dumps({k: result[k] for k in ("median", "trial_parts_median", "ratio_trial_over_docker_run",
                                             "ratio_trial_over_sdk_run")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
