"""`python -m mleray.sweep [--config PATH] [--address ADDR] [key=value ...]`: run (or resume) a sweep.

Checks everything it can before scheduling anything (config, competitions, data, agents, sandbox),
then runs the trials on Ray, appends each result as it finishes, and ends with the medal table
and a report under `<storage>/<name>/report/`. Running the same command again resumes. `storage`
is a local or shared path, or a pyarrow URI such as s3://bucket/prefix (see mleray.storage.backends).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence

import ray

from mleray import competitions, paths
from mleray.config import ConfigError, SweepConfig, load_agent, load_sweep, to_yaml
from mleray.sandbox import backend
from mleray.storage.backends import RECORDS, StorageError, SweepStorage, open_location, open_sweep_storage
from mleray.storage.lock import SweepLock
from mleray.storage.store import SweepStore, config_changes
from mleray.sweep.callbacks import SweepCallback
from mleray.sweep.launcher import few_malloc_arenas
from mleray.sweep.scheduler import Scheduler
from mleray.sweep.trials import expand, sweep_id


class SweepError(RuntimeError):
    """The sweep cannot start; the message lists every problem found, one per line."""


def competition_ids(cfg: SweepConfig) -> List[str]:
    return list(cfg.competitions) if cfg.competitions else competitions.suite(cfg.suite or "")


def preflight(cfg: SweepConfig) -> tuple[List[str], str, str]:
    """Everything that would stop the sweep, found before scheduling: (competition ids, sandbox kind, why)."""
    from mleray.sandbox.select import choose

    problems: List[str] = []
    ids: List[str] = []
    try:
        ids = competition_ids(cfg)
        problems += competitions.preflight(ids)
    except competitions.CompetitionError as err:
        problems.append(str(err))
    agents = []
    for name in cfg.agents:
        try:
            agents.append(load_agent(name))
        except ConfigError as err:
            problems.append(str(err))
    kind, why = "", ""
    if agents:
        try:
            kind, why = choose(cfg.sandbox.value, agents)
        except Exception as err:  # the chosen backend is unusable: say why
            problems.append(str(err))
    if problems:
        raise SweepError("\n".join(f"- {p}" for p in problems))
    return ids, kind, why


def prepare_driver_process(metrics: bool) -> None:
    """What a driver sets before Ray starts in it, so that it stays small over 10,000s of trials: few malloc
    arenas (mleray.sweep.launcher.few_malloc_arenas) and, unless `ray.metrics` is on or the user set it,
    Ray's metric export off (RAY_enable_metrics_collection=0). That export cost the driver 0.6 ms of CPU and
    about 7 KiB of RSS per trial (bench/results/driver_scale.md); on a local Ray it is off for its processes
    too, on a cluster for the driver only."""
    few_malloc_arenas()
    if not metrics:
        os.environ.setdefault("RAY_enable_metrics_collection", "0")


def connect(cfg: SweepConfig) -> None:
    """Joins the configured cluster, or starts a local Ray. A cluster that does not answer is a one-line
    ConfigError within seconds (ray.init would retry for minutes): its GCS address ("auto": the
    running cluster Ray finds) must take a TCP connection, then answer one GCS call."""
    if ray.is_initialized():
        return
    prepare_driver_process(cfg.ray.metrics)
    address = cfg.ray.address
    if address:
        from ray._private.services import canonicalize_bootstrap_address
        from ray._raylet import GcsClient  # type: ignore[attr-defined]  # compiled module, no stub

        if address == "auto":  # as ray.init("auto") does: a token found locally (~/.ray/auth_token) is sent
            from ray._private.authentication.authentication_token_setup import (
                maybe_enable_token_auth_if_token_available,
            )

            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        try:
            if "://" not in address:  # ray:// (Ray Client) addresses are left to ray.init
                found = canonicalize_bootstrap_address(address)  # raises when "auto" finds none
                if found is None:
                    raise ValueError("no running cluster found")
                address = found
                host, _, port = address.rpartition(":")
                socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
                saved = os.dup(2)  # the GCS client logs each failed try to fd 2: the error below says it
                try:
                    with open(os.devnull, "w") as null:
                        os.dup2(null.fileno(), 2)
                        GcsClient(address=address, cluster_id=None)
                finally:
                    os.dup2(saved, 2)
                    os.close(saved)
            joined = ray.init(address=address, log_to_driver=False, **_runtime_env(cfg))
        except (OSError, ValueError, ray.exceptions.RayError) as err:
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0].split(". ")[0] or type(err).__name__
            if "InvalidAuthToken" in str(err) or isinstance(err, getattr(ray.exceptions, "AuthenticationError", ())):
                raise ConfigError(f"the Ray cluster at {cfg.ray.address} refused this driver's token ({reason}): "
                                  "copy the cluster's token (`ray get-auth-token` on its head) to "
                                  "~/.ray/auth_token and set RAY_AUTH_MODE=token") from None
            raise ConfigError(f"cannot reach the Ray cluster at {cfg.ray.address}: {reason}; start it with "
                              "ray start --head, or drop ray.address for a local Ray") from None
        print(f"mleray: {cluster_summary(joined.dashboard_url)}", flush=True)
    else:
        # "local" always starts a fresh instance, never attaching to another user's `ray start`.
        num_gpus: Any = cfg.ray.num_gpus  # Ray's stub says int; it takes the float as given
        local = ray.init(address="local", num_cpus=cfg.ray.num_cpus, num_gpus=num_gpus,
                         include_dashboard=cfg.ray.dashboard, dashboard_host="127.0.0.1", log_to_driver=False,
                         configure_logging=False, **_runtime_env(cfg))
        gcs = ray.get_runtime_context().gcs_address
        if cfg.ray.dashboard:
            print(f"mleray: Ray dashboard at http://{local.dashboard_url or '127.0.0.1:8265'} (it asks for the "
                  "token `ray get-auth-token` prints)", flush=True)
        # `ray status` (Ray 2.60) sends the token only when told to: the local Ray requires one.
        print(f"mleray: local Ray at {gcs}; `RAY_AUTH_MODE=token ray status --address {gcs}` shows it", flush=True)


def _runtime_env(cfg: SweepConfig) -> dict:
    """What every trial's process gets from the driver: where MLE-bench data is staged from, if set."""
    if not cfg.mlebench_data_uri:
        return {}
    return {"runtime_env": {"env_vars": {"MLERAY_MLEBENCH_DATA_URI": cfg.mlebench_data_uri}}}


