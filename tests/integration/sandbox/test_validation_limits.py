"""The validation server survives whatever an agent sends, for real over its unix socket: uploads over
the cap are refused unread (413), a request trickled in slowly is cut off (408), a third validation
while two run is answered 429 at once, uploads are validated from a private 0600 file, and a flood of
200 requests from 20 threads leaves the server answering and its memory bounded. The inside shim holds
a chunk, never a request."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mleray.sandbox.validation import INSIDE_DIR, ValidationServer, socket_path_for

SHIM = INSIDE_DIR / "validate_shim.py"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def request(sock_path, method, path, body=None, headers=None, timeout=30):
    conn = UnixHTTPConnection(str(sock_path), timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def multipart(content: bytes):
    boundary = "xyzBOUNDARYxyz"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def raw(sock_path, data: bytes, timeout=10) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    conn.connect(str(sock_path))
    if data:
        conn.sendall(data)
    return conn


def read_all(conn: socket.socket) -> bytes:
    out = b""
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return out
            out += chunk
    except OSError:
        return out


def ok(path: Path):
    return True, "fine"


def test_an_upload_over_the_cap_is_refused_unread_naming_size_and_cap(tmp_path):
    sock = socket_path_for(tmp_path / "trial")
    seen = []
    with ValidationServer(lambda p: seen.append(p) or (True, ""), sock, max_bytes=1000) as server:
        # headers announcing 5 MB, and no body at all: the answer comes without waiting for it
        t0 = time.monotonic()
        conn = raw(sock, b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
                         b"Content-Type: text/csv\r\n\r\n")
        answer = read_all(conn)
        conn.close()
        assert time.monotonic() - t0 < 3.0
        assert answer.startswith(b"HTTP/1.1 413")
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["valid"] is False and "5000000 bytes" in body["result"] and "1000 bytes" in body["result"]
        # announced small, but multipart adds nothing that big: the file inside is over the cap
        status, body = request(sock, "POST", "/validate", *multipart(b"x" * 5000))
        assert status == 413 and "5000 bytes" in body["result"] and "max_submission_mb" in body["result"]
        valid = (200, {"result": "Submission is valid.", "valid": True})
        assert request(sock, "POST", "/validate", *multipart(b"id,y\n1,2\n")) == valid
        assert server.requests == 1 and len(seen) == 1


def test_a_trickled_request_is_cut_off_and_the_server_keeps_answering(tmp_path):
    sock = socket_path_for(tmp_path / "trial")
    with ValidationServer(ok, sock, request_timeout=1.0) as server:
        # the body, a byte every 0.2 s: cut off once the request has taken 1 s
        conn = raw(sock, b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                         b"Content-Type: text/csv\r\n\r\n")
        t0 = time.monotonic()
        answer = b""
        try:
            for _ in range(100):
                conn.sendall(b"a")
                time.sleep(0.2)
        except OSError:  # the server shut the connection
            pass
        answer = read_all(conn)
        conn.close()
        elapsed = time.monotonic() - t0
        assert elapsed < 3.0, elapsed
        assert answer.startswith(b"HTTP/1.1 408") and b"within 1 s" in answer
        # headers that never end: cut off too
        conn = raw(sock, b"POST /validate HTTP/1.1\r\n")
        t0 = time.monotonic()
        try:
            for _ in range(100):
                conn.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.2)
        except OSError:
            pass
        read_all(conn)
        conn.close()
        assert time.monotonic() - t0 < 3.0
        assert server.refused["timed_out"] == 2
        assert request(sock, "GET", "/health") == (200, {"status": "running"})
        assert request(sock, "POST", "/validate", *multipart(b"id,y\n"))[0] == 200


def test_a_third_validation_at_once_gets_429_quickly(tmp_path):
    sock = socket_path_for(tmp_path / "trial")
    inside, release = threading.Semaphore(0), threading.Event()

    def slow(path: Path):
        inside.release()
        release.wait(20)
        return True, ""

    with ValidationServer(slow, sock, max_validations=2) as server:
        with ThreadPoolExecutor(2) as pool:
            running = [pool.submit(request, sock, "POST", "/validate", *multipart(b"id,y\n")) for _ in range(2)]
            assert inside.acquire(timeout=10) and inside.acquire(timeout=10)  # both are validating
            t0 = time.monotonic()
            status, body = request(sock, "POST", "/validate", *multipart(b"id,y\n" * 1000))
            assert time.monotonic() - t0 < 1.0
            assert status == 429 and "2 running" in body["error"]
            release.set()
            assert [f.result(timeout=20)[0] for f in running] == [200, 200]
        assert server.refused["busy"] == 1 and server.requests == 2
        assert request(sock, "POST", "/validate", *multipart(b"id,y\n"))[0] == 200


def test_uploads_are_validated_from_a_private_file(tmp_path):
    sock = socket_path_for(tmp_path / "trial")
    seen = {}

    def look(path: Path):
        seen.update(path=path, mode=stat.S_IMODE(os.stat(path).st_mode),
                    folder=stat.S_IMODE(os.stat(path.parent).st_mode), content=path.read_bytes(),
                    others=sorted(p.name for p in path.parent.iterdir()))
        return True, ""

    with ValidationServer(look, sock):
        content = b"id,y\n" + b"1,2\n" * 300_000  # larger than a chunk: the multipart parse is streamed
        assert request(sock, "POST", "/validate", *multipart(content))[0] == 200
    assert seen["content"] == content and seen["mode"] == 0o600 and seen["folder"] == 0o700
    assert seen["others"] == ["submission.csv"]  # the raw body is gone before the validator runs
    assert sock.parent not in seen["path"].parents and not seen["path"].exists()


# Peak memory is VmHWM (this process's own high-water mark, reset through clear_refs): getrusage's
# ru_maxrss in a child starts at its parent's peak (fork then exec keeps it), so it would hide growth.
def test_multipart_is_parsed_from_disk_whatever_it_repeats(tmp_path):
    """The file part after another field is found; a body repeating the boundary a million times is
    answered at once (at most 16 parts are looked at) with memory a chunk."""
    sock = socket_path_for(tmp_path / "trial")
    seen = []
    with ValidationServer(lambda p: seen.append(p.read_bytes()) or (True, ""), sock) as server:
        boundary = "b"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.csv\"\r\n\r\n"
                f"id,y\n1,2\n\r\n--{boundary}--\r\n").encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        assert request(sock, "POST", "/validate", body, headers)[0] == 200 and seen == [b"id,y\n1,2\n"]
        flood = b"--b\r\n" * 1_000_000  # 5 MB of part starts without headers, then nothing
        t0 = time.monotonic()
        status, answer = request(sock, "POST", "/validate", flood, headers)
        assert status == 400 and "no file" in answer["error"] and time.monotonic() - t0 < 5.0
        assert server.requests == 1


SERVER = """
import json, sys, threading, time
from pathlib import Path
import pandas as pd
from mleray.sandbox.validation import ValidationServer

