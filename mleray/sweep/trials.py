"""Expanding a sweep config into trial specs with stable ids (agent/competition/tier/seed), and the
job the driver hands each trial's actor."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, List
from urllib.parse import urlsplit, urlunsplit

from mleray.config import SweepConfig, TierConfig


@dataclass(frozen=True)
class TrialSpec:
    """One trial: what to run, where, with which resources. Its id is stable across reruns."""

    sweep: str
    agent: str
    competition: str
    tier: str
    seed: int
    resources: TierConfig

    @cached_property
    def trial_id(self) -> str:  # cached: a resume tests every trial's id against the done set
        return trial_id(self.agent, self.competition, self.tier, self.seed)

    def identity(self) -> dict:
        return {"sweep": self.sweep, "trial_id": self.trial_id, "agent": self.agent,
                "competition_id": self.competition, "tier": self.tier, "seed": self.seed}

    def to_dict(self) -> dict:
        return {**self.identity(), "resources": asdict(self.resources)}


@dataclass(frozen=True)
class TrialJob:
    """One attempt of a trial, as the driver hands it to its actor: the spec, the sweep's location
    (`SweepStore.location`), the attempt, the sandbox kind, and the few sweep settings a trial reads.
    Not the whole SweepConfig: a job is pickled into every actor, so it stays small."""

    spec: TrialSpec
    location: str
    attempt: int
    sandbox_kind: str
    description: str  # a DescriptionKind value
    snapshot_interval: float
    grace_period: float
    max_submission_mb: float = 1024.0
    llm: Any = None  # mleray.llm.LLMJob: the gateway's settings; its upstream keys as a Ray reference

    @classmethod
    def of(cls, cfg: SweepConfig, spec: TrialSpec, location: Path | str, sandbox_kind: str,
           attempt: int = 0) -> "TrialJob":
        from mleray.llm import LLMJob

        return cls(spec, str(location), attempt, sandbox_kind, cfg.description.value, cfg.snapshot_interval,
                   cfg.grace_period, cfg.max_submission_mb, LLMJob.of(cfg.llm))

    @property
    def sweep_id(self) -> str:
        """This sweep among all sweeps of the same name (see `sweep_id`)."""
        return sweep_id(self.location, self.spec.sweep)

    def retry(self) -> "TrialJob":
        """The next attempt of the same trial."""
        return replace(self, attempt=self.attempt + 1)


def sweep_id(location: Path | str, name: str) -> str:
    """`<name>-<hash8>`: the sweep's name plus a short hash of where it lives (the resolved local path, or
    the URI without its query options), so two sweeps of the same name on two storage paths never share
    an id (containers are labelled and reaped by it). The same on every node for the same location."""
    text = str(location)
    if "://" in text:
        scheme, netloc, path, _, _ = urlsplit(text)
        where = urlunsplit((scheme, netloc, path.rstrip("/"), "", ""))
    else:
        where = str(Path(text).expanduser().resolve())
    digest = hashlib.sha256(where.encode("utf-8")).hexdigest()[:8]
    return f"{re.sub(r'[^a-zA-Z0-9_.-]', '-', name)[:100]}-{digest}"


def trial_id(agent: str, competition: str, tier: str, seed: int) -> str:
    """`agent__competition__tier__s<seed>`: a folder name that sorts by agent, then competition."""
    return f"{agent}__{competition}__{tier}__s{seed}"


def expand(cfg: SweepConfig, competitions: Iterable[str]) -> List[TrialSpec]:
    """All trials of a sweep, ordered seed-major so early results cover every competition once."""
    comps = list(dict.fromkeys(competitions))
    return [
        TrialSpec(cfg.name, agent, comp, tier_name, seed, tier)
        for seed in range(cfg.seeds)
        for tier_name, tier in cfg.tiers.items()
        for agent in cfg.agents
        for comp in comps
    ]