def autoscaler_behind(wait_s: float = 12.0) -> bool:
    """Whether the joined cluster's autoscaler can add nodes: autoscaler v2, or a v1 monitor whose node types
    are a cluster config's (a plain `ray start` runs a read-only one that names each node `node_<id>`)."""
    import json
    import time

    from ray.autoscaler._private.util import format_readonly_node_type
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        from ray.autoscaler.v2.utils import is_autoscaler_v2

        if is_autoscaler_v2(fetch_from_server=True):
            return True
    except Exception:  # an older or newer Ray without this check: the v1 status below decides
        pass
    deadline = time.monotonic() + wait_s
    while True:
        raw = _internal_kv_get("__autoscaling_status")  # what `ray status` prints, written by the monitor
        if raw:
            report = json.loads(raw).get("autoscaler_report") or {}
            mapping = report.get("node_type_mapping") or {}
            return any(kind != format_readonly_node_type(node) for node, kind in mapping.items())
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def cluster_summary(dashboard_url: Optional[str] = None) -> str:
    """The joined cluster in one line: address, alive nodes, their resources, the dashboard."""
    from mleray.sweep.placement import alive_nodes

    nodes = alive_nodes()
    total: dict = {}
    for node in nodes:
        for key in ("CPU", "GPU", "memory"):
            total[key] = total.get(key, 0) + node["resources"].get(key, 0)
    return (f"joined the Ray cluster at {ray.get_runtime_context().gcs_address}: {len(nodes)} "
            f"node{'s' * (len(nodes) != 1)}, {total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU, "
            f"{total.get('memory', 0) / 2**30:.1f} GiB memory"
            + (f"; dashboard http://{dashboard_url}" if dashboard_url else ""))


