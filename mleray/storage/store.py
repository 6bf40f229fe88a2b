"""A sweep's records: `trials.jsonl` in the sweep's storage, one line appended durably per finished trial.

Works on any `SweepStorage` (a local or shared path, or an object store such as S3). Opening the
store (a sweep starting or resuming) leaves `trials.jsonl` clean whatever happened to it:
- a torn last line (a driver killed mid-write) and every other bad line (`records.parse_lines`: not
  UTF-8, not JSON, not an object, no trial_id, a duplicate) is moved to `trials.jsonl.rejected`
  with one warning each naming `trials.jsonl:<n>`, and the file is rewritten without them;
- a trial folder's `result.json` whose trial has no record (its append failed, or its driver died
  between the two) is appended, so the trial is not run again.
A trial is done when its record is final (`records.is_final`): an infrastructure failure runs
again, as the next attempt. A failing append stops the sweep with an AppendError saying where the
result is kept. `config.yaml` holds the config the sweep was run with; `config_changes` compares
it with another.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, cast

from omegaconf import OmegaConf

from mleray.errors import one_line
from mleray.records import is_final, parse_lines, warn_bad_line
from mleray.storage.backends import RECORDS, REJECTED, StorageError, SweepStorage, open_location

CONFIG = "config.yaml"
# Keys that change neither which trials run nor how they are graded (name and storage only say where
# the sweep folder is): a resumed sweep may change them freely.
FREE_KEYS = ("name", "storage", "ray", "max_in_flight", "report", "retries")
_UNSET = object()
RESULT = "result.json"  # in each trial folder, trials/<trial id>/ (mleray.trial.folder.TrialPaths.result)
MAX_RESULT_BYTES = 16 << 20  # a result.json larger than this is not read back (a record is a few KB)


class AppendError(StorageError):
    """A record could not be appended to trials.jsonl: the sweep stops; the message names the file, the
    error and where the trial's result is kept."""


def _reason(err: BaseException) -> str:
    """An I/O error as `[Errno 28] No space left on device`, without the file name (the message has it)."""
    if isinstance(err, OSError) and err.errno and err.strerror:
        return f"[Errno {err.errno}] {err.strerror}"
    return one_line(err)


