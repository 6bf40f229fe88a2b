"""The upstream keys, from the driver to the node's gateway, never in clear where it could be written down.

The driver reads `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` and `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` from
its own environment when the sweep starts (`Upstream.from_env`). How they reach the gateway on the trial's
node: the driver `ray.put`s them once (`ship`), and the TrialJob carries only the object's reference. So
the keys are not in the actor's creation arguments (kept in Ray's GCS tables), not in a runtime_env (which
Ray's dashboard and state API show), not in any log line; they move only over Ray's own authenticated
object transfer (token auth is on by default) and live in the driver's object store and the gateway's
memory. Without Ray (a trial run in-process, tests) the job carries the `Upstream` itself. Either way
`Upstream`'s repr and str show no key (`***`), dumps of a TrialJob (dataclasses.asdict) keep the masked
object, and a pickled `Upstream` leaves its keys behind: a job serialized some other way carries none, and
the node's gateway falls back to the keys in its own environment.

Inside the sandbox the agent gets a per-trial token (`trial_token`), which the gateway checks and
which is worth nothing anywhere else.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Dict, Optional

OPENAI_DEFAULT = "https://api.openai.com/v1"
ANTHROPIC_DEFAULT = "https://api.anthropic.com"


class Upstream:
    """Where the gateway forwards to and with which keys. Its repr masks the keys."""

    __slots__ = ("openai_url", "anthropic_url", "_openai_key", "_anthropic_key")

    def __init__(self, openai_url: str = OPENAI_DEFAULT, anthropic_url: str = ANTHROPIC_DEFAULT,
                 openai_key: str = "", anthropic_key: str = ""):
        self.openai_url = openai_url.rstrip("/")
        self.anthropic_url = anthropic_url.rstrip("/")
        self._openai_key = openai_key
        self._anthropic_key = anthropic_key

    @classmethod
    def from_env(cls, openai_url: Optional[str] = None, anthropic_url: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None) -> "Upstream":
        """The driver's: `openai_url` (llm.upstream) over $OPENAI_BASE_URL over OpenAI's; the same for
        Anthropic (llm.anthropic_upstream, $ANTHROPIC_BASE_URL); the keys from the environment."""
        env = dict(os.environ if env is None else env)
        return cls(openai_url or env.get("OPENAI_BASE_URL") or OPENAI_DEFAULT,
                   anthropic_url or env.get("ANTHROPIC_BASE_URL") or ANTHROPIC_DEFAULT,
                   env.get("OPENAI_API_KEY", ""), env.get("ANTHROPIC_API_KEY", ""))

    def key(self, provider: str) -> str:
        return self._openai_key if provider == "openai" else self._anthropic_key

    def url(self, provider: str) -> str:
        return self.openai_url if provider == "openai" else self.anthropic_url

    def secrets(self) -> list:
        """The key texts, for a caller that must scrub them from something it writes."""
        return [k for k in (self._openai_key, self._anthropic_key) if k]

    def __repr__(self) -> str:
        return (f"Upstream(openai_url={self.openai_url!r}, anthropic_url={self.anthropic_url!r}, "
                f"openai_key={'***' if self._openai_key else ''!r}, "
                f"anthropic_key={'***' if self._anthropic_key else ''!r})")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Upstream) and repr(self) == repr(other) and self.secrets() == other.secrets()

    def __deepcopy__(self, memo: Any) -> "Upstream":
        return self

    def __getstate__(self) -> tuple:
        """Pickled without its keys: a job serialized anywhere but through `ship` carries none (the node's
        gateway then reads its own environment's, see `receive`)."""
        return (self.openai_url, self.anthropic_url, "", "")

    def __setstate__(self, state: tuple) -> None:
        self.openai_url, self.anthropic_url, self._openai_key, self._anthropic_key = state

    def sealed(self) -> "_Sealed":
        return _Sealed((self.openai_url, self.anthropic_url, self._openai_key, self._anthropic_key))


class _Sealed:
    """What `ship` puts in Ray's object store: the upstream with its keys (a plain tuple inside)."""

    __slots__ = ("state",)

    def __init__(self, state: tuple):
        self.state = state

    def __repr__(self) -> str:
        return "_Sealed(***)"

    def __getstate__(self) -> tuple:
        return self.state

    def __setstate__(self, state: tuple) -> None:
        self.state = state

    def open(self) -> Upstream:
        return Upstream(*self.state)


_shipped: Dict[str, Any] = {}


def ship(upstream: Upstream) -> Any:
    """What a TrialJob carries: a Ray object reference to `upstream` when Ray is up in this process (one
    `ray.put` per distinct upstream), else `upstream` itself."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return upstream
    if not ray.is_initialized():
        return upstream
    # Job ids start again at 01000000 in every Ray session; the driver's node id does not repeat, so a
    # reference put in an earlier session (ray.shutdown, then ray.init) is never handed out again.
    context = ray.get_runtime_context()
    tag = "|".join([context.get_node_id(), context.get_job_id(), repr(upstream), *upstream.secrets()])
    ref = _shipped.get(tag)
    if ref is None:
        ref = _shipped[tag] = ray.put(upstream.sealed())
    return ref


def receive(carried: Any) -> Upstream:
    """The Upstream a TrialJob carried (`ship`'s answer); a default one (the node's environment) for None."""
    if carried is None:
        return Upstream.from_env()
    if isinstance(carried, Upstream):
        if carried.secrets():
            return carried
        node = Upstream.from_env()  # pickled on the way (keys dropped): this node's own keys, the same URLs
        return Upstream(carried.openai_url, carried.anthropic_url, node.key("openai"), node.key("anthropic"))
    import ray

    value = ray.get(carried)
    if not isinstance(value, _Sealed):
        raise TypeError("the TrialJob's llm upstream is not one keys.ship made")
    return value.open()


def trial_token() -> str:
    """A fresh per-trial token for the agent: what it sends as its API key; the gateway checks it."""
    return "mleray-trial-" + secrets.token_urlsafe(24)
