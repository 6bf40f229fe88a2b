"""`mleray logs SWEEP TRIAL [--follow] [--storage PATH]`: show or follow one trial's agent log.

TRIAL is a trial id (`agent__competition__tier__s<seed>`) or any unique part of one. The log is
`<storage>/<sweep>/trials/<trial id>/agent.log`; --storage is a path or a pyarrow URI (s3://...),
default `runs` (or $MLERAY_STORAGE). With --follow it keeps printing new lines until the trial's
record appears in trials.jsonl, then prints the outcome; Ctrl-C stops following. A trial (or sweep)
that has not started yet is waited for, unless the sweep's config.yaml says it has no such trial.
Following reads only what was appended since the last look, of the log and of the records
(`RecordFollower`), so it costs the same on a sweep of ten trials or of a hundred thousand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional, Sequence, Set, TextIO, Tuple, cast

from mleray.records import _attempt, parse_lines, read_records
from mleray.storage.backends import PARTS, RECORDS, StorageError, SweepStorage, open_sweep_storage

LOG = "agent.log"


class LogsError(RuntimeError):
    """The sweep or trial cannot be found; the message says what exists."""


class NotStarted(LogsError):
    """The sweep or trial is not there yet but may still come: --follow waits for it."""


def _records(storage: SweepStorage) -> dict:
    """{trial id: its record} so far; a bad line is skipped, as a live view must keep going."""
    return {r["trial_id"]: r for r in read_records(storage.read_lines(), strict=False) if "trial_id" in r}


class RecordFollower:
    """A trial's record in trials.jsonl, looking only at what was appended since the last `poll()`: the
    bytes of trials.jsonl past the offset read so far (from the start again if the file shrank: it was
    rewritten), and on an object store the append parts not yet seen. Only lines naming the trial are
    parsed; the record that counts is the highest attempt (a later line on a tie), as `parse_lines` says."""

    def __init__(self, storage: SweepStorage, trial: str):
        self.storage, self.trial = storage, trial
        self.needle = json.dumps(trial).encode()
        self.offset = 0
        self.partial = b""  # an unfinished last line, kept until its newline arrives
        self.parts: Set[str] = set()
        self.record: Optional[dict] = None
        self.bytes_read = 0

    def _scan(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            if self.needle not in line:
                continue
            for record in parse_lines([line]).records:
                if record.get("trial_id") == self.trial and (
                        self.record is None
                        or (_attempt(record.get("attempt")) or 0) >= (_attempt(self.record.get("attempt")) or 0)):
                    self.record = record

    def poll(self) -> Optional[dict]:
        """The trial's record so far (None while it has none)."""
        size = self.storage.size(RECORDS)
        if size is not None and size < self.offset:  # rewritten (bad lines moved out, or compacted)
            self.offset, self.partial = 0, b""
        chunk = self.storage.read_from(RECORDS, self.offset)
        self.offset += len(chunk)
        self.bytes_read += len(chunk)
        data = self.partial + chunk
        cut = data.rfind(b"\n") + 1
        self._scan(data[:cut])
        self.partial = data[cut:]
        if self.storage.buffered:
            for name in self.storage.list_dir(PARTS):
                if name.endswith(".jsonl") and name not in self.parts:
                    self.parts.add(name)
                    try:
                        data = self.storage.read_file(f"{PARTS}/{name}")
                    except OSError:  # merged away meanwhile: its lines are in the merged part or trials.jsonl
                        continue
                    self.bytes_read += len(data)
                    self._scan(data)
        return self.record


def _some(ids: List[str]) -> str:
    return ", ".join(ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")


def _planned(storage: SweepStorage) -> List[str]:
    """The trial ids the sweep's config.yaml plans; [] before the sweep has written it."""
    if storage.size("config.yaml") is None:
        return []
    from omegaconf import OmegaConf

    from mleray import competitions
    from mleray.config import SweepConfig
    from mleray.sweep.trials import expand

    try:
        stored = OmegaConf.create(storage.read_file("config.yaml").decode())
        cfg = cast(SweepConfig, OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SweepConfig), stored)))
        if cfg.competitions:
            ids = cfg.competitions
        elif cfg.suite is not None:
            ids = competitions.suite(cfg.suite)
        else:
            return []  # neither competitions nor a suite: nothing planned
        return [t.trial_id for t in expand(cfg, ids)]
    except Exception:  # another version's config, or a suite no longer here: no plan to check against
        return []


def resolve_trial(storage: SweepStorage, query: str) -> str:
    """The one trial id (started, recorded or planned) matching `query` exactly, else the one containing it."""
    plan = _planned(storage)
    known = sorted(set(storage.list_dir("trials")) | set(_records(storage)) | set(plan))
    if query in known:
        return query
    matches = [t for t in known if query in t]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise LogsError(f"{query!r} matches {len(matches)} trials ({_some(matches)}); give more of the id")
    if plan:
        raise LogsError(f"no trial matches {query!r} in sweep {storage.sweep!r} (its config plans: {_some(plan)})")
    if not known:
        raise NotStarted(f"sweep {storage.sweep!r} under {storage.uri} has no trials yet "
                         f"(is the sweep name right? is --storage the sweep's storage?)")
    raise NotStarted(f"no trial matches {query!r} in sweep {storage.sweep!r} (trials: {_some(known)})")