class SweepStore:
    """The driver's view of `<storage>/<sweep>/`: the records so far, and where trials write their folders.

    `location` is the string each trial receives (open it with `storage.open_location`). `dir` is the
    sweep folder as a Path when it is one, else the same string as `location`, so `str(store.dir)` is
    always what to hand a trial. `path` is the local trials.jsonl (None on an object store).
    """

    def __init__(self, storage: SweepStorage | Path | str):
        self.storage = storage if isinstance(storage, SweepStorage) else open_location(storage)
        self.location = self.storage.location
        local = self.storage.local_path
        self.dir = local if local is not None else self.location
        self.path: Optional[Path] = local / RECORDS if local is not None else None
        self.shown = self.storage.shown(RECORDS)
        try:
            self.storage.repair()  # again, in case it was opened with repair=False
            self.storage.compact()  # a resumed sweep on an object store starts from one whole trials.jsonl
            parsed = parse_lines(self.storage.read_raw_lines())
        except OSError as err:
            raise StorageError(f"cannot open {self.shown}: {_reason(err)}") from None
        if parsed.bad:
            try:  # the rejected file first: a bad line is never lost, even if the rewrite fails
                self.storage.append_rejected([bad.entry(RECORDS) for bad in parsed.bad])
                self.storage.rewrite_records(parsed.keep)
            except (OSError, StorageError) as err:
                raise StorageError(f"cannot move the bad lines of {self.shown} to {REJECTED}: {_reason(err)}") from None
            for bad in parsed.bad:
                warn_bad_line(self.shown, bad, f"moved to {REJECTED}")
        self._records: Dict[str, dict] = {record["trial_id"]: record for record in parsed.records}
        self._pick_up_results()

    @property
    def done(self) -> set:
        """The trials whose record is final (an infrastructure failure is not: it runs again)."""
        return {trial for trial, record in self._records.items() if is_final(record)}

    @property
    def records(self) -> List[dict]:
        """The record that counts of each trial recorded, infrastructure failures included."""
        return list(self._records.values())

    def next_attempt(self, trial: str) -> int:
        """The attempt a trial not done runs as: one past its recorded infrastructure failure, else 0."""
        record = self._records.get(trial)
        return int(record.get("attempt") or 0) + 1 if record is not None else 0

    def _supersedes(self, record: dict) -> bool:
        """Whether `record` is to be recorded: its trial has no record, or only an infrastructure
        failure of an earlier attempt."""
        old = self._records.get(record["trial_id"])
        return old is None or (not is_final(old) and int(record.get("attempt") or 0) > int(old.get("attempt") or 0))

    def append(self, record: dict) -> bool:
        """Appends one finished trial, durable before it returns. Returns False if it was already
        recorded (a final record, or this attempt or a later one). Raises AppendError when the
        storage refuses the line (permission, a full disk, an object store error)."""
        if not self._supersedes(record):
            return False
        trial = record["trial_id"]
        try:
            self.storage.append_line(json.dumps(record, default=str, sort_keys=False))
        except Exception as err:  # OSError, pyarrow's errors, StorageError: all stop the sweep the same way
            raise AppendError(f"cannot append to {self.shown}: {_reason(err)}; {self._kept(trial)}") from None
        self._records[trial] = record
        return True

    def _kept(self, trial: str) -> str:
        """Where the result of a trial whose append failed is, for the error message."""
        result = f"trials/{trial}/{RESULT}"
        try:
            kept = self.storage.size(result) is not None
        except Exception:
            kept = False
        if kept:
            return f"the trial's result is kept in {result} and is recorded on the next run"
        return f"trial {trial} runs again on the next run"

    def _pick_up_results(self) -> None:
        """Appends the result.json of each trial folder whose trial has no record of that attempt
        (its append failed, or the driver died before it): that trial finished and is not run again."""
        try:
            folders = self.storage.list_dir("trials")
        except OSError as err:
            raise StorageError(f"cannot list {self.storage.shown('trials')}: {_reason(err)}") from None
        for trial in folders:
            if trial in self._records and is_final(self._records[trial]):
                continue
            path = f"trials/{trial}/{RESULT}"
            try:
                size = self.storage.size(path)
                if size is None or size > MAX_RESULT_BYTES:
                    continue
                parsed = parse_lines([self.storage.read_file(path).replace(b"\n", b" ")])
            except OSError:
                continue  # unreadable: the trial runs again
            record = parsed.records[0] if parsed.records else None
            if record is None or record["trial_id"] != trial or not self._supersedes(record):
                continue  # half written, or another trial's: the trial runs again
            self.append(record)
            print(f"mleray: {self.storage.shown(path)}: recorded (its trial finished, but its record was "
                  f"missing from {RECORDS})", file=sys.stderr, flush=True)

    def compact(self) -> None:
        """Folds an object store's per-trial parts into one trials.jsonl (at sweep end; a no-op on a path)."""
        try:
            self.storage.compact()
        except OSError as err:
            raise StorageError(f"cannot compact {self.shown}: {_reason(err)}") from None

    def read_config(self) -> Optional[str]:
        """The config.yaml the sweep was last run with, or None."""
        return self.storage.read_file(CONFIG).decode() if self.storage.size(CONFIG) is not None else None

    def write_config(self, text: str) -> None:
        try:
            self.storage.write_file(CONFIG, text)
        except OSError as err:
            raise StorageError(f"cannot write {self.storage.shown(CONFIG)}: {_reason(err)}") from None


def config_changes(old: str, new: str) -> List[str]:
    """`key old -> new` for each setting (dotted key) that differs between two config YAML texts,
    leaving out FREE_KEYS."""
    before, after = (cast(Dict[str, Any], OmegaConf.to_container(OmegaConf.create(text)) or {})
                     for text in (old, new))
    return list(_diff({k: v for k, v in before.items() if k not in FREE_KEYS},
                      {k: v for k, v in after.items() if k not in FREE_KEYS}))


def _diff(old: dict, new: dict, prefix: str = ""):
    for key in dict.fromkeys([*old, *new]):
        a, b = old.get(key, _UNSET), new.get(key, _UNSET)
        if isinstance(a, dict) and isinstance(b, dict):
            yield from _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key} {_show(a)} -> {_show(b)}"


def _show(value) -> str:
    if value is _UNSET:
        return "(unset)"
    return str(int(value) if isinstance(value, float) and value.is_integer() else value)
