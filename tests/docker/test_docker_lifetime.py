"""Containers never outlive their trial, reaping touches only its own sweep, and the record says what
really happened (killed from outside, the main process or a child killed for memory), against the real
engine and the offline base image."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

from helpers import make_spec

from mleray.sandbox.docker import DockerSandbox, container_kwargs
from mleray.sandbox.docker.reaper import overdue, reap_overdue
from mleray.sandbox.docker.sandbox import prepare_host
from mleray.sandbox.docker.spec import LABEL_DEADLINE, limit_command
from mleray.sweep.trials import sweep_id

IGNORES_TERM = ["sh", "-c", "trap '' TERM; echo started; sleep 1000"]


def running(client, container_id: str) -> bool:
    try:
        return client.containers.get(container_id).status in ("created", "running")
    except Exception:
        return False


def finish(spec, timeout: float, grace: float = 2.0, during=None):
    """Starts, (runs `during(box)` in a thread), waits; returns (exit info, lines, isolation, box)."""
    box = DockerSandbox(spec, grace_period=grace)
    box.start()
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(box.logs()))
    reader.start()
    if during:
        threading.Thread(target=during, args=(box,), daemon=True).start()
    try:
        info = box.wait(timeout)
        reader.join(30)
        return info, lines, box.isolation(), box
    finally:
        box.kill()


def test_sweep_id_is_name_plus_location(tmp_path):
    a, b = sweep_id(tmp_path / "a" / "same", "same"), sweep_id(tmp_path / "b" / "same", "same")
    assert a != b and a.startswith("same-") and b.startswith("same-") and len(a) == len("same-") + 8
    assert sweep_id(str(tmp_path / "a" / ".." / "a" / "same"), "same") == a  # resolved: one id per folder
    assert sweep_id("s3://bucket/runs/same?region=x", "same") == sweep_id("s3://bucket/runs/same", "same")
    assert sweep_id("s3://bucket/runs/same", "same") != sweep_id("s3://other/runs/same", "same")


def test_reap_leaves_a_same_named_sweep_on_another_path_alone(docker_client, base_image, trial_dirs, tmp_path):
    ids = [sweep_id(tmp_path / where / "same", "same") for where in ("a", "b")]
    # the same sweep name, the same trial id and attempt: only the storage path differs
    boxes = [DockerSandbox(make_spec(trial_dirs, ["sleep", "60"], sweep="same", sweep_id=i, trial_id="t-same"))
             for i in ids]
    for box in boxes:
        box.start()
    try:
        first, second = (box.container.id for box in boxes)
        assert running(docker_client, first) and running(docker_client, second)  # no name clash either
        assert DockerSandbox.reap(ids[0]) == 1
        assert not running(docker_client, first)
        assert running(docker_client, second), "reaping sweep a killed sweep b's running container"
        assert docker_client.containers.get(second).labels["mleray.sweep_id"] == ids[1]
        assert DockerSandbox.reap(ids[1]) == 1 and DockerSandbox.reap(ids[1]) == 0
    finally:
        for box in boxes:
            box.kill()


DRIVER = """
import json, sys
from pathlib import Path
from mleray.sandbox.base import SandboxSpec
from mleray.sandbox.docker import DockerSandbox
args = json.loads(sys.argv[1])
spec = SandboxSpec(sweep="lifetime", sweep_id=args["sweep_id"], trial_id="t-driver", attempt=0,
                   command=args["command"], data_dir=Path(args["public"]), instructions=Path(args["instructions"]),
                   submission_dir=Path(args["trial"]) / "submission", code_dir=Path(args["trial"]) / "code",
                   logs_dir=Path(args["trial"]) / "logs", image=args["image"], memory_gb=0.5, pids=64,
                   time_limit=args["limit"])
