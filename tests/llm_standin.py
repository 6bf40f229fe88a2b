"""A STAND-IN for an LLM provider (OpenAI- and Anthropic-compatible), for tests only: no real model can be
reached from CI. It answers chat completions, responses and Anthropic messages, plain and streamed (SSE),
with scripted AIDE-shaped replies: a plan and a ```python block that trains a model on the task's data and
writes ./working/submission.csv; a call offering the `submit_review` tool gets a function call reporting
the metric the script printed. Each answer carries usage numbers, and the stand-in adds up what it
reported (`reported`) so a test can compare the record with it. It also keeps the Authorization / x-api-key
headers it received, to check that the gateway sent the real key and the agent never had it.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

# Trains a model on ./input/train.csv and writes ./working/submission.csv for titanic-shaped data: a
# logistic regression on a few numeric and encoded columns, the validation accuracy printed.
TITANIC_CODE = r'''
import os
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

train = pd.read_csv("./input/train.csv")
test = pd.read_csv("./input/test.csv")


def features(df):
    out = pd.DataFrame(index=df.index)
    out["sex"] = (df["Sex"] == "female").astype(float)
    out["pclass"] = df["Pclass"].astype(float)
    out["age"] = df["Age"].fillna(train["Age"].median())
    out["fare"] = df["Fare"].fillna(train["Fare"].median())
    out["family"] = df["SibSp"] + df["Parch"]
    return out


X, y = features(train), train["Survived"]
model = LogisticRegression(max_iter=1000)
accuracy = cross_val_score(model, X, y, cv=3).mean()
print(f"Validation accuracy: {accuracy:.4f}")
model.fit(X, y)
os.makedirs("./working", exist_ok=True)
pd.DataFrame({"PassengerId": test["PassengerId"], "Survived": model.predict(features(test))}).to_csv(
    "./working/submission.csv", index=False)
'''

PLAN = ("I will fit a logistic regression on sex, class, age, fare and family size, check it with 3-fold CV, "
        "and write the test predictions.")


def code_reply(code: str = TITANIC_CODE) -> str:
    return f"{PLAN}\n\n```python\n{code.strip()}\n```\n"


def _usage_numbers(prompt: str, reply: str, n: int) -> Tuple[int, int, int]:
    """Deterministic usage for one call: input ~ prompt/4, output ~ reply/4, cached a tenth of input
    from the second call on."""
    inp, out = max(1, len(prompt) // 4), max(1, len(reply) // 4)
    return inp, out, (inp // 10 if n > 1 else 0)


def _prompt_text(body: Dict[str, Any]) -> str:
    parts: List[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, str):
            parts.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(body.get("messages") or body.get("input") or [])
    walk(body.get("system") or "")
    return "\n".join(parts)


def _metric_from(prompt: str) -> Optional[float]:
    found = re.findall(r"Validation accuracy: ([0-9.]+)", prompt)
    return float(found[-1]) if found else None


class StandIn:
    """The stand-in provider on 127.0.0.1:<port>; a context manager. `reply(api, body)` may be replaced."""

    def __init__(self, code: str = TITANIC_CODE, fail_status: Optional[int] = None):
        self.code = code
        self.fail_status = fail_status
        self.calls: List[Dict[str, Any]] = []
        self.reported = {"input": 0, "output": 0, "cached": 0}
        self.per_model: Dict[str, Dict[str, int]] = {}
        self.keys_seen: List[str] = []
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text_for(self, body: Dict[str, Any]) -> Tuple[str, Optional[Dict[str, Any]]]:
        """(text, function call or None): a review when the `submit_review` tool is offered, else code."""
        tools = json.dumps(body.get("tools") or [])
        if "submit_review" in tools:
            metric = _metric_from(_prompt_text(body))
            args = {"is_bug": metric is None, "summary": "The script ran and wrote a submission." if metric is not None
                    else "The script failed.", "metric": metric, "lower_is_better": False}
            return "", {"name": "submit_review", "arguments": json.dumps(args)}
        return code_reply(self.code), None

    def book(self, model: str, inp: int, out: int, cached: int) -> None:
        with self._lock:
            self.reported["input"] += inp
            self.reported["output"] += out
            self.reported["cached"] += cached
            per = self.per_model.setdefault(model, {"input": 0, "output": 0, "cached": 0})
            per["input"] += inp
            per["output"] += out
            per["cached"] += cached

    def __enter__(self) -> "StandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with standin._lock:
                    standin.keys_seen.append(self.headers.get("Authorization") or self.headers.get("x-api-key") or "")
                    standin.calls.append({"path": self.path, "body": body})
                    n = len(standin.calls)
                if standin.fail_status:
                    self._json(standin.fail_status, {"error": {"message": "stand-in upstream says no",
                                                               "type": "server_error", "code": None}})
                    return
                path = self.path.split("?")[0]
                api = {"/v1/chat/completions": "chat", "/v1/responses": "responses",
                       "/v1/messages": "messages"}.get(path)
                if api is None:
                    self._json(404, {"error": {"message": "no such path"}})
                    return
                model = str(body.get("model") or "stand-in")
                text, call = standin.text_for(body)
                inp, out, cached = _usage_numbers(_prompt_text(body), text + json.dumps(call or ""), n)
                standin.book(model, inp, out, cached)
                stream = body.get("stream") is True
                getattr(self, f"_{api}")(model, text, call, inp, out, cached, stream, body)

            def _json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: List[Tuple[Optional[str], Any]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for name, data in events:
                    head = f"event: {name}\n" if name else ""
                    payload = data if isinstance(data, str) else json.dumps(data)
                    self.wfile.write(f"{head}data: {payload}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

            def _chat(self, model, text, call, inp, out, cached, stream, body) -> None:
                usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
                         "prompt_tokens_details": {"cached_tokens": cached}}
                message: Dict[str, Any] = {"role": "assistant", "content": text or None}
                if call:
                    message["tool_calls"] = [{"id": "call_1", "type": "function",
                                              "function": {"name": call["name"], "arguments": call["arguments"]}}]
                if not stream:
                    self._json(200, {"id": "chatcmpl-standin", "object": "chat.completion", "created": 0,
                                     "model": model, "choices": [{"index": 0, "message": message,
                                                                  "finish_reason": "stop"}], "usage": usage})
                    return
                base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0, "model": model}
                pieces = [text[i:i + 40] for i in range(0, len(text), 40)] or [""]
                events: List[Tuple[Optional[str], Any]] = [
                    (None, {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
                    for p in pieces]
                events.append((None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
                if (body.get("stream_options") or {}).get("include_usage"):
                    events.append((None, {**base, "choices": [], "usage": usage}))
                events.append((None, "[DONE]"))
                self._sse(events)

            def _responses(self, model, text, call, inp, out, cached, stream, body) -> None:
                usage = {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out,
                         "input_tokens_details": {"cached_tokens": cached},
                         "output_tokens_details": {"reasoning_tokens": 0}}
                if call:
                    output = [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": call["name"],
                               "arguments": call["arguments"], "status": "completed"}]
                else:
                    output = [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                               "content": [{"type": "output_text", "text": text, "annotations": []}]}]
                response = {"id": "resp_standin", "object": "response", "created_at": 0, "model": model,
                            "status": "completed", "output": output, "usage": usage, "parallel_tool_calls": True,
                            "tool_choice": "auto", "tools": []}
                if not stream:
                    self._json(200, response)
                    return
                events: List[Tuple[Optional[str], Any]] = [
                    ("response.created", {"type": "response.created", "sequence_number": 0,
                                          "response": {**response, "status": "in_progress", "output": [],
                                                       "usage": None}})]
                if text:
                    events.append(("response.output_text.delta", {"type": "response.output_text.delta",
                                                                  "sequence_number": 1, "item_id": "msg_1",
                                                                  "output_index": 0, "content_index": 0,
                                                                  "delta": text, "logprobs": []}))
                events.append(("response.completed", {"type": "response.completed", "sequence_number": 2,
                                                      "response": response}))
                self._sse(events)

            def _messages(self, model, text, call, inp, out, cached, stream, body) -> None:
                # Anthropic's input_tokens leaves out the cache's: report them apart, as Anthropic does.
                usage = {"input_tokens": inp - cached, "output_tokens": out, "cache_read_input_tokens": cached,
                         "cache_creation_input_tokens": 0}
                content: List[Dict[str, Any]] = [{"type": "text", "text": text}] if text else []
                if call:
                    content.append({"type": "tool_use", "id": "toolu_1", "name": call["name"],
                                    "input": json.loads(call["arguments"])})
                message = {"id": "msg_standin", "type": "message", "role": "assistant", "model": model,
                           "content": content, "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
                if not stream:
                    self._json(200, message)
                    return
                start = {**message, "content": [], "stop_reason": None,
                         "usage": {**usage, "output_tokens": 1}}
                self._sse([
                    ("message_start", {"type": "message_start", "message": start}),
                    ("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}),
                    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": text}}),
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                          "stop_sequence": None},
                                       "usage": {"output_tokens": out}}),
                    ("message_stop", {"type": "message_stop"}),
                ])

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