def validate(path):
    frame = pd.read_csv(path)  # real work, as validate_only does
    time.sleep(0.02)
    return list(frame.columns) == ["id", "y"], "the header must be id,y"

def hwm_kb():
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))

validate(Path(sys.argv[2]))  # pandas' first parse loads what it loads once
with ValidationServer(validate, Path(sys.argv[1])) as server:
    open("/proc/self/clear_refs", "w").write("5")  # the high-water mark starts again from here
    base = hwm_kb()
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps({"base_kb": base, "peak_kb": hwm_kb(),
                      "threads": threading.active_count(), "requests": server.requests,
                      "refused": server.refused}), flush=True)
"""


def test_a_flood_leaves_the_server_answering_with_bounded_memory(tmp_path):
    sock = socket_path_for(tmp_path / "trial")
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(SERVER))
    warm = tmp_path / "warm.csv"
    warm.write_text("id,y\n1,2\n")
    proc = subprocess.Popen([sys.executable, str(script), str(sock), str(warm)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        body = multipart(b"id,y\n" + b"1,2\n" * 50_000)  # ~200 KB each

        def one(_):
            try:
                return request(sock, "POST", "/validate", *body, timeout=60)[0]
            except OSError as err:  # a connection turned away while still sending
                return type(err).__name__

        t0 = time.monotonic()
        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(one, range(200)))
        flood_s = time.monotonic() - t0
        counts = {s: statuses.count(s) for s in set(statuses)}
        assert set(counts) <= {200, 429, "BrokenPipeError", "ConnectionResetError"}, counts
        assert counts.get(200, 0) >= 2 and counts.get(429, 0) >= 1, counts
        t0 = time.monotonic()
        assert request(sock, "GET", "/health", timeout=5) == (200, {"status": "running"})
        assert request(sock, "POST", "/validate", *multipart(b"id,y\n1,2\n"), timeout=5)[0] == 200
        assert time.monotonic() - t0 < 2.0
        out, _ = proc.communicate("done\n", timeout=30)
        stats = json.loads(out.strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    grown_mb = (stats["peak_kb"] - stats["base_kb"]) / 1024
    print(f"flood: {counts} in {flood_s:.1f} s; server peak RSS +{grown_mb:.0f} MB, {stats['threads']} threads left")
    assert grown_mb < 150, stats
    assert stats["threads"] <= 4, stats  # the handlers are gone


def test_the_shim_relays_a_large_upload_in_bounded_memory(tmp_path):
    sock = socket_path_for(tmp_path / "trial")
    sizes = []

    def size(path: Path):
        sizes.append(path.stat().st_size)
        return True, ""

    big = tmp_path / "big.csv"
    with open(big, "wb") as f:
        f.write(b"id,y\n")
        for _ in range(64):
            f.write(b"1,2\n" * (2**20 // 4))  # 64 MB
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pidfile = tmp_path / "shim.pid"
    with ValidationServer(size, sock):
        subprocess.run([sys.executable, str(SHIM), "serve", "--socket", str(sock), "--port", str(port),
                        "--pidfile", str(pidfile)], check=True, timeout=20)
        shim = int(pidfile.read_text())
        try:
            post = subprocess.run([sys.executable, "-c", POST, str(SHIM), str(big), f"http://127.0.0.1:{port}/validate"],
                                  capture_output=True, text=True, timeout=60)
            shim_kb = hwm_kb(shim)
        finally:
            os.kill(shim, 9)
    post_kb = int(post.stderr.strip().splitlines()[-1])
    assert json.loads(post.stdout)["valid"] is True and sizes == [big.stat().st_size]
    print(f"64 MB through the shim: shim peak RSS {shim_kb // 1024} MB, post's {post_kb // 1024} MB")
    assert shim_kb < 40 * 1024 and post_kb < 40 * 1024


POST = """
import runpy, sys
shim = sys.argv[1]
sys.argv = [shim, "post"] + sys.argv[2:]
try:
    runpy.run_path(shim, run_name="__main__")
