"""Sweep configuration: omegaconf structured dataclasses, loading, overrides and one-line errors.

A sweep is `configs/sweep.yaml` (or `--config PATH`) merged over the schema below, then
`key=value` overrides. Every error names the key and what is allowed, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Optional, cast, get_args, get_origin, get_type_hints

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, ValueNode
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from mleray import paths


def _builtin_agent(name: str) -> str:
    """`${builtin_agent:NAME}` in an agent YAML: the folder of a built-in agent, `mleray/agents/NAME`,
    wherever the package is installed."""
    return str(Path(__file__).resolve().parent / "agents" / name)


OmegaConf.register_new_resolver("builtin_agent", _builtin_agent, replace=True)


class ConfigError(ValueError):
    """A bad sweep or agent config; the message is one line naming the key and what is allowed."""


class SandboxKind(str, Enum):
    auto = "auto"
    docker = "docker"
    bwrap = "bwrap"


class DescriptionKind(str, Enum):
    original = "original"
    obfuscated = "obfuscated"


@dataclass
class TierConfig:
    """Resources one trial gets; Ray books them and the sandbox enforces them."""

    cpus: float = 1.0
    memory_gb: float = 2.0  # GiB (2**30 bytes), as Ray books and the sandbox enforces it
    gpus: float = 0.0  # fractions below 1 share a device (0.5 = two trials per GPU)
    time_limit: float = 600.0  # seconds of agent wall time
    pids: int = 512
    shm_gb: float = 1.0
    disk_gb: float = 50.0  # GiB a trial may write into its writable folders (and container layer)


@dataclass
class RayConfig:
    address: Optional[str] = None  # None: a local ray.init(); "auto": join a running cluster
    num_cpus: Optional[int] = None  # local Ray only
    num_gpus: Optional[float] = None  # local Ray only; >0 on a GPU-less machine fakes GPUs
    dashboard: bool = False  # local Ray only: start Ray's dashboard (localhost:8265) and its `ray status` view
    metrics: bool = False  # Ray's metric export from the driver (and a local Ray's processes); see docs/cluster.md


@dataclass
class PriceConfig:
    """Dollars per million tokens for one model (cached_input: the input price when not given)."""

    input: float = 0.0
    output: float = 0.0
    cached_input: Optional[float] = None


@dataclass
class LLMConfig:
    """The LLM gateway for agents with `llm: true` (mleray/llm): upstream, prices, per-trial budgets, bounds."""

    upstream: Optional[str] = None  # OpenAI-compatible base URL; None: the driver's $OPENAI_BASE_URL, else OpenAI's
    anthropic_upstream: Optional[str] = None  # None: the driver's $ANTHROPIC_BASE_URL, else Anthropic's
    prices: Dict[str, PriceConfig] = field(default_factory=dict)  # model (or a prefix before '-') -> price
    max_cost_usd: Optional[float] = None  # per trial; past it, calls are answered 429
    max_tokens: Optional[int] = None  # input + output tokens per trial
    max_calls: Optional[int] = None  # calls per trial
    max_concurrency: int = 4  # calls in flight at once per trial
    max_request_mb: float = 8.0
    max_response_mb: float = 32.0
    max_log_mb: float = 64.0  # llm.jsonl with request/response bodies; past it, entries without them
    timeout_s: float = 600.0  # seconds one upstream call may take


@dataclass
class SweepConfig:
    name: str = "default"
    storage: str = "runs"
    suite: Optional[str] = "offline-lite"  # configs/suites/<suite>.yaml; ignored when competitions is set
    competitions: List[str] = field(default_factory=list)
    agents: List[str] = field(default_factory=lambda: ["dummy", "baseline"])
    seeds: int = 2
    tiers: Dict[str, TierConfig] = field(default_factory=dict)  # a file's tiers replace, not extend, a default
    sandbox: SandboxKind = SandboxKind.auto
    description: DescriptionKind = DescriptionKind.original
    ray: RayConfig = field(default_factory=RayConfig)
    retries: int = 1  # extra attempts for a trial whose actor or node died
    max_in_flight: int = 0  # 0: as many as the cluster's resources admit
    snapshot_interval: float = 3600.0  # seconds between submission snapshots
    grace_period: float = 10.0  # seconds between SIGTERM and kill at the time limit
    max_submission_mb: float = 1024.0  # MiB; a larger submission (or snapshot, or /validate upload) is invalid
    llm: LLMConfig = field(default_factory=LLMConfig)
    mlebench_data_uri: Optional[str] = None  # where `mleray data push` put MLE-bench data; nodes stage from it
    report: bool = True


@dataclass
class AgentConfig:
    """An agent, declared in `configs/agents/<name>.yaml`."""

    name: str = "???"
    image: Optional[str] = None  # docker image tag
    build_context: Optional[str] = None  # folder with a Dockerfile; relative to the yaml
    code: Optional[str] = None  # folder bound read-only at /home/agent (bwrap); relative to the yaml
    command: List[str] = field(default_factory=list)
    args: List[str] = field(default_factory=list)  # appended to command
    env: Dict[str, str] = field(default_factory=dict)
    env_passthrough: List[str] = field(default_factory=list)  # names copied from the driver's env (API keys)
    egress: bool = False  # needs network (LLM APIs)
    step_limit: Optional[int] = None  # STEP_LIMIT inside (MLE-bench agents' step budget); None: unset
    llm: bool = False  # talks to models through mleray's LLM gateway (network stays none; mleray/llm)


def _schema_type(schema: Any, key: str) -> Any:
    """The declared type of dotted `key` in a dataclass schema (a dict key or list index stands for the
    element type; None when there is no such key): what an error can list as allowed or suggest writing."""
    kind = schema
    for part in key.split(".") if key else []:
        if is_dataclass(kind):
            kind = get_type_hints(kind).get(part)
        elif get_origin(kind) in (dict, list):
            kind = get_args(kind)[-1]
        else:
            return None
    return kind


def _problem(err: Exception) -> str:
    """An error's first line; for YAML syntax, with where it is: `line L, column C: problem (context at ...)`."""
    mark = getattr(err, "problem_mark", None)
    if mark is None:
        return str(err).splitlines()[0]
    start, context = getattr(err, "context_mark", None), getattr(err, "context", None)
    where = f" ({context} at line {start.line + 1}, column {start.column + 1})" if context and start else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: {getattr(err, 'problem', '')}{where}"


