"""The Docker backend against the real engine and the offline base image: isolation, limits, time,
logs, validation from inside, reaping."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time

import pytest
from helpers import make_spec

from mleray.sandbox.base import LINE_CAP_BYTES, SandboxError
from mleray.sandbox.docker import DockerSandbox, container_kwargs, engine
from mleray.sandbox.validation import GRADER_ERROR, ValidationServer, socket_path_for


def run(spec, timeout=60.0, grace=10.0):
    """Starts the sandbox, collects every log line, waits; returns (lines, exit info, seconds)."""
    box = DockerSandbox(spec, grace_period=grace)
    t0 = time.monotonic()
    box.start()
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(box.logs()))
    reader.start()
    try:
        info = box.wait(timeout)
        reader.join(30)
        return lines, info, time.monotonic() - t0
    finally:
        box.kill()


def test_running_container_is_hardened(docker_client, base_image, trial_dirs):
    spec = make_spec(trial_dirs, ["sleep", "60"], cpus=1.5, memory_gb=0.5, pids=100, shm_gb=0.125,
                     agent_code=trial_dirs["public"])
    box = DockerSandbox(spec)
    box.start()
    try:
        attrs = docker_client.containers.get(box.container.id).attrs
        host, config = attrs["HostConfig"], attrs["Config"]
        assert config["User"] == "1000:1000"
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["NetworkMode"] == "none"
        assert not host["Privileged"]
        assert host["NanoCpus"] == 1_500_000_000
        assert host["Memory"] == 512 * 1024**2 == host["MemorySwap"]
        assert host["PidsLimit"] == 100
        assert host["ShmSize"] == 128 * 1024**2
        assert host["Init"] is True
        inherited = docker_client.images.get(attrs["Image"]).labels or {}  # a base image's own labels (mleray.made-of)
        assert config["Labels"] == {**inherited, **spec.labels, "mleray.cpuset": host["CpusetCpus"]}
        assert len(host["CpusetCpus"].split(",")) == 2  # ceil(1.5) cores the agent cannot widen
        assert "COMPETITION_ID=toy" in config["Env"]
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        expect = {"/home/data": False, "/home/instructions.txt": False, "/home/agent": False,
                  "/home/submission": True, "/home/code": True, "/home/logs": True,
                  "/home/validate_submission.sh": False}
        for dest, rw in expect.items():
            assert mounts[dest]["RW"] is rw, dest
        assert str(trial_dirs["private"]) not in {m["Source"] for m in attrs["Mounts"]}
        # and from inside: uid, capabilities, network interfaces
        out = box.container.exec_run(
            ["sh", "-c", "id -u; id -g; grep CapEff /proc/1/status | cut -f2; ls /sys/class/net"],
            user="1000:1000").output.decode().split()
        assert out == ["1000", "1000", "0000000000000000", "lo"], out
    finally:
        box.kill()
    box.kill()  # idempotent
    with pytest.raises(Exception):
        docker_client.containers.get(container_kwargs(spec)["name"])


def test_agent_writes_submission_but_cannot_see_answers(base_image, trial_dirs):
    token = trial_dirs["token"]
    script = (
        "cat /home/data/description.md >/dev/null"
        " && cp /home/data/sample_submission.csv /home/submission/submission.csv"
        " && echo code > /home/code/x.py && echo log > /home/logs/x.log && echo wrote;"
        f" grep -rlsD skip {token} /home /tmp /opt /mnt /srv /root /var /run /etc || echo no-answers;"
        " find / -name 'answers*' -not -path '/proc/*' 2>/dev/null | head -5;"
        " touch /home/data/x 2>/dev/null || echo data-read-only;"
        " echo $COMPETITION_ID"
    )
    lines, info, _ = run(make_spec(trial_dirs, ["sh", "-c", script]), timeout=120)
    assert info.exit_code == 0 and not info.timed_out, (info, lines)
    assert lines == ["wrote", "no-answers", "data-read-only", "toy"], lines
    trial = trial_dirs["trial"]
    assert (trial / "submission" / "submission.csv").read_text() == "id,y\n3,0\n4,0\n"
    assert (trial / "code" / "x.py").is_file() and (trial / "logs" / "x.log").is_file()


def test_description_override(base_image, trial_dirs, tmp_path):
    other = tmp_path / "description_obfuscated.md"
    other.write_text("# Obfuscated\n")
    lines, info, _ = run(make_spec(trial_dirs, ["sh", "-c", "cat /home/data/description.md; ls /home/data"],
                                   description=other))
    assert info.exit_code == 0 and lines[0] == "# Obfuscated" and "train.csv" in lines
    assert (trial_dirs["public"] / "description.md").read_text() == "# A competition\n"


def test_no_network(base_image, trial_dirs):
    code = (
        "import socket\n"
        "for addr in [('1.1.1.1', 80), ('8.8.8.8', 53)]:\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=3); print('connected')\n"
        "    except OSError as e: print('blocked', e.errno)\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 443); print('resolved')\n"
        "except OSError: print('no-dns')\n"
    )
    lines, info, _ = run(make_spec(trial_dirs, ["python3", "-c", code]))
    assert info.exit_code == 0, (info, lines)
    assert lines[:2] == ["blocked 101", "blocked 101"] and lines[2] == "no-dns", lines


def test_network_only_when_asked(trial_dirs):
    assert container_kwargs(make_spec(trial_dirs, ["true"]))["network_mode"] == "none"
    assert container_kwargs(make_spec(trial_dirs, ["true"], network=True))["network_mode"] == "mleray-egress"


WIDEN = ("python3", "-c", "import os, time; os.sched_setaffinity(0, range(os.cpu_count())); "
         "print(sorted(os.sched_getaffinity(0)), flush=True); time.sleep(3)")


def test_affinity_cannot_be_widened_and_trials_spread_over_cores(docker_client, base_image, trial_dirs):
    """Each container gets a cpuset of ceil(cpus) cores (the least taken first): widening its affinity
    to every core reads back its own one, and two trials at once get different cores."""
    if (docker_client.info().get("NCPU") or 1) < 2:
        pytest.skip("needs a machine with two cores or more")
    boxes = [DockerSandbox(make_spec(trial_dirs, WIDEN, trial_id=f"t-aff{i}", cpus=1.0), grace_period=1)
             for i in range(2)]
    try:
        for box in boxes:
            box.start()
        sets = [docker_client.api.inspect_container(b.container.id)["HostConfig"]["CpusetCpus"] for b in boxes]
        outputs = [list(b.logs()) for b in boxes]
        assert all(len(s.split(",")) == 1 for s in sets) and sets[0] != sets[1], sets
        assert [out[0] for out in outputs] == [f"[{s}]" for s in sets], (outputs, sets)
        assert all("cpuset" in b.isolation()["cpu"] for b in boxes)
    finally:
        for box in boxes:
            box.kill()


def _start_and_report(trial_dirs, index, barrier, answers, done):
    """In a process of its own (as a Ray actor is): start a 1-CPU trial when all are ready, say its cores."""
    box = DockerSandbox(make_spec(trial_dirs, ["sleep", "60"], trial_id=f"t-race{index}", cpus=1.0), grace_period=1)
    barrier.wait(60)
    try:
        box.start()
        answers.put(box.container.attrs["HostConfig"]["CpusetCpus"] if box.container.attrs.get("HostConfig")
                    else engine.client().api.inspect_container(box.container.id)["HostConfig"]["CpusetCpus"])
        done.wait(60)
    finally:
        box.kill()


def test_trials_starting_at_once_in_separate_processes_get_different_cores(docker_client, base_image, trial_dirs):
    """Two actors' trials started at the same instant: the choice and the container that shows it taken
    happen under one host-wide lock, so they get different cores (they used to share one)."""
    count = int(docker_client.info().get("NCPU") or 1)
    if count < 2:
        pytest.skip("needs a machine with two cores or more")
    ctx = multiprocessing.get_context("spawn")
    barrier, answers, done = ctx.Barrier(2), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_start_and_report, args=(trial_dirs, i, barrier, answers, done)) for i in range(2)]
    for proc in procs:
        proc.start()
    try:
        sets = [answers.get(timeout=120) for _ in procs]
        assert all(len(s.split(",")) == 1 for s in sets) and sets[0] != sets[1], sets
    finally:
        done.set()
        for proc in procs:
            proc.join(60)


def test_fork_bomb_is_held_by_the_pids_limit(base_image, trial_dirs):
    code = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('fork failed after', n, e.errno, flush=True)\n"
    )
    lines, info, _ = run(make_spec(trial_dirs, ["python3", "-c", code], pids=50), timeout=60, grace=1)
    assert lines and lines[0].startswith("fork failed after"), lines
    forks = int(lines[0].split()[3])
    assert 30 <= forks < 50, lines
    # a bomb without end is stopped at the time limit, and the host is fine
    endless = ("import os, time\nwhile True:\n    try:\n        os.fork()\n"
               "    except OSError:\n        time.sleep(0.01)\n")
    bomb = make_spec(trial_dirs, ["python3", "-c", endless], pids=50)
    lines, info, took = run(bomb, timeout=4, grace=1)
    assert info.timed_out and took < 20, (info, took)


def test_memory_limit_oom_kills(base_image, trial_dirs):
    code = "x = []\nwhile True:\n    x.append(bytearray(64 * 1024 * 1024))\n    print(len(x) * 64, 'MB', flush=True)\n"
    lines, info, _ = run(make_spec(trial_dirs, ["python3", "-c", code], memory_gb=0.25), timeout=60)
    assert info.oom_killed, (info, lines[-3:])
    assert info.exit_code == 137 and not info.timed_out
    assert "out of memory" in info.reason
    assert max(int(line.split()[0]) for line in lines if line.endswith("MB")) <= 256


def test_time_limit_holds(base_image, trial_dirs):
    lines, info, took = run(make_spec(trial_dirs, ["sleep", "600"]), timeout=3, grace=5)
    assert info.timed_out and "time limit" in info.reason
    assert 2.5 < took < 3 + 4, took  # SIGTERM reached the agent: no need for the grace period
    stubborn = make_spec(trial_dirs, ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"])
    lines, info, took = run(stubborn, timeout=3, grace=2)
    assert info.timed_out and lines[:1] == ["ready"]
    assert 4.5 < took < 3 + 2 + 4, took  # killed after the grace period


def test_every_log_line_arrives_in_order(base_image, trial_dirs):
    code = ("import sys\nw = sys.stdout.write\nfor i in range(20000):\n    w('line %d\\n' % i)\n"
            "w('last line without newline')\n")
    lines, info, _ = run(make_spec(trial_dirs, ["python3", "-c", code]), timeout=120)
    assert info.exit_code == 0
    assert lines == [f"line {i}" for i in range(20000)] + ["last line without newline"]


def test_an_over_long_line_costs_the_reader_one_line_cap(base_image, trial_dirs):
    """50 MB without a newline, then two short lines: the reader keeps 64 KiB of it with a note saying how
    much was dropped, and the lines after it arrive (it used to hold the whole line, and lose what came
    after it once the engine's 30 MB log rotated)."""
    code = ("import sys\nw = sys.stdout.buffer.write\nw(b'start\\n')\nfor _ in range(50):\n    w(b'x' * 2**20)\n"
            "w(b'\\nafter 1\\nafter 2\\n')\n")
    lines, info, _ = run(make_spec(trial_dirs, ["python3", "-c", code]), timeout=120)
    assert info.exit_code == 0
    assert lines[-2:] == ["after 1", "after 2"], [line[:80] for line in lines]
    long = [line for line in lines if line.startswith("xxx")]
    assert len(long) <= 1 and len(lines) <= 4
    if long:  # whatever of it the engine still kept after rotating out its oldest entries
        assert long[0].startswith("x" * LINE_CAP_BYTES + " [mleray: line cut, ")


def test_a_log_that_outgrows_the_engines_cap_is_read_without_repeats(base_image, trial_dirs):
    """40 MB of numbered lines as fast as the agent can write them (the engine keeps 30 MB): every line
    the reader yields is one the agent wrote, once, in order, the last one included."""
    code = ("import sys\nw = sys.stdout.write\npad = 'p' * 200\nfor i in range(200000):\n"
            "    w('%d %s\\n' % (i, pad))\nw('end\\n')\n")
    lines, info, _ = run(make_spec(trial_dirs, ["python3", "-c", code]), timeout=180)
    assert info.exit_code == 0
    assert lines[-1] == "end"
    numbers = [int(line.split()[0]) for line in lines[:-1]]
    assert numbers == sorted(set(numbers)), "a line repeated or out of order"
    assert numbers[-1] == 199999 and len(numbers) > 50000


def test_stderr_and_exit_codes(base_image, trial_dirs):
    lines, info, _ = run(make_spec(trial_dirs, ["sh", "-c", "echo out; sleep 0.2; echo err >&2; exit 3"]))
    assert lines == ["out", "err"] and info.exit_code == 3 and info.reason == "exit 3"
    assert not info.timed_out and not info.oom_killed


def test_missing_image_names_the_build_command(docker_client, trial_dirs):
    box = DockerSandbox(make_spec(trial_dirs, ["true"], image="mleray-no-such-image:never"))
    with pytest.raises(SandboxError, match="mleray images build"):
        box.start()
    box.kill()


def _validator(path):
    text = path.read_text()
    if not text.startswith("id,y"):
        return False, "columns must be id,y"
    return True, "ok"


@pytest.fixture(scope="module")
def nocurl_image(docker_client, base_image):
    """The base image without curl: validation must still work through python3."""
    import io

    tag = "mleray-test-nocurl:local"
    dockerfile = f"FROM {base_image}\nUSER root\nRUN rm -f /usr/bin/curl\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, network_mode="none")
    return tag


@pytest.mark.parametrize("image", ["base", "nocurl"])
def test_validation_from_inside(base_image, nocurl_image, trial_dirs, image):
    tag = base_image if image == "base" else nocurl_image
    sock = socket_path_for(trial_dirs["trial"])
    script = (
        "printf 'id,y\\n3,1\\n' > /home/submission/submission.csv; printf 'a,b\\n' > /tmp/bad.csv;"
        " /home/validate_submission.sh /home/submission/submission.csv; echo;"
        " /home/validate_submission.sh /tmp/bad.csv; echo;"
        " python3 -c \"import urllib.request as u; print(u.urlopen(u.Request('http://localhost:5000/validate',"
        " data=open('/tmp/bad.csv','rb').read(), method='POST')).read().decode())\";"
        " command -v curl >/dev/null && curl -s -X POST -F file=@/home/submission/submission.csv"
        " http://localhost:5000/validate; echo"
    )
    with ValidationServer(_validator, sock) as server:
        lines, info, _ = run(make_spec(trial_dirs, ["sh", "-c", script], image=tag, validate_socket=sock))
        assert server.requests == (4 if image == "base" else 3)
    assert info.exit_code == 0, (info, lines)
    answers = [json.loads(line) for line in lines if line.startswith("{")]
    assert answers[0] == {"result": "Submission is valid.", "valid": True}
    assert answers[1] == {"result": f"Submission invalid! {GRADER_ERROR}\ncolumns must be id,y", "valid": False}
    assert answers[2] == answers[1]
    if image == "base":
        assert answers[3] == answers[0]
    for answer in answers:
        assert "score" not in json.dumps(answer).lower()


def test_reap_removes_labelled_containers(docker_client, base_image, trial_dirs):
    boxes = [DockerSandbox(make_spec(trial_dirs, ["sleep", "60"], sweep=sweep))
             for sweep in ("reap-a", "reap-a", "reap-b")]
    for box in boxes:
        box.start()
    try:
        assert DockerSandbox.reap("reap-a") == 2
        left = docker_client.containers.list(all=True, filters={"label": "mleray.sweep=reap-a"})
        assert left == []
        assert len(docker_client.containers.list(all=True, filters={"label": "mleray.sweep=reap-b"})) == 1
        assert DockerSandbox.reap("reap-b") == 1 and DockerSandbox.reap("reap-b") == 0
    finally:
        for box in boxes:
            box.kill()


def test_leftover_with_same_name_is_replaced(docker_client, base_image, trial_dirs):
    spec = make_spec(trial_dirs, ["sleep", "60"], trial_id="same-name")
    first = DockerSandbox(spec)
    first.start()
    second = DockerSandbox(spec)
    second.start()  # a crashed run left a container with this name: replaced, not an error
    try:
        assert docker_client.containers.get(second.container.id).status in ("created", "running")
    finally:
        second.kill()
        first.kill()


def test_environment_states_the_share(trial_dirs):
    env = container_kwargs(make_spec(trial_dirs, ["true"], cpus=1.5, memory_gb=3))["environment"]
    assert env["MLERAY_CPUS"] == "1.5" and env["MLERAY_MEMORY_GB"] == "3"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["COMPETITION_ID"] == "toy"
    env = container_kwargs(make_spec(trial_dirs, ["true"],
                                     env={"COMPETITION_ID": "toy", "OMP_NUM_THREADS": "1"}))["environment"]
    assert env["OMP_NUM_THREADS"] == "1"  # the agent's own env wins
