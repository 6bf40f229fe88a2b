"""The host side of a service an agent reaches through a unix socket mounted into its sandbox (validation,
the LLM gateway): binding the socket, accepting with a cap on connections, stopping at once, and the
request handler's common part (`SandboxRequestHandler`).

    server = bind(socket_path, lambda address: MyServer(address, ...))   # a socketserver on `address`
    thread = threading.Thread(target=accept_loop, args=(server, connections, turn_away), daemon=True)
    ...
    stop(server, thread)
"""

from __future__ import annotations

import http.server
import os
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Optional, TypeVar

Server = TypeVar("Server", bound=socketserver.BaseServer)


def bind(path: Path, make: Callable[[str], Server]) -> Server:
    """`make(address)` listening at `path`: its folder made (0755), a leftover socket removed, a path past
    the 108-byte sun_path limit reached through /proc/self/fd of its folder, the socket 0666 (the agent's
    uid connects)."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    if path.exists() or path.is_socket():
        path.unlink()
    address, dir_fd = str(path), None
    if len(address.encode()) > 100:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        address = f"/proc/self/fd/{dir_fd}/{path.name}"
    try:
        server = make(address)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    os.chmod(path, 0o666)
    return server


def accept_loop(server: socketserver.BaseServer, connections: threading.Semaphore,
                turn_away: Callable[[socket.socket], None]) -> None:
    """Accepts until stop() shuts the listening socket (which wakes accept() at once, unlike
    serve_forever's polling); each connection is handled by the server (a thread each), at most as many at
    once as `connections` allows: one more is handed to `turn_away`. The handler releases `connections`."""
    while True:
        try:
            conn, _ = server.socket.accept()  # type: ignore[attr-defined]
        except OSError:
            return
        if not connections.acquire(blocking=False):
            turn_away(conn)
            continue
        try:
            server.process_request(conn, "sandbox")
        except Exception:  # a thread could not start: drop this connection, keep serving
            connections.release()
            server.shutdown_request(conn)


def stop(server: Optional[socketserver.BaseServer], thread: Optional[threading.Thread]) -> None:
    """Shuts the listening socket (accept_loop returns), closes the server, waits a little for the loop."""
    if server is not None:
        try:
            server.socket.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]
        except OSError:
            pass
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


class SandboxRequestHandler(http.server.BaseHTTPRequestHandler):
    """What both services' handlers share: HTTP/1.1 with one request per connection (every answer closes
    it), no peer address (a unix socket), a client gone mid-answer ignored, the 100 Continue left to the
    handler (sent once a request is accepted, so a refused upload is never sent), and a refusal's unread
    body drained so the client reads the refusal instead of a reset connection."""

    protocol_version = "HTTP/1.1"
    discard_chunk = 64 * 1024  # bytes read at a time while draining a refused body

    def address_string(self) -> str:
        return "sandbox"

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def handle_expect_100(self) -> bool:
        return True

    def _answer(self, status: int, body: bytes, headers: Optional[Dict[str, str]] = None) -> None:
        """Sends `body` (JSON unless `headers` say otherwise) and closes the connection after it."""
        try:
            self.send_response(status)
            for name, value in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass
        self.close_connection = True

    def _discard(self, length: int) -> None:
        """Reads and drops what the client still sends (at most `length` bytes, for at most 2 s)."""
        deadline = time.monotonic() + 2.0
        try:
            self.connection.settimeout(0.5)
            while length > 0 and time.monotonic() < deadline:
                buf = self.rfile.read1(min(length, self.discard_chunk))
                if not buf:
                    return
                length -= len(buf)
        except OSError:
            pass