def default_callbacks() -> List[SweepCallback]:
    from mleray.sweep.progress import LiveProgress

    return [LiveProgress()]


def check_fit(cfg: SweepConfig) -> None:
    """A tier no node can hold: an error on a local Ray or a cluster with no autoscaler behind it (nothing
    will ever fit it), a warning where an autoscaler may still add such a node."""
    from mleray.sweep.placement import alive_nodes, unplaceable

    problems = unplaceable(dict(cfg.tiers), alive_nodes())
    if problems and not cfg.ray.address:
        raise SweepError("\n".join(f"- {p}" for p in problems) + "\n- on this machine, lower the tier, "
                         "or set ray.num_gpus / ray.num_cpus, or join a cluster with ray.address=auto")
    if problems and not autoscaler_behind():
        raise SweepError("\n".join(f"- {p}" for p in problems) + "\n- this cluster has no autoscaler to add "
                         "such a node: lower the tier, or add a node that holds it (ray start --address ...)")
    for problem in problems:
        print(f"mleray: warning: {problem}; its trials wait until the autoscaler adds such a node", flush=True)


def open_storage(cfg: SweepConfig, sweep_dir: Optional[Path | str | SweepStorage] = None) -> SweepStorage:
    """The sweep's storage: `<cfg.storage>/<cfg.name>`, or `sweep_dir` when given (raises StorageError)."""
    if isinstance(sweep_dir, SweepStorage):
        return sweep_dir
    return open_location(sweep_dir) if sweep_dir else open_sweep_storage(cfg.storage, cfg.name)


def run(cfg: SweepConfig, callbacks: Optional[Sequence[SweepCallback]] = None,
        sweep_dir: Optional[Path | str | SweepStorage] = None, actor_cls=None,
        allow_config_change: bool = False, lock: bool = True) -> tuple[List[dict], bool]:
    """Runs or resumes a sweep; returns (all records, completed?). Resuming with a config that changes
    which trials run or how they are graded is a ConfigError unless `allow_config_change`. Holds the
    sweep's lock (mleray.storage.lock: LockHeld when another driver runs it) unless `lock` is False (the
    caller holds it)."""
    if cfg.mlebench_data_uri:  # the preflight and this driver's staging read it, the trials get it from Ray
        os.environ["MLERAY_MLEBENCH_DATA_URI"] = cfg.mlebench_data_uri
    ids, kind, why = preflight(cfg)
    print(f"mleray: sandbox {kind} ({why})", flush=True)
    limits = backend(kind).limits_report(network_wanted=any(load_agent(a).egress for a in cfg.agents))
    if limits:
        print(f"mleray: {limits}", flush=True)
    storage = open_storage(cfg, sweep_dir)
    with SweepLock(storage, cfg.name) if lock else contextlib.nullcontext():
        return _run(cfg, storage, ids, kind, callbacks, actor_cls, allow_config_change)


def _run(cfg: SweepConfig, storage: SweepStorage, ids: List[str], kind: str,
         callbacks: Optional[Sequence[SweepCallback]], actor_cls, allow_config_change: bool) -> tuple[List[dict], bool]:
    store = SweepStore(storage)
    text = to_yaml(cfg)
    changes = config_changes(store.read_config() or text, text) if store.done else []
    if changes and not allow_config_change:
        raise ConfigError(f"{shown(store.storage)} was started with a different config: {', '.join(changes)}; "
                          "rerun with the same config, pick a new name=, or pass --allow-config-change to go on")
    if changes:
        print(f"mleray: warning: going on with a changed config: {', '.join(changes)}", flush=True)
    store.write_config(text)
    trials = expand(cfg, ids)
    connect(cfg)
    check_fit(cfg)
    this_sweep = sweep_id(store.location, cfg.name)  # name + location: a same-named sweep elsewhere is not ours
    backend(kind).reap(this_sweep)  # containers a killed driver left behind
    callbacks = default_callbacks() if callbacks is None else list(callbacks)
    scheduler = Scheduler(cfg, store, kind, callbacks, **({"actor_cls": actor_cls} if actor_cls else {}))
    try:
        completed = scheduler.run(trials)
    except StorageError:  # a failed append stops the sweep: leave no container of it behind
        backend(kind).reap(this_sweep)
        raise
    store.compact()  # on an object store: one whole trials.jsonl
    if not completed:
        backend(kind).reap(this_sweep)
    return store.records, completed


