"""Node-local data staging: each node prepares a competition's public data once into its own cache.

`mleray.competitions.prepare` builds a competition's data into a versioned cache entry
(`<cache>/<id>/<version>-<hash>/`, the hash over config.yaml, prepare.py and description.md) and
serialises concurrent preparers with a file lock. Staging adds what a cluster needs on top:

- `stage(id)` is what a trial calls on whatever node it landed on. If another process on the node
  is staging the same competition, the trial waits for it (reporting how long, with an optional
  timeout) instead of failing or preparing twice; when the data are already there it returns at
  once. It returns the prepared folders plus how long staging took and whether it waited.
- `stage_on_nodes(ids)` starts a zero-CPU Ray task pinned to every alive worker node that stages the
  given competitions there, for a script that wants the data ready before a sweep; the sweep driver
  does not call it (trials stage where they land, and cluster.yaml's worker setup warms a suite).
- MLE-bench competitions are copied from the local prepared data or downloaded from the object store
  `mleray data push` filled (`$MLERAY_MLEBENCH_DATA_URI`), checked file by file (mleray.mlebench.data).
- `python -m mleray.trial.staging warm --suite offline` stages a suite on this node (cluster.yaml's
  worker setup runs it; `--public-only` leaves MLE-bench answers to the trials that grade),
  `python -m mleray.trial.staging status` lists what this node has staged.

Each staged competition leaves a manifest, `<cache>/.staging/<id>.json`: the cache entry (its
version), the node, the seconds it took. The lock is `<cache>/.staging/<id>.lock`, on the node's
own disk: a node-local cache must not be on a shared filesystem whose locks are not coherent.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from mleray import competitions
from mleray.paths import cache_dir

STAGING = ".staging"
POLL_S = 0.2


class StagingTimeout(TimeoutError):
    """Another process on this node held the staging lock longer than the timeout allowed."""


@dataclass
class Staged:
    """A competition's prepared data on this node, and what getting it cost."""

    competition_id: str
    public_dir: str
    private_dir: str
    seconds: float  # wall time of stage(), waiting included
    waited_s: float  # of which waiting for another process staging the same competition
    prepared_here: bool  # this call ran prepare.py (False: found ready, or another process did it)
    node: str


def _root(cache_root: Optional[Path]) -> Path:
    return Path(cache_root) if cache_root is not None else cache_dir()


def _acquire(lock_file, timeout: Optional[float], on_wait: Optional[Callable[[str], None]], what: str) -> float:
    """Takes the exclusive lock, polling so a timeout and progress messages are possible. Returns
    the seconds spent waiting."""
    t0 = time.monotonic()
    next_note = 0.0
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return time.monotonic() - t0
        except BlockingIOError:
            waited = time.monotonic() - t0
            if timeout is not None and waited >= timeout:
                raise StagingTimeout(f"{what}: another process on {socket.gethostname()} has been staging it "
                                     f"for over {timeout:.0f} s") from None
            if on_wait is not None and waited >= next_note:  # at once, then every 10 s
                on_wait(f"waiting for {what} to be staged on this node ({waited:.0f} s)")
                next_note = waited + 10.0
            time.sleep(POLL_S)


def _manifest_path(root: Path, competition_id: str) -> Path:
    return root / STAGING / f"{competition_id}.json"


