"""What the LLM gateway adds to a model call: through the gateway (its unix socket) ÷ straight to the provider.

The provider is the tests' STAND-IN (tests/llm_standin.py: a local OpenAI/Anthropic-compatible server with
scripted replies), so the numbers are the gateway's own cost, not a model's. In one process, alternating,
`--reps` rounds of `--calls` calls each (median per-call latency reported), for: a small chat completion, the
same streamed (SSE relayed chunk by chunk, usage parsed on the way), and a 4 MB request (an agent that sends
whole files). Also the Python heap the gateway's process grew by (tracemalloc peak) during the 4 MB calls.
The relay inside the sandbox (a byte pipe on localhost) is not in this figure.

Target: at most 5 ms added per small or streamed call (a model call takes 1-60 s, so a ratio against a
local 1 ms stand-in says little; it is reported too). Writes bench/results/llm_gateway.json and .md.

    python bench/llm_gateway.py [--calls 50] [--reps 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from llm_standin import StandIn  # noqa: E402

from mleray.llm import LLMJob, trial_gateway  # noqa: E402
from mleray.llm.keys import Upstream  # noqa: E402

RESULTS = ROOT / "bench" / "results"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def one(connect, body: bytes, token: str) -> float:
    t0 = time.perf_counter()
    conn = connect()
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200, resp.status
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    small = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "plan"}]}).encode()
    streamed = json.dumps({"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                           "messages": [{"role": "user", "content": "plan"}]}).encode()
    big = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (4 << 20)}]}).encode()
    cases = {"small": (small, args.calls), "stream": (streamed, args.calls),
             "request_4mb": (big, max(3, args.calls // 10))}
    times: dict = {name: {"direct": [], "gateway": []} for name in cases}
    peaks = {"direct": 0.0, "gateway": 0.0}
    with StandIn() as standin, tempfile.TemporaryDirectory() as tmp:
        up = Upstream(standin.openai_url, standin.anthropic_url, "sk-bench")
        with trial_gateway(LLMJob(upstream=up), Path(tmp)) as (gw, env, sock):
            gw.log_path = None  # llm.jsonl's write is measured apart by the tests; this is the relay's cost
            token = env["OPENAI_API_KEY"]
            for _ in range(args.reps):
                for name, (body, n) in cases.items():
                    for side in ("direct", "gateway"):
                        connect = ((lambda: http.client.HTTPConnection("127.0.0.1", standin.port, timeout=60))
                                   if side == "direct" else (lambda: UnixConnection(str(sock))))
                        per = [one(connect, body, token if side == "gateway" else "sk-bench") for _ in range(n)]
                        times[name][side].append(statistics.median(per))
            for side in ("direct", "gateway"):  # apart: tracemalloc slows what it traces
                connect = ((lambda: http.client.HTTPConnection("127.0.0.1", standin.port, timeout=60))
                           if side == "direct" else (lambda: UnixConnection(str(sock))))
                tracemalloc.start()
                one(connect, big, token if side == "gateway" else "sk-bench")
                peaks[side] = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            calls = gw.ledger.fields()["llm_calls"]
    summary = {}
    for name, sides in times.items():
        d, g = statistics.median(sides["direct"]), statistics.median(sides["gateway"])
        summary[name] = {"direct_ms": round(d * 1000, 3), "gateway_ms": round(g * 1000, 3), "ratio": round(g / d, 2),
                         "added_ms": round((g - d) * 1000, 3)}
    result = {"when": datetime.now(timezone.utc).isoformat(), "calls_per_round": args.calls, "rounds": args.reps,
              "gateway_calls_booked": calls, "cases": summary,
              "heap_peak_mb_4mb_request": {k: round(v, 1) for k, v in peaks.items()},
              "target": "added_ms <= 5 for small and streamed calls",
              "met": summary["small"]["added_ms"] <= 5 and summary["stream"]["added_ms"] <= 5,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_1m": round(os.getloadavg()[0], 2)}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "llm_gateway"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {n} | {s['direct_ms']} | {s['gateway_ms']} | {s['ratio']} | {s['added_ms']} |"
                     for n, s in summary.items())
    out.with_suffix(".md").write_text(f"""# LLM gateway overhead

`python bench/llm_gateway.py --calls {args.calls} --reps {args.reps}` on {result['when'][:10]}: per-call median
latency straight to the stand-in provider and through mleray's gateway (unix socket, key swap, accounting,
bounds), in the same process, alternating. {os.cpu_count()} CPUs, load average {result['machine']['load_average_1m']}
(a shared machine: expect ±30 % per run). Target: at most 5 ms added per small or streamed call:
{'met' if result['met'] else 'NOT met'}.

| case | direct ms | gateway ms | ratio | added ms |
|---|---|---|---|---|
{rows}

Python heap peak of one 4 MB request (tracemalloc, the whole process: the stand-in's share is the direct
figure): direct {peaks['direct']:.1f} MB, through the gateway {peaks['gateway']:.1f} MB; the gateway reads the
body whole (it is bounded by llm.max_request_mb) and parses it once.
""")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
