"""The gateway under bwrap, through the real runner: a scripted stand-in agent (stdlib only: urllib) calls
chat completions plain and streamed and Anthropic messages through the relay on localhost (network none),
then writes the sample submission; the record's tokens equal what the stand-in provider reported, the 4th
call is refused by llm.max_calls=3, and the driver's key is nowhere in the trial folder or the record."""

from __future__ import annotations

import json
import uuid

from helpers import require
from llm_standin import StandIn

from mleray.config import load_sweep
from mleray.sandbox.bwrap.sandbox import BwrapSandbox
from mleray.sweep.trials import TrialJob, expand
from mleray.trial.runner import run_trial

AGENT = r'''
import glob, json, os, shutil, urllib.error, urllib.request
base, token = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
out = {"env_keys": sorted(k for k in os.environ if "KEY" in k), "base": base}

def post(url, body, headers):
    req = urllib.request.Request(url, json.dumps(body).encode(), {**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()

auth = {"Authorization": "Bearer " + token}
msgs = [{"role": "user", "content": "plan a titanic model"}]
st, body = post(base + "/chat/completions", {"model": "gpt-4o-mini", "messages": msgs}, auth)
out["chat"] = [st, json.loads(body)["choices"][0]["message"]["content"][:6]]
st, body = post(base + "/chat/completions", {"model": "gpt-4o-mini", "messages": msgs, "stream": True}, auth)
out["stream"] = [st, body.count("data:"), "prompt_tokens" in body]
st, body = post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
                {"model": "claude-sonnet-4", "max_tokens": 20, "messages": msgs},
                {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"})
out["anthropic"] = [st, json.loads(body)["content"][0]["text"][:6]]
st, body = post(base + "/chat/completions", {"model": "gpt-4o-mini", "messages": msgs}, auth)
out["fourth"] = [st, "budget ran out" in body]
print("AGENT " + json.dumps(out), flush=True)
shutil.copyfile(sorted(glob.glob("/home/data/sample_submission*.csv"))[0], "/home/submission/submission.csv")
'''


def test_llm_agent_under_bwrap(tmp_path, monkeypatch):
    require(BwrapSandbox.problem([]) is None, f"bwrap cannot run here: {BwrapSandbox.problem([])}")
    key = "sk-mleray-bwrap-canary-" + uuid.uuid4().hex
    with StandIn() as standin:
        monkeypatch.setenv("OPENAI_API_KEY", key)
        monkeypatch.setenv("ANTHROPIC_API_KEY", key)
        monkeypatch.setenv("OPENAI_BASE_URL", standin.openai_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", standin.anthropic_url)
        agents = tmp_path / "agents"
        (agents / "scripted").mkdir(parents=True)
        (agents / "scripted" / "agent.py").write_text(AGENT)
        (agents / "scripted-llm.yaml").write_text(json.dumps({
            "code": "scripted", "command": ["python3", "/home/agent/agent.py"], "llm": True}))
        monkeypatch.setenv("MLERAY_AGENTS_DIR", str(agents))
        cfg = load_sweep(overrides=["agents=[scripted-llm]", "competitions=[titanic]", "seeds=1", "name=llm-bwrap",
                                    "tiers.cpu.time_limit=60", "llm.max_calls=3",
                                    "llm.prices.gpt-4o-mini.input=0.15", "llm.prices.gpt-4o-mini.output=0.6"])
        spec = expand(cfg, ["titanic"])[0]
        record = run_trial(TrialJob.of(cfg, spec, tmp_path / "sweep", "bwrap"))
    folder = tmp_path / "sweep" / "trials" / spec.trial_id
    log = (folder / "agent.log").read_text()
    line = next((x for x in log.splitlines() if x.startswith("AGENT ")), None)
    assert line is not None, log[-2000:]
    out = json.loads(line[6:])
    assert out["base"] == "http://localhost:5001/v1" and out["env_keys"] == ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
    assert out["chat"] == [200, "I will"] and out["anthropic"] == [200, "I will"]
    assert out["stream"][0] == 200 and out["stream"][1] > 3 and out["stream"][2]
    assert out["fourth"] == [429, True]
    assert record.valid_submission and record.llm_calls == 3 and record.llm_refused == 1
    rep = standin.reported
    assert (record.llm_input_tokens, record.llm_output_tokens) == (rep["input"], rep["output"])
    assert record.llm_budget_exhausted.startswith("llm.max_calls=3")
    assert record.llm_unpriced_models == ["claude-sonnet-4"]
    assert record.llm_cost_usd > 0
    blob = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file()) + json.dumps(record.to_dict()).encode()
    assert key.encode() not in blob and b"sk-mleray-bwrap-canary-" not in blob
