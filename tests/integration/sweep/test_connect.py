"""ray.address: a cluster that cannot be reached is a one-line error within seconds (exit 2 from the
command), not minutes of Ray's retries; a running cluster is joined as before."""

import socket
import subprocess
import sys
import time

import pytest
import ray
from ray._private import services

from mleray.config import ConfigError, load_sweep
from mleray.sweep import driver as sweep

HINT = "; start it with ray start --head, or drop ray.address for a local Ray"


def _connect(address: str) -> tuple:
    """(the error's message, seconds connect took) for an address that must fail."""
    assert not ray.is_initialized()
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        sweep.connect(load_sweep(overrides=[f"ray.address={address}"]))
    return str(err.value), time.monotonic() - start


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_port_fails_at_once():
    port = _closed_port()
    message, took = _connect(f"127.0.0.1:{port}")
    assert message == f"cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused" + HINT
    assert took < 5


def test_unroutable_address_fails_in_seconds():
    # no answer (or, behind an intercepting proxy, an answer that is not Ray's GCS)
    message, took = _connect("10.255.255.1:6379")
    assert message.startswith("cannot reach the Ray cluster at 10.255.255.1:6379: ") and message.endswith(HINT)
    assert took < 10


def test_auto_without_a_running_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])  # not another test's local Ray
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    message, took = _connect("auto")
    assert message == "cannot reach the Ray cluster at auto: Could not find any running Ray instance" + HINT
    assert took < 5


def test_command_exits_2_with_one_line(tmp_path, bwrap_path):
    command = [sys.executable, "-m", "mleray.sweep", f"storage={tmp_path}", "competitions=[titanic]",
               "agents=[dummy]", "sandbox=bwrap", f"ray.address=127.0.0.1:{_closed_port()}"]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    took = time.monotonic() - start
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("mleray: cannot reach the Ray cluster at 127.0.0.1:")
    assert len(done.stderr.strip().splitlines()) == 1
    assert took < 30  # python, ray's import and the preflight; the probe itself is instant


def test_running_cluster_is_joined():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        sweep.connect(load_sweep(overrides=[f"ray.address={cluster.address}"]))
        assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 1
    finally:
        ray.shutdown()
        cluster.shutdown()