def _one_line(err: OmegaConfBaseException, schema: Any, source: Optional[Path] = None) -> str:
    """omegaconf's error as one line naming the key (and the file it came from) and what to write instead."""
    key = getattr(err, "full_key", "") or "?"
    at = f"'{key}'" + (f" in {source}" if source else "")
    if isinstance(err, ConfigKeyError):  # a key the schema does not have
        allowed = ", ".join(f.name for f in fields(_schema_type(schema, key.rpartition(".")[0])))
        return f"unknown config key {at} (allowed: {allowed})"
    value = getattr(err, "value", None)
    value = value._value() if isinstance(value, ValueNode) else value
    needs_list = get_origin(_schema_type(schema, key)) is list
    if needs_list and value is not None and not isinstance(value, (list, ListConfig)):
        fix = f"{key}: [{value}]" if source else f"{key}='[{value}]'"
        return f"bad value for {at}: '{value}' is not a list (write {fix})"
    return f"bad value for {at}: {_problem(err)}"


def _merge(schema: Any, base: Any, part: Any, source: Optional[Path] = None) -> DictConfig:
    """`part` (a file's config, or with no source the overrides) merged over `base`, a config of `schema`;
    one source at a time so that an error can name the file and how to write the fix."""
    try:
        merged = OmegaConf.merge(base, part)
    except OmegaConfBaseException as err:
        raise ConfigError(_one_line(err, schema, source)) from None
    assert isinstance(merged, DictConfig)  # a structured schema merges into a mapping
    return merged


