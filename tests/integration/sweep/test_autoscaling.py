"""The cluster path with Ray's real autoscaler: `configs/cluster/fake_multinode.yaml` brought up with
`ray start --head --autoscaling-config` and RAY_FAKE_CLUSTER=1 (Ray's fake_multinode provider: each node
the autoscaler adds is a raylet started as a local process, the stand-in for a cloud instance; its GPU
is a fake one). A sweep of CPU-only and one-GPU trials (the dummy agent under bwrap) is run against it
twice: by a driver on the head with `--address auto`, and as a Ray job (`ray job submit`). Shown: the
autoscaler adds nodes of the right type as trials wait (CPU-only trials on `cpu_2` nodes, GPU trials on
the `gpu_1` node), every trial is recorded once, and the idle nodes are removed afterwards.

Also here, on clusters without an autoscaler: `--address auto` prints what it joined, and a tier no node
can hold is an error at once, not a wait for ever; and the local dashboard when `ray.dashboard=true`.

The cluster is stopped by its own processes (those naming its temporary folder), never `ray stop`, which
would stop every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import ROOT

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
TIERS = {"cpu": {"cpus": 1, "memory_gb": 0.5, "gpus": 0, "time_limit": 60},
         "gpu": {"cpus": 1, "memory_gb": 0.5, "gpus": 1, "time_limit": 60}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(marker: str) -> None:
    """Stops the processes of one test cluster: those whose command line names its folder."""
    procs = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid != os.getpid() and any(marker in part for part in proc.info["cmdline"] or []):
                procs.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


class Watcher(threading.Thread):
    """Polls the cluster's node table (from this test process, a Ray client of the cluster) and keeps when
    each node was first seen alive and when it was seen dead."""

    def __init__(self):
        super().__init__(daemon=True)
        self.up: dict = {}
        self.down: dict = {}
        self.kind: dict = {}
        self.stop = threading.Event()

    def run(self):
        import ray

        while not self.stop.is_set():
            try:
                nodes = ray.nodes()
            except Exception:
                nodes = []
            now = time.monotonic()
            for node in nodes:
                nid, res = node["NodeID"], node.get("Resources", {})
                if node.get("Alive") and nid not in self.up:
                    self.up[nid] = now
                    self.kind[nid] = "gpu" if res.get("GPU") else ("cpu" if res.get("CPU") else "head")
                if not node.get("Alive") and nid in self.up and nid not in self.down:
                    self.down[nid] = now
            time.sleep(0.5)

    def workers(self, kind: str | None = None) -> list:
        return [n for n, k in self.kind.items() if k != "head" and (kind is None or k == kind)]


@pytest.fixture(scope="module")
def fake_cluster(tmp_path_factory):
    """Ray's fake_multinode cluster from configs/cluster/fake_multinode.yaml on a port of its own."""
    folder = Path(f"/tmp/mlfm-{uuid.uuid4().hex[:8]}")  # short: Ray's socket paths must stay under 107 chars
    folder.mkdir()
    from ray._private.services import get_node_ip_address

    address = f"{get_node_ip_address()}:{_free_port()}"
    dashboard = _free_port()
    config = yaml.safe_load((ROOT / "configs" / "cluster" / "fake_multinode.yaml").read_text())
    config["provider"]["gcs_address"] = address
    (folder / "cluster.yaml").write_text(yaml.safe_dump(config))
    cache = tmp_path_factory.mktemp("cache")
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
           "MLERAY_CACHE_DIR": str(cache), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]).rstrip(":")}
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    watcher = Watcher()
    import ray

    try:
        subprocess.run([RAY, "start", "--head", f"--port={address.rsplit(':', 1)[1]}", "--num-cpus=0",
                        f"--temp-dir={folder}/ray", f"--autoscaling-config={folder}/cluster.yaml",
                        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                        # the job server talks to the head's agent: not on Ray's fixed default port, which
                        # another Ray on this machine may hold
                        f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=180)
        # The head requires Ray's token (~/.ray/auth_token); a client given an explicit address sends it
        # only in token mode, as the sweep's own `--address auto` does.
        from ray._private.authentication import authentication_token_setup as auth

        saved_mode = os.environ.get("RAY_AUTH_MODE")
        auth._enable_token_auth()  # RAY_AUTH_MODE=token for this process, and Ray's cached config refreshed
        ray.init(address=address, log_to_driver=False)
        watcher.start()
        yield {"address": address, "dashboard": f"http://127.0.0.1:{dashboard}", "env": env, "watcher": watcher,
               "start_s": time.monotonic() - started, "logs": folder / "ray" / "session_latest" / "logs"}
    finally:
        watcher.stop.set()
        ray.shutdown()
        _stop(str(folder))
        shutil.rmtree(folder, ignore_errors=True)
        if "saved_mode" in locals():
            os.environ.pop("RAY_AUTH_MODE") if saved_mode is None else os.environ.update(RAY_AUTH_MODE=saved_mode)
            auth.Config.initialize("")


def _sweep_config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "storage": str(tmp_path / "runs"), "agents": ["dummy"],
                                    "competitions": ["titanic"], "seeds": 3, "tiers": TIERS, "sandbox": "bwrap",
                                    "retries": 1, "report": False}))
    return path


