"""A sweep's records: `trials.jsonl` in the sweep's storage, one line appended durably per finished trial.

Works on any `SweepStorage` (a local or shared path, or an object store such as S3). Survives a
driver killed mid-write: a torn last line is cut off before the next append, and the trial it
belonged to is simply not done yet. Each trial id is recorded at most once; reading is
`records.read_records`, shared with every other reader of the file. `config.yaml` holds the
config the sweep was run with; `config_changes` compares it with another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, cast

from omegaconf import OmegaConf

from mleray.records import read_records
from mleray.storage.backends import RECORDS, SweepStorage, open_location

CONFIG = "config.yaml"
# Keys that change neither which trials run nor how they are graded (name and storage only say where
# the sweep folder is): a resumed sweep may change them freely.
FREE_KEYS = ("name", "storage", "ray", "max_in_flight", "report", "retries")
_UNSET = object()


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
        self.storage.compact()  # a resumed sweep on an object store starts from one whole trials.jsonl
        records = read_records(self.storage.read_lines(), f"{self.location}/{RECORDS}")
        self._records: Dict[str, dict] = {record["trial_id"]: record for record in records}

    @property
    def done(self) -> set:
        return set(self._records)

    @property
    def records(self) -> List[dict]:
        return list(self._records.values())

    def append(self, record: dict) -> bool:
        """Appends one finished trial, durable before it returns. Returns False if it was already recorded."""
        trial = record["trial_id"]
        if trial in self._records:
            return False
        self.storage.append_line(json.dumps(record, default=str, sort_keys=False))
        self._records[trial] = record
        return True

    def compact(self) -> None:
        """Folds an object store's per-trial parts into one trials.jsonl (at sweep end; a no-op on a path)."""
        self.storage.compact()

    def read_config(self) -> Optional[str]:
        """The config.yaml the sweep was last run with, or None."""
        return self.storage.read_file(CONFIG).decode() if self.storage.size(CONFIG) is not None else None

    def write_config(self, text: str) -> None:
        self.storage.write_file(CONFIG, text)


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