def _read_yaml(path: Path) -> DictConfig:
    """A YAML file of `key: value` lines; a ConfigError naming the file (and a syntax error's line and column)."""
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml syntax, a scalar top level, not text
        raise ConfigError(f"cannot read config {path}: {_problem(err)}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"cannot read config {path}: the top level is a list (write key: value lines)")
    return cfg


def _override(item: str) -> DictConfig:
    """One `key=value` override as a config; a ConfigError naming it when it is not one."""
    if "=" not in item:
        raise ConfigError(f"bad override {item!r} (expected key=value)")
    try:
        return OmegaConf.from_dotlist([item])
    except yaml.YAMLError as err:
        raise ConfigError(f"bad override {item!r}: {_problem(err)}") from None


def _validate_tier(name: str, tier: TierConfig) -> None:
    where = f"tiers.{name}"
    if tier.cpus <= 0:
        raise ConfigError(f"bad value for '{where}.cpus': {tier.cpus} (must be > 0)")
    if tier.memory_gb <= 0:
        raise ConfigError(f"bad value for '{where}.memory_gb': {tier.memory_gb} (must be > 0)")
    if tier.gpus < 0 or (tier.gpus > 1 and tier.gpus != int(tier.gpus)):
        raise ConfigError(f"bad value for '{where}.gpus': {tier.gpus} "
                          "(allowed: 0, a fraction below 1, or a whole number)")
    if tier.time_limit <= 0:
        raise ConfigError(f"bad value for '{where}.time_limit': {tier.time_limit} (seconds, must be > 0)")


def validate(cfg: SweepConfig) -> SweepConfig:
    """Checks values omegaconf's types cannot: ranges, names, at least one of everything."""
    if not cfg.name or "/" in cfg.name:
        raise ConfigError(f"bad value for 'name': {cfg.name!r} (a non-empty name without '/')")
    if cfg.seeds < 1:
        raise ConfigError(f"bad value for 'seeds': {cfg.seeds} (must be >= 1)")
    if not cfg.agents:
        raise ConfigError("bad value for 'agents': empty (name at least one of configs/agents/*.yaml)")
    if not cfg.tiers:
        raise ConfigError("bad value for 'tiers': empty (define at least one tier)")
    for name, tier in cfg.tiers.items():
        _validate_tier(name, tier)
    if cfg.retries < 0:
        raise ConfigError(f"bad value for 'retries': {cfg.retries} (must be >= 0)")
    if cfg.max_in_flight < 0:
        raise ConfigError(f"bad value for 'max_in_flight': {cfg.max_in_flight} (0 = no cap, or a positive number)")
    if cfg.snapshot_interval <= 0:
        raise ConfigError(f"bad value for 'snapshot_interval': {cfg.snapshot_interval} (seconds, must be > 0)")
    if not cfg.competitions and not cfg.suite:
        raise ConfigError("no competitions: set 'suite' (configs/suites/*.yaml) or 'competitions' (a list of ids)")
    return cfg


def resolve_config_path(path: str | Path | None) -> Path:
    """The sweep file to read: the shipped default, the path as given, or (for a relative path not found
    here, such as `configs/ablations/time.yaml` run from another directory) the shipped file of that name."""
    if not path:
        return paths.configs_dir() / "sweep.yaml"
    path = Path(path)
    shipped = paths.project_root() / path
    return shipped if not path.is_file() and not path.is_absolute() and shipped.is_file() else path


def load_sweep(path: str | Path | None = None, overrides: List[str] | None = None) -> SweepConfig:
    """Loads a sweep config: schema defaults, then the file (default configs/sweep.yaml), then overrides."""
    path = resolve_config_path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    file_cfg = _read_yaml(path)
    dotlist = OmegaConf.merge(OmegaConf.create(), *map(_override, overrides or []))
    merged = _merge(SweepConfig, OmegaConf.structured(SweepConfig), file_cfg, path)
    merged = _merge(SweepConfig, merged, dotlist)
    cfg = cast(SweepConfig, OmegaConf.to_object(merged))
    if not cfg.tiers and "tiers" not in file_cfg and "tiers" not in dotlist:
        cfg.tiers = {"cpu": TierConfig()}
    return validate(cfg)


def load_agent(name: str, agents_dir: Path | None = None) -> AgentConfig:
    """Loads agent `<name>.yaml` from the agents search path (or `agents_dir`), resolving relative folders
    against the yaml's folder."""
    found = agents_dir / f"{name}.yaml" if agents_dir else paths.find("agents", f"{name}.yaml")
    if found is None or not found.is_file():
        names = sorted(p.stem for p in agents_dir.glob("*.yaml")) if agents_dir else list(paths.names("agents",
                                                                                                    "*.yaml"))
        known = ", ".join(names)
        raise ConfigError(f"unknown agent '{name}' (known: {known}; {paths.where_to_add('agents', name + '.yaml')})")
    path = found
    merged = _merge(AgentConfig, OmegaConf.structured(AgentConfig(name=name)), _read_yaml(path), path)
    try:
        agent = cast(AgentConfig, OmegaConf.to_object(merged))  # resolves ${builtin_agent:...} and the like
    except OmegaConfBaseException as err:
        raise ConfigError(f"bad value in {path}: {str(err).splitlines()[0]}") from None
    for attr in ("build_context", "code"):
        value = getattr(agent, attr)
        if value:
            setattr(agent, attr, str((path.parent / value).resolve()))
    if not agent.command:
        raise ConfigError(f"bad value for 'command' in {path}: empty (the command that starts the agent)")
    return agent


def to_yaml(cfg: SweepConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
