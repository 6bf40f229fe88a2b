"""Submission validation answered from outside the sandbox (MLE-bench's /validate, without the answers inside).

Outside: `ValidationServer(validate_fn, socket_path)` serves HTTP on a unix socket in a thread.
`validate_fn(path_to_submission_csv) -> (valid, reason)` is bound to the prepared competition by
the caller (`mleray.grading.validate_only`); it never returns a score, and nor does the server.

Inside: the socket's folder is bind-mounted read-only at /home/.mleray with a copy of the stdlib-only
shim (`inside/validate_shim.py`), which `wrap_command` starts: it listens on 127.0.0.1:5000 and relays to the socket,
and /home/validate_submission.sh posts a file there (curl, or python3 when curl is absent). Both
backends use `inside_mounts(spec)` and `wrap_command(command)`; it works with network none.

The answer is MLE-bench's grading server's JSON plus `"valid": true|false`: `{"result": "Submission is
valid."}`, or for a submission its grader rejects the same leading sentence as MLE-bench's, `Submission
invalid! The attempt to grade the submission has resulted in the following error message:`, then a newline
and mleray's reason (MLE-bench prints the grader's exception there). The file checks keep MLE-bench's own
sentences (`Submission invalid! Submission file ... does not exist.`, `... must be a CSV file.`).

The agent is untrusted, so every request is bounded: in size (an upload over the sweep's
max_submission_mb is refused unread, 413), in time (a request must arrive within 30 s, 408), and in
concurrency (2 validations and 16 connections at once per trial; more: 429 at once). Uploads are
streamed to a private temp file (0700 folder, 0600 file) that `validate_fn` reads; nothing is held
in memory beyond a chunk.

Use:
    sock = validation.socket_path_for(trial_dir)          # trial_dir/.validate/validate.sock
    with ValidationServer(functools.partial(validate_only, competition), sock):
        spec = SandboxSpec(..., validate_socket=sock)
        ...run the sandbox...
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import shutil
import socket
import socketserver
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

from mleray.sandbox import unix_service
from mleray.sandbox.base import SandboxSpec
from mleray.trial.agent_files import MAX_BYTES, excerpt, too_large

log = logging.getLogger(__name__)

INSIDE_DIR = Path(__file__).resolve().parent / "inside"
CONTAINER_SOCKET_DIR = "/home/.mleray"  # the validation socket's folder, with a copy of the shim (read-only)
SHIM_NAME = "validate_shim.py"
VALIDATE_SCRIPT = "/home/validate_submission.sh"
SHIM_PORT = 5000
WRAP_MARK = "mleray-agent"  # $0 of the wrapping shell; marks a wrapped command
MAX_UPLOAD = MAX_BYTES  # bytes (max_submission_mb's default); bigger uploads are refused with a reason
MULTIPART_SLACK = 64 * 1024  # what multipart framing may add to a submission's size
REQUEST_TIMEOUT = 30.0  # seconds a request may take to arrive, headers and body
MAX_VALIDATIONS = 2  # validations at once per trial; more are answered 429
MAX_CONNECTIONS = 16  # open connections at once per trial; more are answered 429 unread
MAX_PARTS = 16  # multipart parts looked at for the file
_CHUNK = 1 << 20

ValidateFn = Callable[[Path], Tuple[bool, str]]

VALID_MESSAGE = "Submission is valid."  # MLE-bench's; also what grading.validate_only returns
INVALID_PREFIX = "Submission invalid! "
# MLE-bench's grading server's leading sentence for a submission its grader rejects (the reason follows a newline)
GRADER_ERROR = "The attempt to grade the submission has resulted in the following error message:"


def socket_path_for(trial_dir: Path) -> Path:
    """Where a trial's validation socket goes: a folder of its own, so mounting it exposes nothing else."""
    return Path(trial_dir) / ".validate" / "validate.sock"


def container_socket_path(spec: SandboxSpec) -> Optional[str]:
    if spec.validate_socket is None:
        return None
    return f"{CONTAINER_SOCKET_DIR}/{Path(spec.validate_socket).name}"


def inside_mounts(spec: SandboxSpec) -> List[Tuple[Path, str, str]]:
    """(host path, container path, "ro"|"rw") for the validation pieces: /home/validate_submission.sh,
    and the socket's folder (the socket and the shim, which ValidationServer puts there) when the
    spec has a validation socket. Two mounts: every bind mount costs container start-up time."""
    mounts = [(INSIDE_DIR / "validate_submission.sh", VALIDATE_SCRIPT, "ro")]
    if spec.validate_socket is not None:
        mounts.append((Path(spec.validate_socket).parent, CONTAINER_SOCKET_DIR, "ro"))
    return mounts


