"""The gateway in-process, over its real unix socket, in front of the stand-in provider (tests/llm_standin.py):
chat completions, responses and Anthropic messages, plain and streamed; accounting equal to what the
stand-in reported; budgets answered 429 with x-should-retry false; bounds; upstream errors passed through;
the real key only upstream, never in an answer or llm.jsonl."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path

import pytest
from llm_standin import StandIn

from mleray.llm import LLMJob, trial_gateway
from mleray.llm.accounting import Budget, Ledger, Usage, cost_usd, price_for, usage_of
from mleray.llm.keys import Upstream

REAL_KEY = "sk-real-driver-key-7f3a9c"  # what the driver holds; must reach only the stand-in
PRICES = {"gpt-4o-mini": {"input": 0.15, "output": 0.6, "cached_input": 0.075},
          "claude-sonnet-4": {"input": 3.0, "output": 15.0, "cached_input": 0.3}}


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def call(sock: Path, path: str, body: dict, token: str, anthropic: bool = False):
    conn = UnixConnection(str(sock))
    headers = {"Content-Type": "application/json"}
    headers.update({"x-api-key": token, "anthropic-version": "2023-06-01"} if anthropic
                   else {"Authorization": f"Bearer {token}"})
    conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


@pytest.fixture
def standin():
    with StandIn() as s:
        yield s


def gateway_for(standin, tmp_path, **budget):
    up = Upstream(standin.openai_url, standin.anthropic_url, REAL_KEY, REAL_KEY)
    job = LLMJob(prices=PRICES, upstream=up, **budget)
    return trial_gateway(job, tmp_path)


def sse_events(data: bytes):
    return [json.loads(line[5:]) for line in data.decode().splitlines()
            if line.startswith("data:") and line[5:].strip() != "[DONE]"]


def test_every_api_plain_and_streamed_is_counted_as_the_standin_reported(standin, tmp_path):
    messages = [{"role": "user", "content": "Write a model for titanic. " * 20}]
    with gateway_for(standin, tmp_path) as (gw, env, sock):
        token = env["OPENAI_API_KEY"]
        assert token != REAL_KEY and REAL_KEY not in json.dumps(env)
        st, _, data = call(sock, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": messages}, token)
        assert st == 200 and "```python" in json.loads(data)["choices"][0]["message"]["content"]
        st, _, data = call(sock, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": messages,
                                                          "stream": True}, token)
        events = sse_events(data)
        assert st == 200 and "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        assert events[-1]["usage"]["prompt_tokens"] > 0  # the gateway asked for the stream's usage
        st, _, data = call(sock, "/v1/responses", {"model": "gpt-4o-mini", "input": messages}, token)
        assert st == 200 and json.loads(data)["output"][0]["content"][0]["text"].startswith("I will")
        st, _, data = call(sock, "/v1/responses", {"model": "gpt-4o-mini-2024-07-18", "input": messages,
                                                   "stream": True}, token)
        assert st == 200 and sse_events(data)[-1]["type"] == "response.completed"
        st, _, data = call(sock, "/v1/messages", {"model": "claude-sonnet-4", "max_tokens": 100,
                                                  "messages": messages}, token, anthropic=True)
        assert st == 200 and json.loads(data)["content"][0]["type"] == "text"
        st, _, data = call(sock, "/v1/messages", {"model": "claude-sonnet-4-20250514", "max_tokens": 100,
                                                  "messages": messages, "stream": True}, token, anthropic=True)
        assert st == 200 and sse_events(data)[-1]["type"] == "message_stop"
        fields = gw.ledger.fields()
    assert standin.keys_seen == [f"Bearer {REAL_KEY}"] * 4 + [REAL_KEY] * 2
    assert fields["llm_calls"] == 6 and fields["llm_errors"] == 0
    rep = standin.reported
    assert (fields["llm_input_tokens"], fields["llm_output_tokens"], fields["llm_cached_tokens"]) == (
        rep["input"], rep["output"], rep["cached"])
    expected = 0.0
    for model, u in standin.per_model.items():
        expected += cost_usd(Usage(u["input"], u["output"], u["cached"]), price_for(model, PRICES))
    assert fields["llm_cost_usd"] == pytest.approx(expected, rel=1e-9) and expected > 0
    assert fields["llm_unpriced_models"] == [] and fields["llm_budget_exhausted"] is None
    lines = [json.loads(x) for x in (tmp_path / "llm.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(x["status"] == 200 and x["usage"]["input_tokens"] > 0 for x in lines)
    assert [x["stream"] for x in lines] == [False, True, False, True, False, True]
    assert all("time" in x and x["elapsed_s"] >= 0 and x["request"] and x["response"] for x in lines)
    assert REAL_KEY not in (tmp_path / "llm.jsonl").read_text()


def test_budget_past_max_tokens_is_a_429_the_sdks_do_not_retry(standin, tmp_path):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 400}]}
    with gateway_for(standin, tmp_path, max_tokens=150) as (gw, env, sock):
        answers = [call(sock, "/v1/chat/completions", body, env["OPENAI_API_KEY"]) for _ in range(4)]
        fields = gw.ledger.fields()
        st, headers, data = call(sock, "/v1/messages", {**body, "model": "claude-sonnet-4", "max_tokens": 5},
                                 env["ANTHROPIC_API_KEY"], anthropic=True)
    statuses = [a[0] for a in answers]
    assert statuses[0] == 200 and 429 in statuses
    first_refusal = statuses.index(429)
    assert all(s == 429 for s in statuses[first_refusal:])
    st429, h429, d429 = answers[first_refusal]
    assert h429.get("x-should-retry") == "false"
    assert "budget ran out" in json.loads(d429)["error"]["message"] and "llm.max_tokens=150" in d429.decode()
    assert st == 429 and json.loads(data)["type"] == "error"
    assert "llm.max_tokens" in json.loads(data)["error"]["message"]
    assert fields["llm_budget_exhausted"].startswith("llm.max_tokens=150 reached")
    assert fields["llm_calls"] == first_refusal == len(standin.calls)  # refused calls never went upstream
    assert fields["llm_refused"] == 4 - first_refusal


def test_max_calls_and_max_cost(standin, tmp_path):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    with gateway_for(standin, tmp_path, max_calls=2) as (gw, env, sock):
        assert [call(sock, "/v1/chat/completions", body, env["OPENAI_API_KEY"])[0] for _ in range(3)] == [200, 200, 429]
        assert gw.ledger.fields()["llm_budget_exhausted"].startswith("llm.max_calls=2")
    with gateway_for(standin, tmp_path / "b", max_cost_usd=1e-9) as (gw, env, sock):
        assert [call(sock, "/v1/chat/completions", body, env["OPENAI_API_KEY"])[0] for _ in range(2)] == [200, 429]
        assert gw.ledger.fields()["llm_budget_exhausted"].startswith("llm.max_cost_usd=1e-09")


def test_wrong_token_bad_body_unknown_path_and_size(standin, tmp_path):
    with gateway_for(standin, tmp_path) as (gw, env, sock):
        token = env["OPENAI_API_KEY"]
        assert call(sock, "/v1/chat/completions", {"model": "m"}, REAL_KEY)[0] == 401  # even the real key
        assert call(sock, "/v1/embeddings", {"model": "m"}, token)[0] == 404
        conn = UnixConnection(str(sock))
        conn.request("POST", "/v1/chat/completions", body=b"not json",
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert conn.getresponse().status == 400
        gw.max_request_bytes = 1000
        st, _, data = call(sock, "/v1/chat/completions", {"model": "m", "messages": "y" * 2000}, token)
        assert st == 413 and "limit" in json.loads(data)["error"]["message"]
    assert standin.calls == []


def test_upstream_errors_pass_through_and_count(tmp_path):
    with StandIn(fail_status=500) as failing:
        up = Upstream(failing.openai_url, failing.anthropic_url, REAL_KEY, REAL_KEY)
        with trial_gateway(LLMJob(upstream=up), tmp_path) as (gw, env, sock):
            st, _, data = call(sock, "/v1/chat/completions", {"model": "gpt-x", "messages": []},
                               env["OPENAI_API_KEY"])
            fields = gw.ledger.fields()
    assert st == 500 and json.loads(data)["error"]["message"] == "stand-in upstream says no"
    assert fields["llm_errors"] == 1 and fields["llm_calls"] == 1
    with trial_gateway(LLMJob(upstream=Upstream("http://127.0.0.1:9/v1", "http://127.0.0.1:9", REAL_KEY)),
                       tmp_path / "down") as (gw, env, sock):
        st, _, data = call(sock, "/v1/chat/completions", {"model": "gpt-x"}, env["OPENAI_API_KEY"])
    assert st == 502 and "could not be reached" in json.loads(data)["error"]["message"]


def test_key_echoed_by_upstream_is_scrubbed(tmp_path):
    with StandIn() as s:
        s.code = f"print('{REAL_KEY}')"
        up = Upstream(s.openai_url, s.anthropic_url, REAL_KEY, "")
        with trial_gateway(LLMJob(upstream=up), tmp_path) as (gw, env, sock):
            st, _, data = call(sock, "/v1/chat/completions", {"model": "m", "messages": []}, env["OPENAI_API_KEY"])
    assert st == 200 and REAL_KEY not in data.decode() and "***" in data.decode()
    assert REAL_KEY not in (tmp_path / "llm.jsonl").read_text()


def test_unknown_model_counted_with_one_warning(standin, tmp_path, caplog):
    body = {"model": "mystery-model", "messages": [{"role": "user", "content": "hi"}]}
    with gateway_for(standin, tmp_path) as (gw, env, sock), caplog.at_level("WARNING"):
        for _ in range(2):
            assert call(sock, "/v1/chat/completions", body, env["OPENAI_API_KEY"])[0] == 200
        fields = gw.ledger.fields()
    assert fields["llm_unpriced_models"] == ["mystery-model"] and fields["llm_cost_usd"] == 0
    assert fields["llm_input_tokens"] == standin.reported["input"] > 0
    assert sum("no price for model 'mystery-model'" in r.getMessage() for r in caplog.records) == 1


def test_concurrency_is_bounded(tmp_path):
    gate = threading.Event()
    with StandIn() as s:
        original = s.text_for

        def slow(body):
            gate.wait(10)
            return original(body)

        s.text_for = slow
        up = Upstream(s.openai_url, s.anthropic_url, REAL_KEY)
        with trial_gateway(LLMJob(upstream=up, max_concurrency=2), tmp_path) as (gw, env, sock):
            results = []
            threads = [threading.Thread(target=lambda: results.append(
                call(sock, "/v1/chat/completions", {"model": "m", "messages": []}, env["OPENAI_API_KEY"])[0]))
                for _ in range(2)]
            for t in threads:
                t.start()
            for _ in range(100):
                if len(s.calls) == 2:
                    break
                threading.Event().wait(0.05)
            third = call(sock, "/v1/chat/completions", {"model": "m", "messages": []}, env["OPENAI_API_KEY"])
            gate.set()
            for t in threads:
                t.join(10)
    assert third[0] == 429 and "at once" in json.loads(third[2])["error"]["message"]
    assert sorted(results) == [200, 200]


def test_usage_shapes_and_prices():
    assert usage_of("chat.completions", {"prompt_tokens": 10, "completion_tokens": 3,
                                         "prompt_tokens_details": {"cached_tokens": 4}}) == Usage(10, 3, 4)
    assert usage_of("responses", {"input_tokens": 7, "output_tokens": 2,
                                  "input_tokens_details": {"cached_tokens": 1}}) == Usage(7, 2, 1)
    assert usage_of("messages", {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 3,
                                 "cache_creation_input_tokens": 1}) == Usage(9, 2, 3)
    assert usage_of("chat.completions", None) is None
    assert price_for("gpt-4o-mini-2024-07-18", {"gpt-4o": {"input": 1}, "gpt-4o-mini": {"input": 2}}) == {"input": 2}
    assert price_for("gpt-4", {"gpt-4o": {}}) is None
    assert cost_usd(Usage(1_000_000, 1_000_000, 500_000), {"input": 2, "output": 8, "cached_input": 1}) == 9.5
    ledger = Ledger(budget=Budget(max_calls=1))
    assert ledger.over_budget() is None and ledger.over_budget() is not None  # the one in flight counts


def test_upstream_repr_and_pickle_hide_the_key():
    import copy
    import pickle

    up = Upstream.from_env(env={"OPENAI_API_KEY": REAL_KEY, "ANTHROPIC_API_KEY": REAL_KEY + "a"})
    assert REAL_KEY not in repr(up) and REAL_KEY not in str(LLMJob(upstream=up))
    assert REAL_KEY.encode() not in pickle.dumps(up) and pickle.loads(pickle.dumps(up)).secrets() == []
    assert pickle.loads(pickle.dumps(up.sealed())).open().key("openai") == REAL_KEY  # what ship() puts in Ray
    assert copy.deepcopy(up) is up
    assert up.url("openai") == "https://api.openai.com/v1"


def test_an_upstream_pickled_without_keys_takes_the_nodes(monkeypatch):
    import pickle

    from mleray.llm.keys import receive

    travelled = pickle.loads(pickle.dumps(Upstream("http://up.invalid/v1", "http://up.invalid", REAL_KEY, REAL_KEY)))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-node-own")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    got = receive(travelled)
    assert got.url("openai") == "http://up.invalid/v1" and got.key("openai") == "sk-node-own"
    assert got.key("anthropic") == ""


def test_a_streams_tokens_count_before_it_is_booked(standin, tmp_path):
    """The agent reads a stream's last event and calls again at once: the next call is checked against
    the stream's tokens even if the gateway has not booked it yet."""
    ledger = Ledger(budget=Budget(max_tokens=100))
    assert ledger.over_budget() is None
    ledger.streaming(1, Usage(90, 20, 0))
    assert ledger.over_budget().startswith("llm.max_tokens=100 reached (110 tokens)")
    ledger.settle("m", Usage(90, 20, 0), 0.1, False, call=1)
    assert ledger.fields()["llm_input_tokens"] == 90 and ledger._spent_tokens() == 110
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x" * 400}]}
    with gateway_for(standin, tmp_path, max_tokens=150) as (gw, env, sock):
        assert [call(sock, "/v1/chat/completions", body, env["OPENAI_API_KEY"])[0] for _ in range(2)] == [200, 429]
