"""The LLM gateway: a trial's only way to a model, on the host, outside the sandbox.

`LLMGateway(socket_path, upstream, ledger, token, log_path)` serves HTTP on a unix socket in a thread,
as the validation server does; inside, the same stdlib relay (`sandbox/inside/validate_shim.py`) listens
on localhost and forwards to it (`mleray.llm.inside`), so the sandbox keeps network none. It speaks:

  POST /v1/chat/completions   OpenAI chat completions  -> upstream.openai_url + /chat/completions
  POST /v1/responses          OpenAI responses         -> upstream.openai_url + /responses
  POST /v1/messages           Anthropic messages       -> upstream.anthropic_url + /v1/messages

streaming (SSE) included, relayed as it arrives (a chat stream is asked for its usage with
`stream_options.include_usage`). The agent authenticates with its per-trial token (Bearer or x-api-key);
the gateway replaces it with the real key, which never goes back: upstream answers, errors included, are
passed through with the keys' text scrubbed. Every call is booked in the trial's `Ledger` (tokens,
dollars, latency, errors) and written to `llm.jsonl` (time, model, status, usage, dollars, the request and
the response, each cut at `MAX_LOGGED` bytes; past `max_log_bytes` the bodies are left out).

Budgets: once the ledger says one ran out, a call is answered 429 with an OpenAI- or Anthropic-shaped
error naming the budget and `x-should-retry: false` (both SDKs stop retrying on it). The agent controls
every request, so each is bounded: its size (`max_request_bytes`, 413), its arrival (`request_timeout`,
408), calls at once (`max_concurrency`, 429 with a retry), open connections (`max_connections`), the
upstream's answer (`max_response_bytes`: past it, 502, or a stream cut) and its time (`upstream_timeout`).
"""

from __future__ import annotations

import hmac
import http.client
import http.server
import json
import logging
import socket
import socketserver
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from mleray.llm.accounting import ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES, Ledger, Usage, usage_of
from mleray.llm.keys import Upstream
from mleray.sandbox import unix_service

log = logging.getLogger(__name__)

ROUTES = {"/v1/chat/completions": ("openai", OPENAI_CHAT, "/chat/completions"),
          "/v1/responses": ("openai", OPENAI_RESPONSES, "/responses"),
          "/v1/messages": ("anthropic", ANTHROPIC, "/v1/messages")}
MAX_REQUEST = 8 * 2**20  # bytes of one request body
MAX_RESPONSE = 32 * 2**20  # bytes of one upstream answer (a stream: all its events)
MAX_CONCURRENCY = 4  # calls upstream at once per trial
MAX_CONNECTIONS = 16
REQUEST_TIMEOUT = 60.0
UPSTREAM_TIMEOUT = 600.0
MAX_LOGGED = 64 * 1024  # bytes of a request or response kept in llm.jsonl
MAX_LOG = 64 * 2**20  # bytes of llm.jsonl with bodies; past it, entries without them
ANTHROPIC_VERSION = "2023-06-01"
_CHUNK = 64 * 1024
_PASS_HEADERS = ("content-type", "retry-after", "x-request-id", "request-id", "openai-processing-ms")


def _error_body(provider: str, status: int, message: str, kind: str) -> bytes:
    """An error both SDKs parse: OpenAI's `{"error": {...}}`, Anthropic's `{"type": "error", ...}`."""
    if provider == "anthropic":
        payload: Dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        payload = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return json.dumps(payload).encode()


def _cut(data: bytes, limit: int = MAX_LOGGED) -> Tuple[str, int]:
    """At most `limit` bytes of `data` as text, and how many were dropped."""
    return data[:limit].decode("utf-8", "replace"), max(0, len(data) - limit)


