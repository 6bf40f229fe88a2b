"""The outside validation server over a unix socket, and the inside shim relaying localhost:5000 to it
(run here on the host; tests/docker/test_docker_sandbox.py runs them inside containers)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_spec

from mleray.sandbox.validation import (
    GRADER_ERROR,
    INSIDE_DIR,
    ValidationServer,
    answer,
    inside_mounts,
    socket_path_for,
    wrap_command,
)

SHIM = INSIDE_DIR / "validate_shim.py"


def validator(path: Path):
    text = path.read_text()
    if "boom" in text:
        raise RuntimeError("validator crashed")
    if not text.startswith("id,y"):
        return False, "the header must be id,y"
    return True, "fine"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def request(sock_path, method, path, body=None, headers=None):
    conn = UnixHTTPConnection(str(sock_path))
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def multipart(content: bytes, field="file"):
    boundary = "xyzBOUNDARYxyz"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"s.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture
def shim(tmp_path):
    """Starts the shim (daemonized, like inside a sandbox) on a free port; kills it afterwards."""
    pids = []

    def start(sock):
        port = free_port()
        pidfile = tmp_path / f"shim-{port}.pid"
        # returns once the port is bound: the agent can validate right away
        subprocess.run([sys.executable, str(SHIM), "serve", "--socket", str(sock), "--port", str(port),
                        "--pidfile", str(pidfile)], check=True, timeout=20)
        pids.append(int(pidfile.read_text()))
        return port

    yield start
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_answers_valid_invalid_and_errors(tmp_path):
    sock = socket_path_for(tmp_path / "trial")
    with ValidationServer(validator, sock) as server:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666  # the agent's uid may connect
        assert request(sock, "POST", "/validate", *multipart(b"id,y\n1,2\n")) == (
            200, {"result": "Submission is valid.", "valid": True})
        status, body = request(sock, "POST", "/validate", *multipart(b"a,b\n1,2\n"))
        assert (status, body) == (
            200, {"result": f"Submission invalid! {GRADER_ERROR}\nthe header must be id,y", "valid": False})
        assert request(sock, "POST", "/validate", b"id,y\n", {"Content-Type": "text/csv"})[1]["valid"] is True
        status, body = request(sock, "POST", "/validate", *multipart(b"boom"))
        assert status == 500 and body["error"] == "An unexpected error occurred."
        assert request(sock, "GET", "/health") == (200, {"status": "running"})
        assert request(sock, "POST", "/grade", b"x")[0] == 404
        assert request(sock, "POST", "/validate", b"")[0] == 400
        assert server.requests == 3
    assert not sock.exists()


def test_answer_never_carries_a_score():
    assert answer(True, "score 0.93") == {"result": "Submission is valid.", "valid": True}
    assert answer(False, "Submission invalid! bad rows") == {"result": "Submission invalid! bad rows", "valid": False}
    assert answer(False, "Submission file x.csv does not exist.") == {
        "result": "Submission invalid! Submission file x.csv does not exist.", "valid": False}


def test_long_socket_path(tmp_path, shim):
    deep = tmp_path / ("d" * 120)
    sock = socket_path_for(deep)
    assert len(str(sock)) > 108
    with ValidationServer(validator, sock):
        port = shim(sock)
        out = subprocess.run(["curl", "-s", "-X", "POST", "-F", f"file=@{_csv(tmp_path, 'id,y')}",
                              f"http://127.0.0.1:{port}/validate"], capture_output=True, text=True, timeout=20)
        assert json.loads(out.stdout)["valid"] is True


def _csv(folder: Path, header: str) -> Path:
    path = folder / f"{header.replace(',', '_')}.csv"
    path.write_text(header + "\n1,2\n")
    return path


def test_shim_relays_and_post_fallback(tmp_path, shim):
    sock = socket_path_for(tmp_path / "trial")
    with ValidationServer(validator, sock):
        port = shim(sock)
        url = f"http://127.0.0.1:{port}/validate"
        good, bad = _csv(tmp_path, "id,y"), _csv(tmp_path, "a,b")
        out = subprocess.run([sys.executable, str(SHIM), "post", str(bad), url],
                             capture_output=True, text=True, timeout=20)
        assert json.loads(out.stdout) == {
            "result": f"Submission invalid! {GRADER_ERROR}\nthe header must be id,y", "valid": False}
        env = {**os.environ, "MLERAY_VALIDATE_URL": url}
        out = subprocess.run(["sh", str(INSIDE_DIR / "validate_submission.sh"), str(good)],
                             capture_output=True, text=True, env=env, timeout=20)
        assert json.loads(out.stdout) == {"result": "Submission is valid.", "valid": True}
        out = subprocess.run(["sh", str(INSIDE_DIR / "validate_submission.sh"), str(tmp_path / "nope.csv")],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 1 and "does not exist" in out.stdout
    # the server is gone: the shim answers 503 with a reason instead of hanging
    out = subprocess.run([sys.executable, str(SHIM), "post", str(good), url],
                         capture_output=True, text=True, timeout=20)
    assert "not reachable" in out.stdout


def test_wrap_command_and_mounts(trial_dirs, tmp_path):
    cmd = wrap_command(["python3", "/home/agent/agent.py", "--x", "a b"])
    assert cmd[:2] == ["/bin/sh", "-c"] and cmd[-4:] == ["python3", "/home/agent/agent.py", "--x", "a b"]
    assert wrap_command(cmd) == cmd  # idempotent
    out = subprocess.run(wrap_command(["sh", "-c", 'echo "$1"', "x", "a b"]), capture_output=True, text=True)
    assert out.stdout == "a b\n"  # arguments pass through unchanged; no socket: no shim
    spec = make_spec(trial_dirs, ["true"])
    assert {c for _, c, _ in inside_mounts(spec)} == {"/home/validate_submission.sh"}
    spec = make_spec(trial_dirs, ["true"], validate_socket=socket_path_for(tmp_path / "t"))
    mounts = {c: (h, m) for h, c, m in inside_mounts(spec)}
    assert mounts["/home/.mleray"] == (tmp_path / "t" / ".validate", "ro")