def outcome(record: dict) -> str:
    """One line: how the trial ended."""
    parts = [f"trial {record.get('trial_id')} finished: {record.get('status')}"]
    if record.get("attempt"):
        parts.append(f"attempt {record['attempt']}")
    if record.get("score") is not None:
        parts.append(f"score {record['score']}")
    medal = next((m for m in ("gold", "silver", "bronze") if record.get(f"{m}_medal")), None)
    if medal:
        parts.append(f"{medal} medal")
    if record.get("reason"):
        parts.append(f"reason: {record['reason']}")
    return ", ".join(parts)


def show(storage: SweepStorage, trial: str, follow: bool, out: TextIO, err: TextIO,
         poll: float = 0.5, timeout: Optional[float] = None) -> int:
    path = f"trials/{trial}/{LOG}"
    offset = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    last_records_check = 0.0
    follower = RecordFollower(storage, trial)

    def drain() -> None:
        nonlocal offset
        size = storage.size(path)
        if size is not None and size < offset:  # a retry started the log afresh
            err.write(f"--- {trial}: log restarted (a new attempt) ---\n")
            offset = 0
        chunk = storage.read_from(path, offset)
        if chunk:
            offset += len(chunk)
            out.write(chunk.decode("utf-8", errors="replace"))
            out.flush()

    drain()
    if not follow:
        if storage.size(path) is None:
            record = _records(storage).get(trial)
            if record is None:
                err.write(f"mleray logs: {trial} has not written a log yet (use --follow to wait for it)\n")
                return 1
            err.write(f"mleray logs: {trial} has no {LOG}; {outcome(record)}\n")
        return 0
    try:
        while True:
            now = time.monotonic()
            if now - last_records_check >= max(poll * 4, 1.0):
                last_records_check = now
                record = follower.poll()
                if record is not None:
                    drain()  # the last lines written before the record
                    err.write(outcome(record) + "\n")
                    return 0
            if deadline is not None and now > deadline:
                return 124
            time.sleep(poll)
            drain()
    except KeyboardInterrupt:
        return 130


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(prog="mleray logs", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="the sweep's name")
    parser.add_argument("trial", help="a trial id, or a unique part of one")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the trial ends")
    parser.add_argument("--storage", default=os.environ.get("MLERAY_STORAGE", "runs"),
                        help="the sweep config's storage: a path or a URI such as s3://bucket/prefix (default: runs)")
    parser.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        storage, trial = _find(args, err)
        return show(storage, trial, args.follow, out, err, poll=args.poll)
    except (LogsError, StorageError) as error:
        err.write(f"mleray logs: {error}\n")
        return 2
    except KeyboardInterrupt:
        return 130


def _find(args: argparse.Namespace, err: TextIO) -> Tuple[SweepStorage, str]:
    """The sweep's storage and the trial id. With --follow, waits (saying so once) until the sweep, the
    trial and its log exist: following a trial that is about to start is how one watches it start."""
    said = False
    while True:
        try:
            storage = _open_existing(args.storage, args.sweep)
            trial = resolve_trial(storage, args.trial)
            if not args.follow or storage.size(f"trials/{trial}/{LOG}") is not None or trial in _records(storage):
                return storage, trial
        except NotStarted:
            if not args.follow:
                raise
            trial = args.trial
        if not said:
            err.write(f"mleray logs: waiting for trial {trial} to start "
                      f"(sweep {args.sweep!r} under {args.storage}; Ctrl-C stops)...\n")
            err.flush()
            said = True
        time.sleep(args.poll)


def _open_existing(storage_uri: str, sweep: str) -> SweepStorage:
    """Opens a sweep's storage without creating the sweep: a wrong name is an error, not a new folder."""
    from pathlib import Path

    from mleray.storage.backends import _is_uri, split_uri

    if _is_uri(storage_uri):
        import pyarrow.fs as pafs

        fs, base = split_uri(storage_uri)
        exists = fs.get_file_info(f"{base}/{sweep}").type == pafs.FileType.Directory
        root_list = _list_sweeps_arrow(fs, base) if not exists else []
    else:
        base_path = Path(storage_uri).expanduser()
        exists = (base_path / sweep).is_dir()
        root_list = (sorted(p.name for p in base_path.iterdir() if p.is_dir())
                     if base_path.is_dir() and not exists else [])
    if not exists:
        hint = (f" (sweeps there: {', '.join(root_list[:10])})" if root_list
                else " (use --storage to point at the sweep's storage)")
        raise NotStarted(f"no sweep {sweep!r} under {storage_uri}{hint}")
    return open_sweep_storage(storage_uri, sweep, repair=False)  # a reader never rewrites trials.jsonl


def _list_sweeps_arrow(fs, base: str) -> List[str]:
    import pyarrow.fs as pafs

    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=False, allow_not_found=True))
    except Exception:
        return []
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


if __name__ == "__main__":
    sys.exit(main())