def _write_manifest(root: Path, staged: "Staged", entry: Path) -> None:
    """World-readable: it names the public folder, never where the answers are."""
    manifest = {**{k: v for k, v in asdict(staged).items() if k != "private_dir"}, "entry": str(entry),
                "version": entry.name, "staged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = _manifest_path(root, staged.competition_id).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, _manifest_path(root, staged.competition_id))


def _stage_mlebench(comp, root: Path, timeout: Optional[float], on_wait: Optional[Callable[[str], None]],
                    answers: bool, t0: float):
    """An MLE-bench competition: from the local prepared data or the pushed object store (mleray.mlebench.data),
    under the same node lock and wait messages as a local competition."""
    from mleray.mlebench import data

    node = socket.gethostname()
    found = data.staged(comp, root, answers)
    if found is not None:
        return found, Staged(comp.id, str(found.public_dir), str(found.private_dir),
                             round(time.monotonic() - t0, 3), 0.0, False, node)
    (root / STAGING).mkdir(parents=True, exist_ok=True)
    with open(root / STAGING / f"{comp.id}.lock", "a+") as lock:
        waited = _acquire(lock, timeout, on_wait, f"competition {comp.id!r}")
        try:
            prepared, built = data.stage(comp, root, answers)
            staged = Staged(comp.id, str(prepared.public_dir), str(prepared.private_dir),
                            round(time.monotonic() - t0, 3), round(waited, 3), built, node)
            if built:
                _write_manifest(root, staged, prepared.public_dir.parent)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return prepared, staged


def stage(competition_id: str, cache_root: Optional[Path] = None, timeout: Optional[float] = None,
          on_wait: Optional[Callable[[str], None]] = None, answers: bool = True):
    """Stages one competition on this node (once) and returns `(PreparedCompetition, Staged)`.
    `answers=False` stages an MLE-bench competition's public data only (a warm-up; grading fetches them).

    Raises CompetitionError when the competition is unknown or cannot be prepared (a missing
    package names its install command), and StagingTimeout when another process held the node's
    staging lock for longer than `timeout` seconds.
    """
    t0 = time.monotonic()
    comp = competitions.get(competition_id)
    if comp is None:  # a catalog lookup that answers None instead of raising
        raise competitions.CompetitionError(f"unknown competition {competition_id!r} "
                                            f"(local: {', '.join(competitions.list_ids()) or 'none'})")
    root = _root(cache_root)
    node = socket.gethostname()
    if comp.source != "local" or comp.root is None:  # MLE-bench data: copied or downloaded, not prepared
        return _stage_mlebench(comp, root, timeout, on_wait, answers, t0)
    entry = competitions.cache_entry(comp, root)
    if (entry / competitions.cache.DONE).is_file():  # the common case: already staged, no lock
        prepared = competitions.prepare(comp, cache_root=root)
        return prepared, Staged(comp.id, str(prepared.public_dir), str(prepared.private_dir),
                                round(time.monotonic() - t0, 3), 0.0, False, node)
    (root / STAGING).mkdir(parents=True, exist_ok=True)
    with open(root / STAGING / f"{comp.id}.lock", "a+") as lock:
        waited = _acquire(lock, timeout, on_wait, f"competition {comp.id!r}")
        try:
            ready = (entry / competitions.cache.DONE).is_file()
            prepared = competitions.prepare(comp, cache_root=root)
            staged = Staged(comp.id, str(prepared.public_dir), str(prepared.private_dir),
                            round(time.monotonic() - t0, 3), round(waited, 3), not ready, node)
            if not ready:
                _write_manifest(root, staged, entry)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return prepared, staged


def stage_many(ids: Iterable[str], cache_root: Optional[Path] = None, timeout: Optional[float] = None,
               on_wait: Optional[Callable[[str], None]] = None, answers: bool = True) -> List[dict]:
    """Stages each competition; one dict per id: the Staged fields, or {"competition_id", "error"}."""
    results = []
    for cid in dict.fromkeys(ids):
        try:
            results.append(asdict(stage(cid, cache_root, timeout, on_wait, answers)[1]))
        except Exception as err:  # reported per competition; the rest still stage
            results.append({"competition_id": cid, "error": f"{type(err).__name__}: {err}",
                            "node": socket.gethostname()})
    return results


def status(cache_root: Optional[Path] = None) -> List[dict]:
    """The manifests of what this node has staged, and whether each is still current."""
    root = _root(cache_root)
    out = []
    for path in sorted((root / STAGING).glob("*.json")):
        manifest = json.loads(path.read_text())
        try:
            current = competitions.cache_entry(competitions.get(manifest["competition_id"]), root).name
            manifest["current"] = current == manifest.get("version") and Path(manifest["entry"]).is_dir()
        except Exception:
            manifest["current"] = False
        out.append(manifest)
    return out


def stage_on_nodes(ids: Sequence[str], cache_root: Optional[str] = None, timeout: Optional[float] = None,
                   wait: bool = True, include_cpu_less: bool = False):
    """Stages `ids` on every alive Ray node that can run trials (CPU > 0), one pinned zero-CPU task per
    node. With wait=True returns {node_id: [per-competition dicts]}; else {node_id: ObjectRef}."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(num_cpus=0, max_retries=0)(stage_many)
    refs = {}
    for node in ray.nodes():
        if not node.get("Alive") or (not include_cpu_less and not node.get("Resources", {}).get("CPU")):
            continue
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        refs[node["NodeID"]] = remote.options(scheduling_strategy=strategy).remote(list(ids), cache_root, timeout)
    if not wait:
        return refs
    out: Dict[str, List[dict]] = {}
    for node_id, ref in refs.items():
        try:
            out[node_id] = ray.get(ref)
        except Exception as err:  # the node died while staging: its trials will retry elsewhere
            out[node_id] = [{"competition_id": cid, "error": f"{type(err).__name__}: {err}"} for cid in ids]
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mleray.trial.staging",
                                     description="Stage competitions' data into this node's cache.")
    sub = parser.add_subparsers(dest="command", required=True)
    warm = sub.add_parser("warm", help="prepare competitions on this node (once; concurrent callers wait)")
    warm.add_argument("ids", nargs="*", help="competition ids")
    warm.add_argument("--suite", help="every competition of configs/suites/<suite>.yaml")
    warm.add_argument("--cache", help="cache root (default: $MLERAY_CACHE_DIR or ~/.cache/mleray)")
    warm.add_argument("--timeout", type=float, help="seconds to wait for another process staging the same data")
    warm.add_argument("--public-only", action="store_true",
                      help="MLE-bench competitions: stage the public data only (the answers come where grading runs)")
    sub.add_parser("status", help="what this node has staged").add_argument("--cache")
    args = parser.parse_args(argv)
    cache = Path(args.cache) if args.cache else None
    if args.command == "status":
        for m in status(cache):
            print(f"{m['competition_id']:<28} {m['version']:<20} {'current' if m['current'] else 'STALE':<8} "
                  f"{m['seconds']:>7.1f} s  {m['staged_at']}")
        return 0
    ids = list(args.ids)
    try:
        if args.suite:
            ids += competitions.suite(args.suite)
    except competitions.CompetitionError as err:
        print(f"mleray staging: {err}", file=sys.stderr)
        return 2
    if not ids:
        parser.error("name competition ids or --suite")
    failed = 0
    for result in stage_many(ids, cache, args.timeout, on_wait=lambda m: print(f"  {m}", flush=True),
                             answers=not args.public_only):
        if "error" in result:
            failed += 1
            print(f"{result['competition_id']:<28} FAILED  {result['error']}", flush=True)
        else:
            how = "prepared" if result["prepared_here"] else "ready"
            print(f"{result['competition_id']:<28} {how:<8} {result['seconds']:>7.2f} s  {result['public_dir']}",
                  flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