except SystemExit:
    pass
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")), file=sys.stderr)
"""


def hwm_kb(pid="self") -> int:
    return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmHWM:")))


def test_curl_through_the_shim_large_upload_and_refusal(tmp_path):
    """curl sends `Expect: 100-continue` for a large upload: accepted, the 100 comes and the file is
    validated; refused (over the cap), the 413 comes before the body is sent."""
    sock = socket_path_for(tmp_path / "trial")
    seen = []
    big = tmp_path / "big.csv"
    big.write_bytes(b"id,y\n" + b"1,2\n" * 750_000)  # 3 MB
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pidfile = tmp_path / "shim.pid"
    url = f"http://127.0.0.1:{port}/validate"
    for cap, expected in ((8 * 2**20, 200), (2**20, 413)):
        with ValidationServer(lambda p: seen.append(p.stat().st_size) or (True, ""), sock, max_bytes=cap):
            subprocess.run([sys.executable, str(SHIM), "serve", "--socket", str(sock), "--port", str(port),
                            "--pidfile", str(pidfile)], check=True, timeout=20)
            try:
                t0 = time.monotonic()
                out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", "POST", "-F", f"file=@{big}", url],
                                     capture_output=True, text=True, timeout=30)
                elapsed = time.monotonic() - t0
            finally:
                os.kill(int(pidfile.read_text()), 9)
        body, code = out.stdout.rsplit("\n", 1)
        assert int(code) == expected, out
        assert elapsed < 5.0
        if expected == 200:
            assert json.loads(body)["valid"] is True and seen == [big.stat().st_size]
        else:
            assert "over the submission size limit" in json.loads(body)["result"] and len(seen) == 1


CAPPED_AGENT = """
import shutil, subprocess
shutil.copy("/home/data/sample_submission.csv", "/home/submission/submission.csv")
out = subprocess.run(["sh", "/home/validate_submission.sh", "/home/submission/submission.csv"],
                     capture_output=True, text=True)
