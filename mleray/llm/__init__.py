"""The LLM gateway for agents that declare `llm: true`: keys stay outside, every token is on the record.

- `accounting.py`: usage per API, dollars from the price table, the per-trial `Ledger` and its budgets.
- `keys.py`: the upstream (URLs and keys) and how it travels from the driver to the node (`ship`/`receive`).
- `gateway.py`: the HTTP server on a unix socket the sandbox reaches (OpenAI chat/responses, Anthropic
  messages, streaming), bounded, writing `llm.jsonl`.
- `inside.py`: the mount, environment and relay inside the sandbox.

`LLMJob` is what a TrialJob carries (`LLMJob.of(cfg.llm)` in the driver); `trial_gateway` runs one trial's
gateway around its sandbox.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

from mleray.llm.accounting import Budget, Ledger
from mleray.llm.gateway import LLMGateway
from mleray.llm.inside import SOCKET_NAME, agent_env, place_relay
from mleray.llm.keys import Upstream, receive, ship, trial_token

__all__ = ["LLMJob", "Ledger", "LLMGateway", "Upstream", "trial_gateway"]

LOG_NAME = "llm.jsonl"


@dataclass
class LLMJob:
    """The sweep's `llm` settings a trial needs, and its upstream (a Ray reference to it, see keys.py)."""

    prices: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    max_cost_usd: Optional[float] = None
    max_tokens: Optional[int] = None
    max_calls: Optional[int] = None
    max_concurrency: int = 4
    max_request_mb: float = 8.0
    max_response_mb: float = 32.0
    max_log_mb: float = 64.0
    timeout_s: float = 600.0
    upstream: Any = field(default=None, repr=False)  # keys.Upstream, or a Ray ObjectRef to one

    @classmethod
    def of(cls, cfg: Any, env: Optional[Dict[str, str]] = None) -> "LLMJob":
        """From a SweepConfig's `llm` section (config.LLMConfig), in the driver: the upstream read from the
        driver's environment and shipped (keys.ship)."""
        prices = {name: {k: v for k, v in vars(p).items() if v is not None} if not isinstance(p, dict) else dict(p)
                  for name, p in (cfg.prices or {}).items()}
        upstream = Upstream.from_env(cfg.upstream, cfg.anthropic_upstream, env)
        return cls(prices, cfg.max_cost_usd, cfg.max_tokens, cfg.max_calls, cfg.max_concurrency,
                   cfg.max_request_mb, cfg.max_response_mb, cfg.max_log_mb, cfg.timeout_s, ship(upstream))


@contextlib.contextmanager
def trial_gateway(job: Optional[LLMJob], trial_root: Path) -> Iterator[Tuple[LLMGateway, Dict[str, str], Path]]:
    """Runs one trial's gateway (socket in a short private temp folder, log at trial_root/llm.jsonl) for the
    `with` block; yields it, the agent's environment and the socket path for SandboxSpec.llm_socket."""
    job = job or LLMJob()
    ledger = Ledger(prices=job.prices, budget=Budget(job.max_cost_usd, job.max_tokens, job.max_calls))
    token = trial_token()
    with tempfile.TemporaryDirectory(prefix="mleray-llm-") as tmp:
        sock = Path(tmp) / SOCKET_NAME
        gateway = LLMGateway(sock, receive(job.upstream), ledger, token, Path(trial_root) / LOG_NAME,
                             max_request_bytes=int(job.max_request_mb * 2**20),
                             max_response_bytes=int(job.max_response_mb * 2**20),
                             max_concurrency=job.max_concurrency, upstream_timeout=job.timeout_s,
                             max_log_bytes=int(job.max_log_mb * 2**20))
        with gateway:
            place_relay(Path(tmp))
            yield gateway, agent_env(token), sock