def inside_env(spec: SandboxSpec) -> dict:
    """Environment the shim reads inside the sandbox."""
    path = container_socket_path(spec)
    return {"MLERAY_VALIDATE_SOCKET": path} if path else {}


def wrap_command(command: List[str], port: int = SHIM_PORT) -> List[str]:
    """`command` preceded by the shim: starts it in the background (bound before the agent runs), then
    execs the agent. Without a socket or without python3 in the image the agent just runs.
    Idempotent: a wrapped command is returned unchanged."""
    if len(command) >= 4 and command[:2] == ["/bin/sh", "-c"] and command[3] == WRAP_MARK:
        return list(command)  # wrapped already (the caller and the backend may both wrap)
    script = (
        'if [ -n "$MLERAY_VALIDATE_SOCKET" ] && command -v python3 >/dev/null 2>&1; then '
        f"python3 -I -S {CONTAINER_SOCKET_DIR}/{SHIM_NAME} serve --port {port} "
        '|| echo "mleray: the validation shim did not start" >&2; fi; exec "$@"'
    )
    return ["/bin/sh", "-c", script, WRAP_MARK, *command]


def answer(valid: bool, reason: str) -> dict:
    """The JSON body: MLE-bench's `result` message plus `valid`; never a score."""
    if valid:
        return {"result": VALID_MESSAGE, "valid": True}
    reason = excerpt((reason or "unknown reason").strip(), 600)
    if reason.startswith("Submission invalid"):
        message = reason
    elif reason.startswith("Submission file "):  # the file checks, worded as MLE-bench's
        message = INVALID_PREFIX + reason
    else:
        message = f"{INVALID_PREFIX}{GRADER_ERROR}\n{reason}"
    return {"result": message, "valid": False}


# --------------------------------------------------------------------------------------------
# multipart/form-data: the one file field curl -F sends, found in the body file without loading it


def _boundary(content_type: str) -> Optional[bytes]:
    for item in content_type.split(";"):
        key, _, value = item.strip().partition("=")
        if key.lower() == "boundary":
            return value.strip().strip('"').encode("latin-1", "replace") or None
    return None


def _offsets(f, needle: bytes, start: int = 0, chunk: int = _CHUNK) -> Iterator[int]:
    """The offsets of `needle` in the open file from `start` on, lazily, in one streamed pass (memory:
    one chunk, however many times a hostile body repeats the boundary)."""
    f.seek(start)
    pos, tail, last = start, b"", -1
    while True:
        buf = f.read(chunk)
        if not buf:
            return
        data, base = tail + buf, pos - len(tail)
        at = data.find(needle)
        while at >= 0:
            if base + at > last:
                last = base + at
                yield last
                f.seek(pos + len(buf))  # the caller may have read elsewhere in between
            at = data.find(needle, at + 1)
        tail = data[-(len(needle) - 1):] if len(needle) > 1 else b""
        pos += len(buf)


