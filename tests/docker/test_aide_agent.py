"""The built-in aide agent end to end: aideml 0.2.2 in its offline-built image, in the Docker sandbox with
network none, every model call through mleray's LLM gateway to the STAND-IN provider (tests/llm_standin.py:
scripted AIDE-shaped replies, no real model). On titanic: a graded valid submission, the record's tokens
and dollars equal to what the stand-in reported, and the driver's real keys nowhere in the sandbox
(environment, files, /proc: a probe runs before and after aide inside it), the trial folder, the logs or the
record. Then a budget below what aide needs, and the OpenAI and Anthropic SDKs streaming through the relay."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from llm_standin import StandIn

from mleray.config import load_agent, load_sweep
from mleray.llm.accounting import Usage, cost_usd, price_for
from mleray.sandbox.images import build_agent
from mleray.sweep.trials import TrialJob, expand
from mleray.trial.runner import run_trial

CANARY = "sk-mleray-canary-"  # every real key below starts with it; the probe inside looks for the prefix only
PRICES = {"gpt-4o-mini": {"input": 0.15, "output": 0.6, "cached_input": 0.075},
          "claude-sonnet-4": {"input": 3.0, "output": 15.0, "cached_input": 0.3}}

PROBE = r'''
import os, sys
PREFIX = "sk-mleray-" + "canary-"
found, files = [], 0
for key, value in os.environ.items():
    if PREFIX in value:
        found.append("env " + key)
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for name in ("environ", "cmdline"):
            try:
                if PREFIX.encode() in open(f"/proc/{pid}/{name}", "rb").read():
                    found.append(f"/proc/{pid}/{name}")
            except OSError:
                pass
for top in ("/home", "/tmp", "/opt", "/etc", "/root", "/var", "/usr/local", "/run"):
    for root, dirs, names in os.walk(top):
        for n in names:
            p = os.path.join(root, n)
            try:
                if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > 8 << 20:
                    continue
                files += 1
                if PREFIX.encode() in open(p, "rb").read():
                    found.append(p)
            except OSError:
                pass
print("PROBE", sys.argv[1], "files", files, "found", found, flush=True)
'''

SDK_SCRIPT = r'''
import json, os
import anthropic, openai
out = {"base": os.environ["OPENAI_BASE_URL"]}
client = openai.OpenAI()
chunks = list(client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                             messages=[{"role": "user", "content": "plan a titanic model"}]))
out["chat_stream_text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
out["chat_stream_usage"] = [c.usage.prompt_tokens for c in chunks if c.usage]
events = list(client.responses.create(model="gpt-4o-mini", input="plan", stream=True))
out["responses_stream_last"] = events[-1].type
out["responses_stream_usage"] = events[-1].response.usage.input_tokens
claude = anthropic.Anthropic()
msg = claude.messages.create(model="claude-sonnet-4-20250514", max_tokens=50,
                             messages=[{"role": "user", "content": "plan"}])
out["anthropic_text"] = msg.content[0].text[:6]
with claude.messages.stream(model="claude-sonnet-4-20250514", max_tokens=50,
                            messages=[{"role": "user", "content": "plan"}]) as stream:
    final = stream.get_final_message()
out["anthropic_stream_usage"] = [final.usage.input_tokens, final.usage.output_tokens]
for name, call in (("openai_budget", lambda: client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "more"}])),
        ("anthropic_budget", lambda: claude.messages.create(
        model="claude-sonnet-4-20250514", max_tokens=5, messages=[{"role": "user", "content": "more"}]))):
    try:
        call()
        out[name] = "answered"
    except (openai.RateLimitError, anthropic.RateLimitError) as err:
        out[name] = [err.status_code, "LLM budget ran out" in str(err)]
print("SDK " + json.dumps(out), flush=True)
'''


@pytest.fixture(scope="module")
def aide_image(docker_client, base_image) -> str:
    """mleray-agent-aide:latest built offline on the base image (aideml and its imports from the host's pip)."""
    return build_agent(load_agent("aide"), base=base_image) or ""


def keys(monkeypatch, standin: StandIn) -> dict:
    real = {"OPENAI_API_KEY": CANARY + uuid.uuid4().hex, "ANTHROPIC_API_KEY": CANARY + uuid.uuid4().hex}
    for name, value in real.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_BASE_URL", standin.openai_url)  # the driver's upstream: the stand-in
    monkeypatch.setenv("ANTHROPIC_BASE_URL", standin.anthropic_url)
    return real


def run(tmp_path: Path, monkeypatch, image: str, command: list, env: dict, overrides: list, code: dict,
        time_limit: int = 300):
    agents = tmp_path / "agents"
    (agents / "probe").mkdir(parents=True)
    for name, text in code.items():
        (agents / "probe" / name).write_text(text)
    (agents / "aide-test.yaml").write_text(json.dumps({"image": image, "code": "probe", "command": command,
                                                       "env": env, "llm": True}))
    monkeypatch.setenv("MLERAY_AGENTS_DIR", str(agents))
    cfg = load_sweep(overrides=["agents=[aide-test]", "competitions=[titanic]", "seeds=1", "snapshot_interval=1",
                                "grace_period=2", f"tiers.cpu.time_limit={time_limit}", "tiers.cpu.memory_gb=2",
                                f"name=aide-{uuid.uuid4().hex[:6]}"]
                     + [f"llm.prices.{m}.{k}={v}" for m, p in PRICES.items() for k, v in p.items()] + overrides)
    spec = expand(cfg, ["titanic"])[0]
    record = run_trial(TrialJob.of(cfg, spec, tmp_path / "sweep", "docker"))
    folder = tmp_path / "sweep" / "trials" / spec.trial_id
    return record, folder, (folder / "agent.log").read_text(errors="replace")


def everything_in(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_aide_on_titanic_through_the_gateway(aide_image, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    with StandIn() as standin:
        real = keys(monkeypatch, standin)
        command = ["sh", "-c", "python3 /home/agent/probe.py before; python3 /opt/aide/run_aide.py; "
                   "python3 /home/agent/probe.py after"]
        env = {"AIDE_MODEL": "gpt-4o-mini", "AIDE_FEEDBACK_MODEL": "claude-sonnet-4-20250514", "AIDE_STEPS": "2"}
        record, folder, log = run(tmp_path, monkeypatch, aide_image, command, env, [], {"probe.py": PROBE})
    print(log[-3000:])
    assert record.isolation.get("network", "").startswith("none"), record.isolation
    assert record.valid_submission and record.score is not None and record.score > 0.7, (record.reason, log[-2000:])
    assert record.snapshots and record.snapshots[-1]["valid_submission"]
    # every call: aide's code model through the Responses API (its hard-coded public URL re-pointed), its
    # feedback through Anthropic messages; both reached the stand-in with the real key, and only it
    paths = [c["path"] for c in standin.calls]
    assert paths.count("/v1/responses") == 2 and paths.count("/v1/messages") == 2, paths
    assert set(standin.keys_seen) == {f"Bearer {real['OPENAI_API_KEY']}", real["ANTHROPIC_API_KEY"]}
    rep = standin.reported
    assert (record.llm_calls, record.llm_input_tokens, record.llm_output_tokens, record.llm_cached_tokens) == (
        4, rep["input"], rep["output"], rep["cached"])
    dollars = sum(cost_usd(Usage(u["input"], u["output"], u["cached"]), price_for(m, PRICES))
                  for m, u in standin.per_model.items())
    assert dollars > 0 and record.llm_cost_usd == pytest.approx(dollars, rel=1e-9)
    assert record.llm_budget_exhausted is None and record.llm_errors == 0 and record.llm_unpriced_models == []
    calls = [json.loads(x) for x in (folder / "llm.jsonl").read_text().splitlines()]
    assert [c["status"] for c in calls] == [200] * 4 and all(c["usage"] for c in calls)
    # the real keys: nowhere inside (two probes, before and after aide), nor in the folder, logs or record
    probes = [line for line in log.splitlines() if line.startswith("PROBE")]
    assert len(probes) == 2 and all(p.endswith("found []") for p in probes), probes
    assert int(probes[-1].split()[3]) > 100  # it did look at files
    blob = everything_in(folder) + json.dumps(record.to_dict(), default=str).encode() + caplog.text.encode()
    for value in real.values():
        assert value.encode() not in blob
    assert CANARY.encode() not in blob


def test_budget_stops_answers_and_the_record_says_so(aide_image, tmp_path, monkeypatch):
    with StandIn() as standin:
        keys(monkeypatch, standin)
        env = {"AIDE_MODEL": "gpt-4o-mini", "AIDE_FEEDBACK_MODEL": "gpt-4o-mini", "AIDE_STEPS": "3"}
        record, folder, log = run(tmp_path, monkeypatch, aide_image, ["python3", "/opt/aide/run_aide.py"], env,
                                  ["llm.max_tokens=1"], {}, time_limit=120)
    print(log[-2000:])
    # the first call fits (nothing spent yet); every one after it is answered 429 and never goes upstream
    assert len(standin.calls) == 1 and record.llm_calls == 1 and record.llm_refused >= 1
    assert record.llm_budget_exhausted and record.llm_budget_exhausted.startswith("llm.max_tokens=1 reached")
    assert record.llm_input_tokens == standin.reported["input"]
    assert record.status == "graded" and not record.timed_out
    assert "LLM budget ran out" in log
    refused = [json.loads(x) for x in (folder / "llm.jsonl").read_text().splitlines()][1:]
    assert refused and all(c["status"] == 429 and c["refused"].startswith("llm.max_tokens=1") for c in refused)


def test_sdks_stream_and_anthropic_through_the_relay(aide_image, tmp_path, monkeypatch):
    with StandIn() as standin:
        keys(monkeypatch, standin)
        record, folder, log = run(tmp_path, monkeypatch, aide_image, ["python3", "/home/agent/sdk.py"], {},
                                  ["llm.max_calls=4"], {"sdk.py": SDK_SCRIPT}, time_limit=120)
    line = next((x for x in log.splitlines() if x.startswith("SDK ")), None)
    assert line is not None, log[-2000:]
    out = json.loads(line[4:])
    assert out["base"].startswith("http://localhost:")
    assert out["chat_stream_text"].startswith("I will") and out["chat_stream_usage"][0] > 0
    assert out["responses_stream_last"] == "response.completed" and out["responses_stream_usage"] > 0
    assert out["anthropic_text"] == "I will" and out["anthropic_stream_usage"][1] > 0
    assert out["openai_budget"] == [429, True] and out["anthropic_budget"] == [429, True]  # not retried:
    assert len(standin.calls) == 4 and record.llm_calls == 4 and record.llm_refused == 2  # x-should-retry
    rep = standin.reported
    assert (record.llm_input_tokens, record.llm_output_tokens) == (rep["input"], rep["output"])
    streamed = [json.loads(x) for x in (folder / "llm.jsonl").read_text().splitlines()]
    assert [c.get("stream") for c in streamed[:4]] == [True, True, False, True]