class _SSE:
    """Reads usage out of a server-sent event stream as it passes, a chunk at a time (a line held at
    most 1 MB: a longer one is skipped)."""

    def __init__(self, api: str):
        self.api, self.buf = api, b""
        self.usage: Optional[Usage] = None
        self.model = ""
        self._anthropic_in: Optional[Usage] = None

    def feed(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self._line(line.strip())
        if len(self.buf) > 2**20:
            self.buf = b""

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        text = line[5:].strip()
        if not text or text == b"[DONE]":
            return
        try:
            event = json.loads(text)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if self.api == OPENAI_CHAT:
            self.model = str(event.get("model") or self.model)
            found = usage_of(self.api, event.get("usage"))
            if found is not None:
                self.usage = found
        elif self.api == OPENAI_RESPONSES:
            response = event.get("response")
            if isinstance(response, dict):
                self.model = str(response.get("model") or self.model)
                found = usage_of(self.api, response.get("usage"))
                if found is not None:
                    self.usage = found
        else:
            kind = event.get("type")
            if kind == "message_start" and isinstance(event.get("message"), dict):
                message = event["message"]
                self.model = str(message.get("model") or self.model)
                self._anthropic_in = usage_of(ANTHROPIC, message.get("usage")) or Usage()
                self.usage = self._anthropic_in
            elif kind == "message_delta" and isinstance(event.get("usage"), dict):
                out = usage_of(ANTHROPIC, event["usage"]) or Usage()  # output_tokens: the running total
                base = self._anthropic_in or Usage()
                self.usage = Usage(max(base.input, out.input), out.output, max(base.cached, out.cached))


class _Handler(unix_service.SandboxRequestHandler):
    server_version = "mleray-llm/1"
    discard_chunk = _CHUNK
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.gw.request_timeout)

    def log_message(self, fmt, *args) -> None:
        log.debug("llm gateway: " + fmt, *args)

    # -- answers -------------------------------------------------------------------------------

    def _refuse(self, provider: str, status: int, message: str, kind: str, retry: bool = True) -> None:
        self.server.gw.ledger.refuse()
        headers = {"Content-Type": "application/json"}
        if not retry:
            headers["x-should-retry"] = "false"
        self._answer(status, _error_body(provider, status, message, kind), headers)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._answer(200, b'{"status": "running"}')
        else:
            self._answer(404, _error_body("openai", 404, "unknown path (the gateway answers POST /v1/chat/completions,"
                                          " /v1/responses and /v1/messages)", "not_found_error"))

    def do_POST(self) -> None:
        gw = self.server.gw
        route = ROUTES.get(urlsplit(self.path).path.rstrip("/"))
        provider = route[0] if route else "openai"
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(provider, 411, "send the request with a Content-Length", "invalid_request_error", False)
            return
        if length > gw.max_request_bytes:
            self._refuse(provider, 413, f"request of {length} bytes is over the gateway's limit of "
                         f"{gw.max_request_bytes} bytes", "invalid_request_error", retry=False)
            self._discard(length)
            return
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        try:
            raw = self.rfile.read(length)
        except OSError:
            raw = b""
        if len(raw) != length:
            self._refuse(provider, 408, f"request body not received within {gw.request_timeout:g} s",
                         "invalid_request_error", retry=False)
            return
        if route is None:
            self._answer(404, _error_body("openai", 404, "unknown path (POST /v1/chat/completions, /v1/responses"
                                          " or /v1/messages)", "not_found_error"))
            return
        provider, api, upstream_path = route
        sent = self.headers.get("x-api-key") or ""
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            sent = sent or auth[7:].strip()
        if not hmac.compare_digest(sent.encode(), gw.token.encode()):
            self._refuse(provider, 401, "unknown API key: use the OPENAI_API_KEY / ANTHROPIC_API_KEY this trial "
                         "was given", "authentication_error", retry=False)
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            self._refuse(provider, 400, "the request body is not a JSON object", "invalid_request_error", False)
            return
        if not gw.slots.acquire(blocking=False):
            self._refuse(provider, 429, f"too many LLM calls at once ({gw.max_concurrency} in flight); retry "
                         "shortly", "rate_limit_error")
            return
        try:
            why = gw.ledger.over_budget()
            if why is not None:
                kind = "rate_limit_error" if provider == "anthropic" else "insufficient_quota"
                self._refuse_booked(provider, 429, f"mleray: this trial's LLM budget ran out: {why}", kind)
                gw.write_log({"api": api, "model": str(body.get("model") or "")[:200], "status": 429,
                              "refused": why})
                return
            self._forward(provider, api, upstream_path, body, raw)
        finally:
            gw.slots.release()

    def _refuse_booked(self, provider: str, status: int, message: str, kind: str) -> None:
        """A refusal already counted by the ledger (over_budget)."""
        self._answer(status, _error_body(provider, status, message, kind),
                     {"Content-Type": "application/json", "x-should-retry": "false"})

    # -- forwarding ----------------------------------------------------------------------------

    def _forward(self, provider: str, api: str, upstream_path: str, body: Dict[str, Any], raw: bytes) -> None:
        gw = self.server.gw
        model = str(body.get("model") or "")[:200]
        stream = body.get("stream") is True
        if stream and api == OPENAI_CHAT:
            given = body.get("stream_options")
            options: Dict[str, Any] = given if isinstance(given, dict) else {}
            if not options.get("include_usage"):
                body = {**body, "stream_options": {**options, "include_usage": True}}
                raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        key = gw.upstream.key(provider)
        if provider == "anthropic":
            headers["anthropic-version"] = self.headers.get("anthropic-version") or ANTHROPIC_VERSION
            if self.headers.get("anthropic-beta"):
                headers["anthropic-beta"] = self.headers["anthropic-beta"]
            if key:
                headers["x-api-key"] = key
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        t0 = time.monotonic()
        entry: Dict[str, Any] = {"api": api, "model": model, "stream": stream}
        usage: Optional[Usage] = None
        status, error, answer = 502, True, b""
        reply: Optional[Tuple[int, bytes, Dict[str, str]]] = None  # sent after the call is booked
        json_type = {"Content-Type": "application/json"}
        try:
            conn = gw.connect(provider)
            try:
                conn.request("POST", gw.path(provider, upstream_path), body=raw, headers=headers)
                resp = conn.getresponse()
                status = resp.status
                streaming = stream and status == 200 and "event-stream" in (resp.getheader("Content-Type") or "")
                if streaming:
                    usage, answer, cut, answered_model = self._relay_stream(resp, api)
                    error = cut
                    model = answered_model or model
                    if cut:
                        entry["cut"] = f"the stream passed {gw.max_response_bytes} bytes and was cut"
                else:
                    answer = resp.read(gw.max_response_bytes + 1)
                    if len(answer) > gw.max_response_bytes:
                        answer = b""
                        status = 502
                        message = f"the upstream answer passed the gateway's limit of {gw.max_response_bytes} bytes"
                        entry["cut"] = message
                        reply = (502, _error_body(provider, 502, message, "api_error"), json_type)
                    else:
                        answer = gw.scrub(answer)
                        passed = {name: str(resp.getheader(name)) for name in _PASS_HEADERS if resp.getheader(name)}
                        passed.setdefault("Content-Type", "application/json")
                        reply = (status, answer, passed)
                        error = status >= 400
                        if status == 200:
                            try:
                                parsed = json.loads(answer)
                            except ValueError:
                                parsed = None
                            if isinstance(parsed, dict):
                                usage = usage_of(api, parsed.get("usage"))
                                model = str(parsed.get("model") or model)[:200]
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as err:
            message = f"the upstream could not be reached: {type(err).__name__}"
            entry["error"] = message
            reply = (502, _error_body(provider, 502, message, "api_error"), json_type)
        except Exception as err:  # a gateway bug: the call is still booked, the agent gets an answer
            log.exception("llm gateway: forwarding failed")
            message = f"the gateway failed: {type(err).__name__}"
            entry["error"] = message
            reply = (500, _error_body(provider, 500, message, "api_error"), json_type)
        latency = time.monotonic() - t0
        dollars = gw.ledger.settle(model or str(body.get("model") or ""), usage, latency, error, call=id(self))
        if reply is not None:  # booked first: the agent's next call is checked against this one's tokens
            self._answer(*reply)
        entry.update({"model": model, "status": status, "latency_s": round(latency, 3),
                      "usage": usage.to_dict() if usage else None, "cost_usd": round(dollars, 9)})
        gw.write_log(entry, request=raw, response=answer)

    def _relay_stream(self, resp, api: str) -> Tuple[Optional[Usage], bytes, bool, str]:
        """Relays an SSE answer to the agent as it comes (close-delimited); returns its usage, the first
        MAX_LOGGED bytes, whether it was cut at max_response_bytes, and the model it named."""
        gw = self.server.gw
        sse = _SSE(api)
        kept, total, cut = b"", 0, False
        try:
            self.send_response(200)
            self.send_header("Content-Type", resp.getheader("Content-Type") or "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
        except OSError:
            return None, b"", True, ""
        self.close_connection = True
        while True:
            try:
                data = resp.read1(_CHUNK)
            except (OSError, http.client.HTTPException):
                cut = True
                break
            if not data:
                break
            total += len(data)
            if total > gw.max_response_bytes:
                cut = True
                break
            data = gw.scrub(data)
            sse.feed(data)
            gw.ledger.streaming(id(self), sse.usage)  # before the agent sees this chunk (maybe the end)
            if len(kept) < MAX_LOGGED:
                kept += data[: MAX_LOGGED - len(kept)]
            try:
                self.wfile.write(data)
                self.wfile.flush()
            except OSError:  # the agent went away; the call still counts
                break
        return sse.usage, kept, cut, sse.model[:200]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address: str, gw: "LLMGateway"):
        self.gw = gw
        super().__init__(address, _Handler)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.gw.connections.release()