def _extract_file(body_path: Path, content_type: str, out_path: Path) -> int:
    """Writes the content of the first file part (field `file` preferred) of the multipart body in
    `body_path` to `out_path` (the whole body when the request is not multipart: a raw CSV post);
    returns its size. Streams, and looks at most MAX_PARTS parts: memory stays a chunk whatever
    the upload holds."""
    if "multipart/form-data" not in content_type:
        os.replace(body_path, out_path)
        return out_path.stat().st_size
    boundary = _boundary(content_type)
    if not boundary:
        raise ValueError("multipart request without a boundary")
    delim = b"--" + boundary
    with open(body_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        marks = _offsets(f, delim)
        chosen: Optional[Tuple[int, int]] = None
        here = next(marks, None)
        for _ in range(MAX_PARTS):
            if here is None:
                break
            f.seek(here + len(delim))
            head = f.read(16 * 1024)
            if head.startswith(b"--"):
                break
            after = next(marks, None)
            head_end = head.find(b"\r\n\r\n")
            if head_end >= 0:
                start = here + len(delim) + head_end + 4
                stop = after if after is not None else size
                f.seek(max(start, stop - 2))
                if f.read(2) == b"\r\n" and stop - 2 >= start:
                    stop -= 2
                disposition = head[:head_end].decode("latin-1").lower()
                if 'name="file"' in disposition:
                    chosen = (start, stop)
                    break
                if chosen is None and "filename=" in disposition:
                    chosen = (start, stop)
            here = after
        if chosen is None:
            raise ValueError("no file in the request (post it as form field 'file': curl -F file=@submission.csv)")
        start, stop = chosen
        f.seek(start)
        left = stop - start
        with open(out_path, "wb") as out:
            while left > 0:
                buf = f.read(min(left, _CHUNK))
                if not buf:
                    break
                out.write(buf)
                left -= len(buf)
    return stop - start


def _json_response(status: int, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    reason = http.server.BaseHTTPRequestHandler.responses.get(status, ("",))[0]
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class _Handler(unix_service.SandboxRequestHandler):
    """One request. The whole read (headers and body) must end within the server's request timeout (a
    watchdog cuts a trickling client off with 408); a body over the cap is refused unread (413); a
    third request while two are validated is answered 429 at once."""

    server_version = "mleray-validate/1"
    discard_chunk = _CHUNK
    server: "_UnixHTTPServer"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)
        self._lock = threading.Lock()
        self._reading, self._cut = True, False
        self._watchdog = threading.Timer(self.server.request_timeout, self._cut_off)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _cut_off(self) -> None:
        """The read took longer than the request timeout: answer 408 and shut the connection."""
        with self._lock:
            if not self._reading:
                return
            self._reading, self._cut = False, True
        self.server.timeouts += 1
        try:
            self.connection.settimeout(1.0)
            self.connection.sendall(_json_response(408, {
                "error": f"request not received within {self.server.request_timeout:g} s; send it at once"}))
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_done(self) -> bool:
        """Stops the watchdog; False when it already cut the request off."""
        with self._lock:
            if self._cut:
                return False
            self._reading = False
        self._watchdog.cancel()
        return True

    def finish(self) -> None:
        self._watchdog.cancel()
        super().finish()

    def log_message(self, fmt, *args) -> None:
        log.debug("validation: " + fmt, *args)

    def _send(self, status: int, payload: dict) -> None:
        if self._read_done():  # else the watchdog answered 408 and shut the connection
            self._answer(status, json.dumps(payload).encode())

    def _refuse(self, status: int, payload: dict, length: int) -> None:
        self._send(status, payload)
        if self.headers.get("Expect", "").lower() != "100-continue":
            self._discard(length)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._send(200, {"status": "running"})
        else:
            self._send(404, {"error": f"unknown path {excerpt(self.path, 100)} (POST a file to /validate)"})

    def do_POST(self) -> None:
        server = self.server
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(400, {"error": "bad Content-Length"})
            return
        if self.path.rstrip("/") != "/validate":
            self._refuse(404, {"error": f"unknown path {excerpt(self.path, 100)} (POST a file to /validate)"},
                         min(length, 1 << 20))
            return
        if length <= 0:
            self._send(400, {"error": "empty request (POST a file: curl -X POST -F file=@submission.csv http://localhost:5000/validate)"})
            return
        if length > server.max_bytes + MULTIPART_SLACK:
            self._refuse(413, answer(False, too_large("the upload", length, server.max_bytes) or "too large"), length)
            return
        if not server.slots.acquire(blocking=False):
            server.busy += 1
            self._refuse(429, {"error": f"too many validations at once ({server.max_validations} running); "
                                        "wait for one to finish and retry"}, length)
            return
        try:
            self._validate(length)
        finally:
            server.slots.release()

    def _validate(self, length: int) -> None:
        server = self.server
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        with tempfile.TemporaryDirectory(prefix="mleray-validate-") as tmp:  # mode 0700, host-only
            body = Path(tmp) / "body"
            try:
                with open(os.open(body, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                    left = length
                    while left > 0:
                        buf = self.rfile.read1(min(left, _CHUNK))
                        if not buf:
                            break
                        out.write(buf)
                        left -= len(buf)
            except OSError:  # timed out (a trickle), or the client went away
                left = -1
            if not self._read_done():
                return
            if left != 0:
                self._send(400, {"error": f"the request body ended early ({length} bytes announced)"})
                return
            path = Path(tmp) / "submission.csv"
            try:
                size = _extract_file(body, self.headers.get("Content-Type", ""), path)
            except ValueError as err:
                self._send(400, {"error": str(err)})
                return
            os.chmod(path, 0o600)
            body.unlink(missing_ok=True)
            too_big = too_large("the submission", size, server.max_bytes)
            if too_big:
                self._send(413, answer(False, too_big))
                return
            try:
                valid, reason = server.validate_fn(path)
            except Exception as err:  # the validator itself failed: MLE-bench answers 500 too
                log.exception("validation function failed")
                self._send(500, {"error": "An unexpected error occurred.", "details": excerpt(str(err))})
                return
        server.count += 1
        self._send(200, answer(bool(valid), str(reason or "")))


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    block_on_close = False
    request_queue_size = 128  # a burst of connects waits in the backlog (turned away with 429), not EAGAIN

    def __init__(self, address: str, validate_fn: ValidateFn, max_bytes: int, request_timeout: float,
                 max_validations: int, max_connections: int):
        self.validate_fn = validate_fn
        self.max_bytes, self.request_timeout = max_bytes, request_timeout
        self.max_validations, self.max_connections = max_validations, max_connections
        self.slots = threading.BoundedSemaphore(max_validations)
        self.connections = threading.BoundedSemaphore(max_connections)
        self.count = self.busy = self.timeouts = 0
        super().__init__(address, _Handler)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()


class ValidationServer:
    """HTTP over a unix socket, answered by `validate_fn`, in a background thread. A context manager.

    The socket file is made connectable by any uid (the agent runs as 1000) and removed on exit.
    Paths longer than a unix socket allows (~107 bytes) are handled by binding through /proc/self/fd.

    Bounded whatever the agent sends: an upload over `max_bytes` (the sweep's max_submission_mb) is
    refused unread (413); a request must arrive within `request_timeout` seconds (408); at most
    `max_validations` run at once and at most `max_connections` are open (more: 429 at once, with a
    JSON reason). Uploads are streamed to a private temp file (0700 folder, 0600 file), which is what
    `validate_fn` reads.
    """

    def __init__(self, validate_fn: ValidateFn, socket_path: Path | str, max_bytes: int = MAX_UPLOAD,
                 request_timeout: float = REQUEST_TIMEOUT, max_validations: int = MAX_VALIDATIONS,
                 max_connections: int = MAX_CONNECTIONS):
        self.validate_fn = validate_fn
        self.socket_path = Path(socket_path)
        self.max_bytes, self.request_timeout = int(max_bytes), float(request_timeout)
        self.max_validations, self.max_connections = int(max_validations), int(max(max_connections, max_validations))
        self._server: Optional[_UnixHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def requests(self) -> int:
        """How many submissions were validated so far."""
        return self._server.count if self._server else 0

    @property
    def refused(self) -> dict:
        """How many requests were answered 429 (busy) and 408 (too slow) so far."""
        server = self._server
        return {"busy": server.busy, "timed_out": server.timeouts} if server else {"busy": 0, "timed_out": 0}

    def start(self) -> "ValidationServer":
        folder = self.socket_path.parent
        self._server = unix_service.bind(self.socket_path, lambda address: _UnixHTTPServer(
            address, self.validate_fn, self.max_bytes, self.request_timeout, self.max_validations,
            self.max_connections))
        shim = folder / SHIM_NAME  # the shim travels in the socket's folder: one mount for both
        shutil.copyfile(INSIDE_DIR / SHIM_NAME, shim)
        os.chmod(shim, 0o644)
        self._thread = threading.Thread(target=self._serve,
                                        name=f"mleray-validate-{folder.parent.name}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        """unix_service.accept_loop: each request in a thread of its own, at most `max_connections` at
        once (one more is answered 429 here, unread, and closed)."""
        server = self._server
        if server is None:  # stop() ran before this thread did
            return

        def turn_away(conn: socket.socket) -> None:
            server.busy += 1
            _turn_away(conn, self.max_connections)

        unix_service.accept_loop(server, server.connections, turn_away)

    def stop(self) -> None:
        unix_service.stop(self._server, self._thread)
        self._server, self._thread = None, None
        for path in (self.socket_path, self.socket_path.parent / SHIM_NAME):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> "ValidationServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _turn_away(conn: socket.socket, limit: int) -> None:
    """429 to a connection over the cap, without a thread: what already arrived is dropped unread
    (non-blocking), the answer written (it fits the socket buffer), the connection closed."""
    try:
        conn.setblocking(False)
        try:
            for _ in range(4):
                if not conn.recv(_CHUNK):
                    break
        except OSError:
            pass
        conn.settimeout(0.2)
        conn.sendall(_json_response(429, {"error": f"too many connections at once ({limit} open); retry shortly"}))
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        conn.close()
