"""What an LLM call costs: tokens read from each API's usage object, dollars from the price table, and the
per-trial ledger with its budgets (calls, tokens, dollars), which the gateway consults before every call.

Tokens: `input` counts every prompt token (cached ones included), `cached` the part served from the
provider's prompt cache, `output` the completion (reasoning included). Dollars per million tokens:
uncached input at `input`, cached input at `cached_input` (the input price when not given), output at
`output`. A model with no price is counted in tokens, at $0, and named once in a warning.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

log = logging.getLogger(__name__)

OPENAI_CHAT, OPENAI_RESPONSES, ANTHROPIC = "chat.completions", "responses", "messages"


@dataclass(frozen=True)
class Usage:
    input: int = 0
    output: int = 0
    cached: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.input + other.input, self.output + other.output, self.cached + other.cached)

    @property
    def total(self) -> int:
        return self.input + self.output

    def to_dict(self) -> Dict[str, int]:
        return {"input_tokens": self.input, "output_tokens": self.output, "cached_tokens": self.cached}


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def usage_of(api: str, usage: Any) -> Optional[Usage]:
    """The Usage in one API's `usage` object (None when there is none). Anthropic's `input_tokens`
    leaves out the cache's tokens, which are added back here so that `input` means the same everywhere."""
    if not isinstance(usage, Mapping):
        return None
    if api == OPENAI_CHAT:
        details = usage.get("prompt_tokens_details") or {}
        return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")),
                     _int(details.get("cached_tokens") if isinstance(details, Mapping) else 0))
    if api == OPENAI_RESPONSES:
        details = usage.get("input_tokens_details") or {}
        return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
                     _int(details.get("cached_tokens") if isinstance(details, Mapping) else 0))
    read, made = _int(usage.get("cache_read_input_tokens")), _int(usage.get("cache_creation_input_tokens"))
    return Usage(_int(usage.get("input_tokens")) + read + made, _int(usage.get("output_tokens")), read)


def price_for(model: str, prices: Mapping[str, Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The price entry of `model`: its own, else the longest entry it extends with `-` (a dated release
    such as gpt-4o-2024-08-06 is priced as gpt-4o; gpt-4o-mini-... as gpt-4o-mini); None: unknown."""
    if model in prices:
        return prices[model]
    best = None
    for name in prices:
        if model.startswith(name + "-") and (best is None or len(name) > len(best)):
            best = name
    return prices[best] if best is not None else None


def cost_usd(usage: Usage, price: Optional[Mapping[str, Any]]) -> float:
    """Dollars for `usage` at `price` (per million tokens); 0.0 without a price."""
    if price is None:
        return 0.0
    p_in = float(price.get("input") or 0.0)
    p_cached = price.get("cached_input")
    p_cached = p_in if p_cached is None else float(p_cached)
    p_out = float(price.get("output") or 0.0)
    uncached = max(0, usage.input - usage.cached)
    return (uncached * p_in + usage.cached * p_cached + usage.output * p_out) / 1e6


@dataclass
class Budget:
    """A trial's LLM budgets; None: no limit."""

    max_cost_usd: Optional[float] = None
    max_tokens: Optional[int] = None  # input + output
    max_calls: Optional[int] = None


@dataclass
class Ledger:
    """One trial's LLM accounting, shared by the gateway's threads (every method takes the lock)."""

    prices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    calls: int = 0  # calls forwarded upstream (answered or not)
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    errors: int = 0  # upstream errors, transport failures and cut responses
    refused: int = 0  # calls answered by the gateway itself: budget, bounds, bad requests
    latency_s: float = 0.0
    exhausted: Optional[str] = None  # which budget ran out first
    unpriced: Dict[str, int] = field(default_factory=dict)  # model -> calls without a price
    models: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _in_flight: int = 0
    _streaming: Dict[int, Usage] = field(default_factory=dict, repr=False)  # usage seen so far in live streams

    def over_budget(self) -> Optional[str]:
        """Why no further call may go upstream (one line), or None. Counts the calls in flight against
        max_calls, so concurrent callers cannot overshoot it."""
        with self._lock:
            b = self.budget
            why = None
            if b.max_calls is not None and self.calls + self._in_flight >= b.max_calls:
                why = f"llm.max_calls={b.max_calls} reached ({self.calls} calls)"
            elif b.max_tokens is not None and self._spent_tokens() >= b.max_tokens:
                why = f"llm.max_tokens={b.max_tokens} reached ({self._spent_tokens()} tokens)"
            elif b.max_cost_usd is not None and self.cost >= b.max_cost_usd:
                why = f"llm.max_cost_usd={b.max_cost_usd:g} reached (${self.cost:.6f})"
            if why is None:
                self._in_flight += 1
                return None
            self.refused += 1
            if self.exhausted is None:
                self.exhausted = why
            return why

    def _spent_tokens(self) -> int:
        return self.usage.total + sum(u.total for u in self._streaming.values())

    def streaming(self, call: int, usage: Optional[Usage]) -> None:
        """The usage a stream has reported so far (counted against max_tokens before it is settled, so an
        agent that reads a stream's end and calls again at once is checked against it)."""
        if usage is not None:
            with self._lock:
                self._streaming[call] = usage

    def settle(self, model: str, usage: Optional[Usage], latency_s: float, error: bool, call: int = 0) -> float:
        """Books one forwarded call (after over_budget() let it through); returns its dollars."""
        with self._lock:
            self._streaming.pop(call, None)
            self._in_flight = max(0, self._in_flight - 1)
            self.calls += 1
            self.latency_s += latency_s
            self.errors += int(error)
            dollars = 0.0
            if usage is not None:
                price = price_for(model, self.prices)
                if price is None and usage.total:
                    if model not in self.unpriced:
                        log.warning("llm: no price for model %r in llm.prices; its tokens are counted at $0",
                                    model[:100])
                    self.unpriced[model] = self.unpriced.get(model, 0) + 1
                dollars = cost_usd(usage, price)
                self.usage = self.usage + usage
                self.cost += dollars
                per = self.models.setdefault(model[:100], {"calls": 0, "input_tokens": 0, "output_tokens": 0,
                                                           "cached_tokens": 0, "cost_usd": 0.0})
                per["calls"] += 1
                for key, value in usage.to_dict().items():
                    per[key] += value
                per["cost_usd"] = round(per["cost_usd"] + dollars, 9)
            return dollars

    def refuse(self) -> None:
        with self._lock:
            self.refused += 1

    def fields(self) -> Dict[str, Any]:
        """The record's `llm_*` fields."""
        with self._lock:
            return {"llm_calls": self.calls, "llm_input_tokens": self.usage.input,
                    "llm_output_tokens": self.usage.output, "llm_cached_tokens": self.usage.cached,
                    "llm_cost_usd": round(self.cost, 9), "llm_errors": self.errors, "llm_refused": self.refused,
                    "llm_latency_s": round(self.latency_s, 3), "llm_budget_exhausted": self.exhausted,
                    "llm_unpriced_models": sorted(self.unpriced), "llm_models": {k: dict(v) for k, v in
                                                                                 self.models.items()}}