box = DockerSandbox(spec, grace_period=args["grace"])
box.start()
print(box.container.id, flush=True)
box.wait(args["limit"])
"""


def test_a_sigkilled_driver_leaves_no_container_past_limit_plus_grace(docker_client, base_image, trial_dirs, tmp_path):
    limit, grace = 3.0, 2.0
    this = sweep_id(tmp_path / "lifetime", "lifetime")
    args = {"sweep_id": this, "command": IGNORES_TERM, "public": str(trial_dirs["public"]), "limit": limit,
            "instructions": str(trial_dirs["instructions"]), "trial": str(trial_dirs["trial"]), "image": base_image,
            "grace": grace}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(args)], stdout=subprocess.PIPE, text=True)
    try:
        container_id = driver.stdout.readline().strip()
        started = time.monotonic()
        assert container_id, "the driver started no container"
        time.sleep(1.0)  # before the driver's own time limit: it never sends SIGTERM
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        while running(docker_client, container_id) and time.monotonic() - started < limit + grace + 10:
            time.sleep(0.25)
        alive_for = time.monotonic() - started
        assert not running(docker_client, container_id), f"still running {alive_for:.1f} s after its start"
        # the in-container limit: SIGTERM (ignored) at limit + grace, SIGKILL grace later
        assert limit + grace <= alive_for <= limit + 2 * grace + 3, alive_for
        container = docker_client.containers.get(container_id)
        assert container.attrs["State"]["ExitCode"] == 137
        # the node-side reaper removes it once overdue, and not before
        labels = container.labels
        deadline = float(labels[LABEL_DEADLINE])
        assert not overdue(labels, time.time()) and overdue(labels, deadline + 2 * grace + 31)
    finally:
        if driver.poll() is None:
            driver.kill()
        DockerSandbox.reap(this)


def test_reaper_removes_overdue_containers_only(docker_client, base_image, trial_dirs, tmp_path):
    this = sweep_id(tmp_path / "reaper", "reaper")
    old = make_spec(trial_dirs, ["sleep", "60"], sweep_id=this, time_limit=5.0)
    fresh = make_spec(trial_dirs, ["sleep", "60"], sweep_id=this, time_limit=5.0)
    prepare_host(old)
    made = [docker_client.containers.run(**container_kwargs(old, 2.0, started=time.time() - 3600)),
            docker_client.containers.run(**container_kwargs(fresh, 2.0))]
    try:
        assert reap_overdue() >= 1
        assert not running(docker_client, made[0].id) and running(docker_client, made[1].id)
        out = subprocess.run([sys.executable, "-m", "mleray.sandbox.docker.reaper"], capture_output=True, text=True)
        assert out.returncode == 0 and "overdue container(s)" in out.stdout, out
        assert running(docker_client, made[1].id)
    finally:
        DockerSandbox.reap(this)


def test_outside_sigterm_reaches_the_agent_through_the_inner_limit(base_image, trial_dirs):
    script = "trap 'echo got-term; exit 3' TERM; sleep 100 & wait"
    info, lines, iso, _ = finish(make_spec(trial_dirs, ["sh", "-c", script], time_limit=2.0), 2.0, grace=5.0)
    assert info.timed_out and info.exit_code == 3 and lines == ["got-term"], (info, lines)
    assert not info.killed_externally
    assert iso["time_limit_inside"].startswith("the container stops itself: SIGTERM at 7 s"), iso


def test_watchdog_without_timeout_in_the_image(docker_client, base_image, trial_dirs):
    """An image without GNU timeout: the shell watchdog stops a SIGTERM-ignoring agent, and forwards an
    outside SIGTERM to one that handles it."""
    kwargs = container_kwargs(make_spec(trial_dirs, ["true"]))
    prepare_host(make_spec(trial_dirs, ["true"]))
    for command, limit, check in (
        (IGNORES_TERM, 2, lambda c, t: c.attrs["State"]["ExitCode"] == 137 and 2 <= t <= 2 + 2 + 3),
        (["sh", "-c", "trap 'echo got-term; exit 5' TERM; echo ready; sleep 100 & wait"], 60,
         lambda c, t: c.attrs["State"]["ExitCode"] == 5 and b"got-term" in c.logs() and t < 10),
    ):
        kwargs.update(name=f"mleray-watchdog-{uuid.uuid4().hex[:8]}",
                      command=limit_command(command, limit, 2, probe="no-such-timeout"))
        container = docker_client.containers.run(**kwargs)
        try:
            t0 = time.monotonic()
            if limit == 60:
                while b"ready" not in container.logs() and time.monotonic() - t0 < 20:
                    time.sleep(0.1)  # the agent's trap is set
                container.kill(signal="SIGTERM")
            container.wait(timeout=30)
            container.reload()
            assert check(container, time.monotonic() - t0), (container.attrs["State"], container.logs())
        finally:
            container.remove(force=True)


def test_docker_kill_from_outside_is_killed_externally(docker_client, base_image, trial_dirs):
    def outsider(box):
        time.sleep(1.5)
        docker_client.containers.get(box.container.id).kill()  # someone else's `docker kill`

    info, _, _, _ = finish(make_spec(trial_dirs, ["sleep", "60"]), 60, during=outsider)
    assert info.killed_externally and not info.oom_killed and not info.timed_out, info
    assert info.exit_code == 137 and "killed externally" in info.reason and "signal 9" in info.reason, info


def test_docker_rm_from_outside_is_killed_externally(docker_client, base_image, trial_dirs):
    def outsider(box):
        time.sleep(1.5)
        docker_client.api.remove_container(box.container.id, force=True)

    info, _, _, _ = finish(make_spec(trial_dirs, ["sleep", "60"]), 60, during=outsider)
    assert info.killed_externally and "externally" in info.reason, info  # by its kill, or by its removal


def test_own_exit_and_time_limit_are_not_external(base_image, trial_dirs):
    info, _, _, _ = finish(make_spec(trial_dirs, ["sh", "-c", "exit 7"]), 30)
    assert info.exit_code == 7 and not info.killed_externally and info.reason == "exit 7", info
    info, _, _, _ = finish(make_spec(trial_dirs, IGNORES_TERM, time_limit=2.0), 2.0, grace=1.0)
    assert info.timed_out and not info.killed_externally and info.exit_code == 137, info


HOG = "python3 -c 'x = bytearray(600 * 2**20)'"


def test_main_process_killed_for_memory_is_oom_killed(base_image, trial_dirs):
    info, _, _, _ = finish(make_spec(trial_dirs, ["python3", "-c", "x = bytearray(600 * 2**20)"], memory_gb=0.25), 60)
    assert info.oom_killed and not info.child_oom_killed and not info.killed_externally, info
    assert info.exit_code == 137 and "main process" in info.reason, info


def test_child_killed_for_memory_is_child_oom_killed(base_image, trial_dirs):
    script = f"sleep 1.5; {HOG}; echo child-rc $?; sleep 2; echo main-goes-on"
    info, lines, _, box = finish(make_spec(trial_dirs, ["sh", "-c", script], memory_gb=0.25), 60)
    assert info.exit_code == 0 and info.child_oom_killed and not info.oom_killed, (info, lines)
    assert "child-rc 137" in lines and lines[-1] == "main-goes-on", lines
    assert "a child process was killed for memory" in info.reason, info
    if os.path.isdir("/sys/fs/cgroup"):  # the host sees the container's cgroup: its count is read too
        assert box._watch.oom_kills >= 1 and "OOM kill(s) in the container's cgroup" in info.reason, info


def test_isolation_is_measured(docker_client, base_image, trial_dirs):
    spec = make_spec(trial_dirs, ["sleep", "2"], pids=77, memory_gb=0.5, cpus=1.5, time_limit=30.0)
    info, _, iso, box = finish(spec, 30)
    assert info.exit_code == 0
    assert iso["pids"].startswith("pids_limit=77") and iso["cpu"].startswith("nano_cpus=1500000000"), iso
    assert iso["memory"].startswith("0.5 GiB, swap included"), iso
    assert iso["network"] == "none (loopback only)" and iso["user"] == "uid 1000", iso
    assert iso["capabilities"] == "all dropped" and iso["no_new_privileges"] == "set", iso
    assert iso["env"].startswith("declared only"), iso
    assert iso["engine_log"] == "json-file, max-size 10m x 3 files", iso
    driver, layer = docker_client.info()["Driver"], iso["layer_disk"]
    # bounded by the engine, or (where it cannot) polled by the runner, naming why the engine cannot
    assert layer.startswith("storage_opt size=") or (layer.startswith("its upper folder polled by the runner")
                                                     and "not enforced: " in layer and driver in layer), iso
    if os.path.isdir("/sys/fs/cgroup/pids"):  # cgroup v1 on this host: the kernel's own numbers
        assert iso["pids"] == "pids_limit=77 (pids.max=77)", iso


def test_engine_log_is_capped(docker_client, base_image, trial_dirs):
    # 15 MB of output: the engine keeps at most 10 MB per file, rotating
    script = "import sys\nfor _ in range(15000): sys.stdout.write('x' * 1000 + '\\n')\n"
    box = DockerSandbox(make_spec(trial_dirs, ["python3", "-c", script]))
    box.start()
    try:
        box.wait(60)
        attrs = docker_client.api.inspect_container(box.container.id)
        assert attrs["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
        path = attrs["LogPath"]
        if os.path.exists(path):  # the engine runs on this host
            assert os.path.getsize(path) <= 10.5 * 2**20 and os.path.exists(path + ".1")
    finally:
        box.kill()


def test_sigkilled_sweep_driver_leaves_no_container_past_limit_plus_grace(docker_client, base_image, tmp_path):
    """The whole sweep command (Ray, its actor, the runner), SIGKILLed with its process group while its
    agent ignores SIGTERM: its container still ends by limit + grace + 10 s."""
    limit, grace = 3, 2
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "stubborn.yaml").write_text(f"image: {base_image}\ncommand: [sh, -c, \"trap '' TERM; sleep 1000\"]\n")
    storage = tmp_path / "runs"
    this = sweep_id(storage / "stubborn", "stubborn")
    driver = subprocess.Popen(
        [sys.executable, "-m", "mleray.sweep", "name=stubborn", f"storage={storage}", "competitions=[titanic]",
         "agents=[stubborn]", "seeds=1", "sandbox=docker", "report=false", "tiers.cpu.memory_gb=1",
         f"tiers.cpu.time_limit={limit}", f"grace_period={grace}", "ray.num_cpus=2"],
        env={**os.environ, "MLERAY_AGENTS_DIR": str(agents)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        found, deadline = [], time.monotonic() + 120
        while not found and time.monotonic() < deadline and driver.poll() is None:
            found = docker_client.containers.list(filters={"label": f"mleray.sweep_id={this}"})
            time.sleep(0.1)
        assert found, "the sweep started no container"
        started = time.monotonic()
        os.killpg(driver.pid, signal.SIGKILL)  # driver, Ray and the trial's actor: nobody is left to stop it
        driver.wait(30)
        while running(docker_client, found[0].id) and time.monotonic() - started < limit + grace + 10:
            time.sleep(0.25)
        assert not running(docker_client, found[0].id), f"alive {time.monotonic() - started:.1f} s after the kill"
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        DockerSandbox.reap(this)
