"""Submission validation answered from outside the sandbox (MLE-bench's /validate, without the answers inside).

Outside: `ValidationServer(validate_fn, socket_path)` serves HTTP on a unix socket in a thread.
`validate_fn(path_to_submission_csv) -> (valid, reason)` is bound to the prepared competition by
the caller (`mleray.grading.validate_only`); it never returns a score, and nor does the server.

Inside: the socket's folder is bind-mounted read-only at /home/.mleray with a copy of the stdlib-only
shim (`inside/validate_shim.py`), which `wrap_command` starts: it listens on 127.0.0.1:5000 and relays to the socket,
and /home/validate_submission.sh posts a file there (curl, or python3 when curl is absent). Both
backends use `inside_mounts(spec)` and `wrap_command(command)`; it works with network none.

The answer is MLE-bench's grading server's JSON, `{"result": "Submission is valid."}` or
`{"result": "Submission invalid! <reason>"}`, plus `"valid": true|false`.

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
from typing import Callable, List, Optional, Tuple

from mleray.sandbox.base import SandboxSpec

log = logging.getLogger(__name__)

INSIDE_DIR = Path(__file__).resolve().parent / "inside"
CONTAINER_SOCKET_DIR = "/home/.mleray"  # the validation socket's folder, with a copy of the shim (read-only)
SHIM_NAME = "validate_shim.py"
VALIDATE_SCRIPT = "/home/validate_submission.sh"
SHIM_PORT = 5000
WRAP_MARK = "mleray-agent"  # $0 of the wrapping shell; marks a wrapped command
MAX_UPLOAD = 2 * 1024**3  # bytes; bigger posts are refused with a reason

ValidateFn = Callable[[Path], Tuple[bool, str]]

VALID_MESSAGE = "Submission is valid."  # MLE-bench's; also what grading.validate_only returns
INVALID_PREFIX = "Submission invalid! "


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
    reason = (reason or "unknown reason").strip()
    message = reason if reason.startswith("Submission invalid") else INVALID_PREFIX + reason
    return {"result": message, "valid": False}


# --------------------------------------------------------------------------------------------
# multipart/form-data: the one file field curl -F sends


def _extract_file(body: bytes, content_type: str) -> bytes:
    """The content of the first file part (field `file` preferred) of a multipart body; the whole body
    when the request is not multipart (a raw CSV post)."""
    if "multipart/form-data" not in content_type:
        return body
    boundary = None
    for item in content_type.split(";"):
        key, _, value = item.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise ValueError("multipart request without a boundary")
    delim = b"--" + boundary.encode()
    parts = body.split(delim)
    found = None
    for part in parts[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        disposition = head.decode("latin-1").lower()
        if 'name="file"' in disposition:
            return content
        if found is None and "filename=" in disposition:
            found = content
    if found is None:
        raise ValueError("no file in the request (post it as form field 'file': curl -F file=@submission.csv)")
    return found


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "mleray-validate/1"
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:  # unix sockets have no peer address
        return "sandbox"

    def log_message(self, fmt, *args) -> None:
        log.debug("validation: " + fmt, *args)

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._send(200, {"status": "running"})
        else:
            self._send(404, {"error": f"unknown path {self.path} (POST a file to /validate)"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path.rstrip("/") != "/validate":
            self.rfile.read(min(length, 1 << 20))  # a small body is read, so the client gets the 404, not EPIPE
            self._send(404, {"error": f"unknown path {self.path} (POST a file to /validate)"})
            return
        if length <= 0:
            self._send(400, {"error": "empty request (POST a file: curl -X POST -F file=@submission.csv http://localhost:5000/validate)"})
            return
        if length > MAX_UPLOAD:
            self._send(413, {"error": f"submission too large ({length} bytes > {MAX_UPLOAD})"})
            return
        body = self.rfile.read(length)
        try:
            content = _extract_file(body, self.headers.get("Content-Type", ""))
        except ValueError as err:
            self._send(400, {"error": str(err)})
            return
        server: "_UnixHTTPServer" = self.server  # type: ignore[assignment]
        with tempfile.TemporaryDirectory(prefix="mleray-validate-") as tmp:
            path = Path(tmp) / "submission.csv"
            path.write_bytes(content)
            try:
                valid, reason = server.validate_fn(path)
            except Exception as err:  # the validator itself failed: MLE-bench answers 500 too
                log.exception("validation function failed")
                self._send(500, {"error": "An unexpected error occurred.", "details": str(err)})
                return
        server.count += 1
        self._send(200, answer(bool(valid), str(reason or "")))


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address: str, validate_fn: ValidateFn):
        self.validate_fn = validate_fn
        self.count = 0
        super().__init__(address, _Handler)


class ValidationServer:
    """HTTP over a unix socket, answered by `validate_fn`, in a background thread. A context manager.

    The socket file is made connectable by any uid (the agent runs as 1000) and removed on exit.
    Paths longer than a unix socket allows (~107 bytes) are handled by binding through /proc/self/fd.
    """

    def __init__(self, validate_fn: ValidateFn, socket_path: Path | str):
        self.validate_fn = validate_fn
        self.socket_path = Path(socket_path)
        self._server: Optional[_UnixHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def requests(self) -> int:
        """How many submissions were validated so far."""
        return self._server.count if self._server else 0

    def start(self) -> "ValidationServer":
        folder = self.socket_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)
        if self.socket_path.exists() or self.socket_path.is_socket():
            self.socket_path.unlink()
        address = str(self.socket_path)
        dir_fd = None
        if len(address.encode()) > 100:
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            address = f"/proc/self/fd/{dir_fd}/{self.socket_path.name}"
        try:
            self._server = _UnixHTTPServer(address, self.validate_fn)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        os.chmod(self.socket_path, 0o666)
        shim = folder / SHIM_NAME  # the shim travels in the socket's folder: one mount for both
        shutil.copyfile(INSIDE_DIR / SHIM_NAME, shim)
        os.chmod(shim, 0o644)
        self._thread = threading.Thread(target=self._serve,
                                        name=f"mleray-validate-{folder.parent.name}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        """Accepts until stop() shuts the listening socket (which wakes accept() at once, unlike
        serve_forever's polling); each request is handled in a thread of its own."""
        server = self._server
        if server is None:  # stop() ran before this thread did
            return
        while True:
            try:
                conn, _ = server.socket.accept()
            except OSError:
                return
            try:
                server.process_request(conn, "sandbox")
            except Exception:  # a thread could not start: drop this connection, keep serving
                server.shutdown_request(conn)

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for path in (self.socket_path, self.socket_path.parent / SHIM_NAME):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> "ValidationServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