def finish(sweep: Path | str | SweepStorage, write_report: bool) -> None:
    """Prints the medal table and writes the report (on an object store: built from the records in a
    local temporary folder, then the report files are written back to the storage)."""
    storage = sweep if isinstance(sweep, SweepStorage) else open_location(sweep)
    if storage.local_path is not None:
        report = _summarize(storage.local_path, write_report)
        if report is not None:
            print(f"mleray: report at {report}", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="mleray-report-") as tmp:
        local = Path(tmp) / storage.sweep
        local.mkdir()
        storage.compact()
        (local / RECORDS).write_text("".join(line + "\n" for line in storage.read_lines()))
        if storage.size("config.yaml") is not None:  # names the suite the report uses
            (local / "config.yaml").write_bytes(storage.read_file("config.yaml"))
        report = _summarize(local, write_report)
        if report is not None:
            storage.upload_dir(report.parent, "report")
            print(f"mleray: report at {shown(storage, 'report/' + report.name)}", flush=True)


def _summarize(sweep_dir: Path, write_report: bool) -> Optional[Path]:
    """Prints the medal table of a local sweep folder; writes its report (returns report.md) if asked."""
    from analysis.load import load_paths
    from analysis.tables import sweep_summary

    print(sweep_summary(load_paths([sweep_dir])), flush=True)
    if not write_report:
        return None
    from analysis.report import write_report as write

    return write(sweep_dir)


def shown(storage: SweepStorage, path: str = "") -> str:
    """A file of the sweep as a user would name it (a URI without its query options)."""
    if storage.local_path is not None:
        return str(storage.local_path / path) if path else str(storage.local_path)
    return storage.location.split("?", 1)[0] + (f"/{path}" if path else "")


def main_parser() -> argparse.ArgumentParser:
    """The command line of `python -m mleray.sweep` (tests/docker/test_readme.py parses the README's with it)."""
    parser = argparse.ArgumentParser(prog="python -m mleray.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="sweep YAML (default: configs/sweep.yaml)")
    parser.add_argument("--address", help="join a running Ray cluster (e.g. auto)")
    parser.add_argument("--allow-config-change", action="store_true", help="resume a sweep whose config changed")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seeds=3 tiers.cpu.time_limit=600")
    paths.add_search_flags(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = main_parser().parse_args(argv)
    paths.apply_search_flags(args)
    overrides = list(args.overrides) + ([f"ray.address={args.address}"] if args.address else [])
    with contextlib.ExitStack() as held:
        try:
            cfg = load_sweep(args.config, overrides)
            storage = open_storage(cfg)
            held.enter_context(SweepLock(storage, cfg.name))  # through the report: one driver per sweep
            records, completed = run(cfg, sweep_dir=storage, allow_config_change=args.allow_config_change,
                                     lock=False)
        except (ConfigError, competitions.CompetitionError, StorageError) as err:
            print(f"mleray: {err}", file=sys.stderr)
            return 2
        except SweepError as err:
            print(f"mleray: the sweep cannot start:\n{err}", file=sys.stderr)
            return 2
        if not completed:
            print(f"\nmleray: interrupted; {len(records)} trials are recorded in {shown(storage, RECORDS)}. "
                  "Run the same command again to resume.", file=sys.stderr)
            return 130
        finish(storage, cfg.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