def _monitor_tail(cluster) -> str:
    """The end of the autoscaler's log: what it launched or failed to."""
    path = cluster["logs"] / "monitor.log"
    return path.read_text(errors="replace")[-3000:] if path.is_file() else "(no monitor.log)"


def _run(cluster, command: list, env: dict) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        pytest.fail(f"the sweep did not finish in 300 s:\n{out[-2000:]}\nmonitor.log:\n{_monitor_tail(cluster)}")


def _records(tmp_path: Path, name: str) -> list:
    lines = (tmp_path / "runs" / name / "trials.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _check_sweep(cluster, tmp_path: Path, name: str, t0: float) -> dict:
    """One record per trial, each tier on its node type; returns the measured figures."""
    watcher = cluster["watcher"]
    records = _records(tmp_path, name)
    ids = Counter(r["trial_id"] for r in records)
    assert len(ids) == 6 and set(ids.values()) == {1}, ids  # 2 tiers x 3 seeds, each recorded once
    assert {r["status"] for r in records} == {"graded"}, [(r["trial_id"], r["reason"]) for r in records]
    for record in records:
        kind = watcher.kind.get(record["node_id"])
        assert kind == record["tier"], (record["trial_id"], record["node_id"], kind)  # cpu on cpu_2, gpu on gpu_1
        assert bool(record["gpu_ids"]) == (record["tier"] == "gpu")
    used = {r["node_id"] for r in records}
    first_up = min(watcher.up[n] for n in used) - t0
    per_node = Counter(r["node_id"] for r in records)
    # Scale-down: every worker node the sweep used is removed once idle (idle_timeout_minutes 0.1).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(n in watcher.down for n in used):
        time.sleep(1)
    assert all(n in watcher.down for n in used), {n: n in watcher.down for n in used}
    return {"first_node_s": round(first_up, 1), "nodes": dict(Counter(watcher.kind[n] for n in used)),
            "trials_per_node": sorted(per_node.values()),
        "idle_removed_s": round(max(watcher.down[n] for n in used) - max(watcher.up[n] for n in used), 1)}


def test_sweep_on_the_head_scales_up_by_tier_and_down(fake_cluster, tmp_path, bwrap_path):
    watcher = fake_cluster["watcher"]
    assert watcher.workers() == [] or all(n in watcher.down for n in watcher.workers())  # min_workers 0
    env = {**fake_cluster["env"], "RAY_ADDRESS": fake_cluster["address"]}
    t0 = time.monotonic()
    done = _run(fake_cluster, [sys.executable, "-m", "mleray.sweep", "--config", str(_sweep_config(tmp_path, "head")),
                               "--address", "auto"], env)
    wall = time.monotonic() - t0
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    joined = [line for line in done.stdout.splitlines() if "joined the Ray cluster at" in line]
    assert joined and fake_cluster["address"] in joined[0] and "1 node, 0 CPU, 0 GPU" in joined[0], joined
    assert "warning" in done.stdout and "autoscaler adds such a node" in done.stdout  # the tiers wait, warned
    figures = _check_sweep(fake_cluster, tmp_path, "head", t0)
    figures["sweep_wall_s"] = round(wall, 1)
    figures["cluster_start_s"] = round(fake_cluster["start_s"], 1)
    print("autoscaling (driver on the head):", json.dumps(figures))
    assert figures["nodes"].get("cpu", 0) >= 1 and figures["nodes"].get("gpu") == 1


def test_sweep_as_a_ray_job_scales_up_again(fake_cluster, tmp_path, bwrap_path):
    watcher = fake_cluster["watcher"]
    before = set(watcher.workers())
    config = _sweep_config(tmp_path, "job")
    env = {**fake_cluster["env"], "RAY_AUTH_MODE": "token"}  # the job client sends the cluster's token
    t0 = time.monotonic()
    done = _run(fake_cluster, [RAY, "job", "submit", "--address", fake_cluster["dashboard"], "--", sys.executable,
                               "-m", "mleray.sweep", "--config", str(config), "ray.address=auto"], env)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "succeeded" in done.stdout.lower(), done.stdout[-3000:]
    figures = _check_sweep(fake_cluster, tmp_path, "job", t0)
    used = {r["node_id"] for r in _records(tmp_path, "job")}
    assert not used & before  # the first sweep's nodes were removed: these were added for this one
    print("autoscaling (ray job submit):", json.dumps(figures))


def test_no_autoscaler_a_tier_no_node_holds_is_an_error(tmp_path, bwrap_path):
    """A plain `ray start` cluster (Ray's read-only monitor, no autoscaler): a GPU tier on CPU-only nodes
    stops the sweep at once with the tier named, after the joined cluster is printed."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    address = cluster.address
    try:
        config = _sweep_config(tmp_path, "fixed")
        env = {**os.environ, "RAY_ADDRESS": address}
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "mleray.sweep", "--config", str(config), "--address", "auto"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        took = time.monotonic() - t0
    finally:
        cluster.shutdown()
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    assert f"joined the Ray cluster at {address}: 1 node, 1 CPU, 0 GPU" in done.stdout
    assert "tier 'gpu' asks for 1 CPU, 1 GPU" in done.stderr and "no autoscaler" in done.stderr
    assert "tier 'cpu'" not in done.stderr
    assert not (tmp_path / "runs" / "fixed" / "trials.jsonl").exists() or not _records(tmp_path, "fixed")
    assert took < 120


DASHBOARD_PROBE = """
import contextlib, io, time, urllib.error, urllib.request
from mleray.config import load_sweep
from mleray.sweep import driver
out = io.StringIO()
with contextlib.redirect_stdout(out):
    driver.connect(load_sweep(overrides=["ray.dashboard=true", "ray.num_cpus=1"]))
text = out.getvalue()
print(text)
url = text.split("Ray dashboard at ", 1)[1].split()[0]
for _ in range(60):
    try:
        print("STATUS", urllib.request.urlopen(url, timeout=5).status)
        break
    except urllib.error.HTTPError as err:  # it answered: the token check may refuse a bare request
        print("STATUS", err.code)
        break
    except OSError:
        time.sleep(1)
"""


def test_local_dashboard_on_request():
    """ray.dashboard=true: the local Ray's dashboard answers on localhost, and the driver says where (in a
    process of its own: this module's cluster holds this process's Ray connection)."""
    done = subprocess.run([sys.executable, "-c", DASHBOARD_PROBE], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert done.returncode == 0, done.stderr[-2000:]
    line = next((line for line in done.stdout.splitlines() if "Ray dashboard at" in line), "")
    assert "Ray dashboard at http://127.0.0.1:" in line, done.stdout[-2000:]
    assert "RAY_AUTH_MODE=token ray status --address" in done.stdout
    status = [line for line in done.stdout.splitlines() if line.startswith("STATUS ")]
    assert status and status[0].split()[1] in ("200", "401", "403"), done.stdout[-2000:]