print("validate:", out.stdout.strip(), flush=True)
"""


def test_a_trial_applies_its_sweeps_max_submission_mb(tmp_path, monkeypatch, cache_dir, bwrap_path):
    """A real bwrap trial under a 1 KB max_submission_mb: the agent's /validate of its 3 KB submission
    is refused by size, and the record's reason names the size and the cap (the runner passes the
    sweep's setting to the validation server, the snapshots and the grader)."""
    from mleray.config import load_sweep
    from mleray.sweep.trials import TrialJob, expand
    from mleray.trial.runner import run_trial

    agents = tmp_path / "agents"
    (agents / "capped").mkdir(parents=True)
    (agents / "capped" / "agent.py").write_text(textwrap.dedent(CAPPED_AGENT))
    (agents / "capped.yaml").write_text("code: capped\ncommand: [python3, /home/agent/agent.py]\n")
    monkeypatch.setenv("MLERAY_AGENTS_DIR", str(agents))
    cfg = load_sweep(overrides=["agents=[capped]", "competitions=[titanic]", "seeds=1", "snapshot_interval=0.2",
                                "tiers.cpu.time_limit=30", f"max_submission_mb={1024 / 2**20}"])
    spec = expand(cfg, ["titanic"])[0]
    record = run_trial(TrialJob.of(cfg, spec, tmp_path / "sweep", "bwrap"))
    log = (tmp_path / "sweep" / "trials" / spec.trial_id / "agent.log").read_text()
    assert "over the submission size limit" in log and "1024 bytes" in log, log[-2000:]
    assert not record.valid_submission and record.score is None and record.submission_exists
    assert "over the submission size limit" in record.reason and "1024 bytes" in record.reason
    assert record.snapshots == []  # over the cap: never copied out


HOSTILE_AGENT = """
import http.client, json, os, threading
sub = "/home/submission/submission.csv"
with open(sub, "w") as f:  # one 64 MB line: no header, no newline
    block = "x" * (1 << 20)
    for _ in range(64):
        f.write(block)
answers = []
def flood():
    for _ in range(10):
        stage = "connect"
        try:
            conn = http.client.HTTPConnection("127.0.0.1", 5000, timeout=60)
            stage = "send"
            conn.request("POST", "/validate", body=open(sub, "rb"), headers={
                "Content-Type": "text/csv", "Content-Length": str(os.path.getsize(sub))})
            stage = "recv"
            answers.append(conn.getresponse().status)
        except OSError as err:
            answers.append(stage + ":" + type(err).__name__)
threads = [threading.Thread(target=flood) for _ in range(10)]
[t.start() for t in threads]
[t.join() for t in threads]
print("answers:", json.dumps({str(a): answers.count(a) for a in set(answers)}), flush=True)
"""


def test_a_hostile_agents_trial_keeps_a_small_record(tmp_path, monkeypatch, cache_dir, bwrap_path):
    """A real bwrap trial whose agent writes a 64 MB single-line submission and posts it to /validate 100
    times from 10 threads: the validations are answered (invalid, or 429 while two run), the trial's
    record stays under 4 KB with a short reason, and grading takes well under a second. (With a 1 GB
    tier about a third of the uploads are reset mid-send: the agent's own cgroup runs out of socket
    memory. The host side answers the same either way.)"""
    from mleray.config import load_sweep
    from mleray.sweep.trials import TrialJob, expand
    from mleray.trial.runner import run_trial

    agents = tmp_path / "agents"
    (agents / "hostile").mkdir(parents=True)
    (agents / "hostile" / "agent.py").write_text(textwrap.dedent(HOSTILE_AGENT))
    (agents / "hostile.yaml").write_text("code: hostile\ncommand: [python3, /home/agent/agent.py]\n")
    monkeypatch.setenv("MLERAY_AGENTS_DIR", str(agents))
    cfg = load_sweep(overrides=["agents=[hostile]", "competitions=[titanic]", "seeds=1", "snapshot_interval=3600",
                                "tiers.cpu.time_limit=120", "tiers.cpu.memory_gb=4"])
    spec = expand(cfg, ["titanic"])[0]
    record = run_trial(TrialJob.of(cfg, spec, tmp_path / "sweep", "bwrap"))
    log = (tmp_path / "sweep" / "trials" / spec.trial_id / "agent.log").read_text()
    line = next(x for x in log.splitlines() if x.startswith("answers:"))
    answers = json.loads(line.split(":", 1)[1])
    print(f"hostile agent: /validate answers {answers}; record {len(json.dumps(record.to_dict()))} bytes, "
          f"grading {record.grading_s} s; reason: {record.reason}")
    assert sum(answers.values()) == 100 and set(answers) <= {"200", "429"}, answers
    assert answers.get("200", 0) >= 2
    assert not record.valid_submission and "header line is over" in record.reason
    assert len(record.reason) < 1000 and len(json.dumps(record.to_dict(), default=str)) < 4096
    assert record.grading_s < 2.0