class LLMGateway:
    """One trial's gateway: HTTP on a unix socket, answered in threads; a context manager.
    `t0` (time.monotonic) is when the trial's clock starts: llm.jsonl's `elapsed_s` counts from it."""

    def __init__(self, socket_path: Path | str, upstream: Upstream, ledger: Ledger, token: str,
                 log_path: Optional[Path] = None, max_request_bytes: int = MAX_REQUEST,
                 max_response_bytes: int = MAX_RESPONSE, max_concurrency: int = MAX_CONCURRENCY,
                 max_connections: int = MAX_CONNECTIONS, request_timeout: float = REQUEST_TIMEOUT,
                 upstream_timeout: float = UPSTREAM_TIMEOUT, max_log_bytes: int = MAX_LOG):
        self.socket_path = Path(socket_path)
        self.upstream, self.ledger, self.token = upstream, ledger, token
        self.log_path = Path(log_path) if log_path else None
        self.max_request_bytes, self.max_response_bytes = int(max_request_bytes), int(max_response_bytes)
        self.max_concurrency = int(max_concurrency)
        self.request_timeout, self.upstream_timeout = float(request_timeout), float(upstream_timeout)
        self.max_log_bytes = int(max_log_bytes)
        self.slots = threading.BoundedSemaphore(self.max_concurrency)
        self.connections = threading.BoundedSemaphore(max(int(max_connections), self.max_concurrency))
        self.t0 = time.monotonic()
        self._secrets = [s.encode() for s in upstream.secrets()]
        self._log_lock = threading.Lock()
        self._logged = 0
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- upstream ------------------------------------------------------------------------------

    def connect(self, provider: str) -> http.client.HTTPConnection:
        """A connection to the provider's upstream; an https one through the host's $HTTPS_PROXY (a CONNECT
        tunnel) unless $NO_PROXY exempts the host, as pip and the SDKs would go."""
        parts = urlsplit(self.upstream.url(provider))
        host = parts.hostname or ""
        if parts.scheme == "https":
            proxy = urllib.request.getproxies().get("https")
            if proxy and not urllib.request.proxy_bypass(host):
                where = urlsplit(proxy if "://" in proxy else "http://" + proxy)
                conn = http.client.HTTPSConnection(where.hostname or "", where.port or 3128,
                                                   timeout=self.upstream_timeout)
                conn.set_tunnel(host, parts.port or 443)
                return conn
            return http.client.HTTPSConnection(host, parts.port or 443, timeout=self.upstream_timeout)
        return http.client.HTTPConnection(host, parts.port or 80, timeout=self.upstream_timeout)

    def path(self, provider: str, upstream_path: str) -> str:
        return urlsplit(self.upstream.url(provider)).path.rstrip("/") + upstream_path

    def scrub(self, data: bytes) -> bytes:
        """`data` with every upstream key's text replaced by ***."""
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, b"***")
        return data

    # -- llm.jsonl -----------------------------------------------------------------------------

    def write_log(self, entry: Dict[str, Any], request: bytes = b"", response: bytes = b"") -> None:
        """Appends one call to llm.jsonl: time, elapsed_s, the entry, and the bodies (cut) while the file
        is under max_log_bytes."""
        if self.log_path is None:
            return
        line: Dict[str, Any] = {"time": datetime.now(timezone.utc).isoformat(),
                                "elapsed_s": round(time.monotonic() - self.t0, 3), **entry}
        with self._log_lock:
            if self._logged < self.max_log_bytes:
                for name, data in (("request", request), ("response", response)):
                    if data:
                        text, dropped = _cut(self.scrub(data))
                        line[name] = text
                        if dropped:
                            line[f"{name}_bytes_dropped"] = dropped
            else:
                line["bodies"] = f"left out: llm.jsonl passed {self.max_log_bytes} bytes"
            data = self.scrub((json.dumps(line, default=str) + "\n").encode())
            try:
                with open(self.log_path, "ab") as f:
                    f.write(data)
                self._logged += len(data)
            except OSError as err:
                log.warning("llm gateway: cannot write %s: %s", self.log_path, err.strerror)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "LLMGateway":
        self._server = unix_service.bind(self.socket_path, lambda address: _Server(address, self))
        self._thread = threading.Thread(target=self._serve, name="mleray-llm-gateway", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        if self._server is not None:
            unix_service.accept_loop(self._server, self.connections, _turn_away)

    def stop(self) -> None:
        unix_service.stop(self._server, self._thread)
        self._server, self._thread = None, None
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "LLMGateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _turn_away(conn: socket.socket) -> None:
    try:
        body = _error_body("openai", 429, "too many connections to the LLM gateway at once; retry shortly",
                           "rate_limit_error")
        conn.settimeout(0.2)
        conn.sendall(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    except OSError:
        pass
    finally:
        conn.close()


def known_paths() -> List[str]:
    return sorted(ROUTES)
