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

import gc
import json
import mmap
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, cast

from omegaconf import OmegaConf

from mleray.errors import one_line
from mleray.records import _attempt, _parse_line, is_final, parse_lines, warn_bad_line
from mleray.storage.backends import RECORDS, REJECTED, StorageError, SweepStorage, open_location

CONFIG = "config.yaml"
# Keys that change neither which trials run nor how they are graded (name and storage only say where
# the sweep folder is): a resumed sweep may change them freely.
FREE_KEYS = ("name", "storage", "ray", "max_in_flight", "report", "retries")
_UNSET = object()
RESULT = "result.json"  # in each trial folder, trials/<trial id>/ (mleray.trial.folder.TrialPaths.result)
MAX_RESULT_BYTES = 16 << 20  # a result.json larger than this is not read back (a record is a few KB)
INDEX = "trials.jsonl.idx"  # beside a local trials.jsonl: where each record line ends, its trial and attempt
FLUSH_EVERY_S = 2.0  # on an object store, a finished trial's record waits at most this long to be written
FLUSH_RECORDS = 256  # ... or until this many wait


class AppendError(StorageError):
    """A record could not be appended to trials.jsonl: the sweep stops; the message names the file, the
    error and where the trial's result is kept."""


def _reason(err: BaseException) -> str:
    """An I/O error as `[Errno 28] No space left on device`, without the file name (the message has it)."""
    if isinstance(err, OSError) and err.errno and err.strerror:
        return f"[Errno {err.errno}] {err.strerror}"
    return one_line(err)


class SweepStore:
    """The driver's view of `<storage>/<sweep>/`: an index of the records so far, and where trials write
    their folders.

    The driver keeps only a small index per recorded trial (its attempt and whether it is final), never
    the records themselves: `records` and `iter_records()` read them back from trials.jsonl, and `done`
    is a set kept up to date as records are appended, so resuming and every membership test take
    linear time. On storage where each append costs a request (an object store), appends made with
    `append(record, flush=False)` are batched: `flush_due()` writes them as one part object once the
    oldest has waited FLUSH_EVERY_S or FLUSH_RECORDS have piled up, `flush()` (and `compact()`) at once.
    A record not yet flushed when the driver dies is not lost: its trial's result.json is in the trial
    folder, and the next open records it (`_pick_up_results`).

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
        self._pending: List[Tuple[dict, str]] = []  # (record, its line) appended but not yet written
        self._waiting: Dict[str, Tuple[int, bool]] = {}  # their index entries, noted once written
        self._pending_since = 0.0
        self._index: Dict[str, Tuple[int, bool]] = {}  # trial id -> (attempt of its record, final?)
        self._done: set = set()
        self._end, self._crc = 0, 0  # bytes of the local trials.jsonl and their CRC-32, for the line index
        try:
            self.storage.repair()  # again, in case it was opened with repair=False
            self.storage.compact()  # a resumed sweep on an object store starts from one whole trials.jsonl
            paused = gc.isenabled()
            gc.disable()  # a bulk load of small objects: the collector would walk the heap again and again
            try:
                indexed = self._open_indexed()
            finally:
                if paused:
                    gc.enable()
            if indexed:
                self._pick_up_results()
                return
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
        for record in parsed.records:
            self._note(record)
        del parsed
        self._rebuild_index()
        self._pick_up_results()

    # -- the line index of a local trials.jsonl -------------------------------------------------
    # trials.jsonl.idx holds one line per record line: `<end offset> <CRC-32 of the file up to there>
    # <attempt> <final 0/1> <trial id>`. Opening a store trusts the lines it covers only if the file's
    # CRC-32 up to the last entry's offset matches (one pass of zlib over the bytes, no JSON parsed);
    # lines after it are parsed as usual. Any mismatch, bad line or duplicate falls back to the full
    # parse (parse_lines, which moves bad lines out) and the index is rebuilt: the same rules decide.
    @property
    def _index_path(self) -> Optional[Path]:
        return self.path.with_name(INDEX) if self.path is not None and not self.storage.buffered else None

    def _open_indexed(self) -> bool:
        """Fills the index from trials.jsonl.idx and the lines after it; False: use the full parse."""
        idx = self._index_path
        if idx is None or self.path is None or not self.path.exists():
            return False
        size = self.path.stat().st_size
        index: Dict[str, Tuple[int, bool]] = {}
        end, crc = _read_index(idx, index) if size else (0, 0)
        if end < 0 or end > size:
            return False  # an entry repeats a trial against the rules, or the file is shorter: parse fully
        with open(self.path, "rb") as f:
            if end:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    with memoryview(mapped) as view:
                        if zlib.crc32(view[:end]) != crc:
                            return False
            f.seek(end)
            data = f.read()
        tail: List[Tuple[int, int, str, int, bool]] = []
        for raw in _complete_lines_from(data, 0):
            _, record, _ = _parse_line(raw)
            if record is None:
                return False
            crc = zlib.crc32(raw + b"\n", crc)
            end += len(raw) + 1
            trial, attempt, final = record["trial_id"], int(_attempt(record.get("attempt")) or 0), is_final(record)
            if not _supersedes_entry(index.get(trial), attempt):
                return False  # a duplicate: the full parse moves it out
            index[trial] = (attempt, final)
            tail.append((end, crc, trial, attempt, final))
        if end != size:  # a torn last line repair() did not end or cut: parse fully
            return False
        self._index = index
        self._done = {trial for trial, (_, final) in index.items() if final}
        self._end, self._crc = end, crc
        if tail:
            self._write_index(tail)
        return True

    def _rebuild_index(self) -> None:
        """Writes trials.jsonl.idx afresh for the whole file (after the full parse)."""
        idx = self._index_path
        if idx is None or self.path is None:
            return
        idx.unlink(missing_ok=True)
        data = self.path.read_bytes() if self.path.exists() else b""
        entries = []
        end = crc = 0
        for raw in _complete_lines_from(data, 0):
            end += len(raw) + 1
            crc = zlib.crc32(raw + b"\n", crc)
            _, record, _ = _parse_line(raw)
            if record is None:  # not clean after all: no index (the next open parses fully)
                return
            entries.append((end, crc, record["trial_id"], int(_attempt(record.get("attempt")) or 0), is_final(record)))
        self._end, self._crc = end, crc
        self._write_index(entries)

    def _index_written(self, pending: List[Tuple[dict, str]]) -> None:
        """Adds the lines just appended to trials.jsonl.idx."""
        if self._index_path is None:
            return
        entries = []
        for record, line in pending:
            raw = line.encode("utf-8") + b"\n"
            self._end += len(raw)
            self._crc = zlib.crc32(raw, self._crc)
            attempt = int(record.get("attempt") or 0)
            entries.append((self._end, self._crc, record["trial_id"], attempt, is_final(record)))
        self._write_index(entries)

    def _write_index(self, entries: List[Tuple[int, int, str, int, bool]]) -> None:
        idx = self._index_path
        if idx is None:
            return
        try:
            if any(any(c in trial for c in "\r\n") for _, _, trial, _, _ in entries):
                raise ValueError("a trial id with a line break")
            with open(idx, "a", encoding="utf-8") as f:
                f.write("".join(f"{end} {crc:08x} {attempt} {int(final)} {trial}\n"
                                for end, crc, trial, attempt, final in entries))
        except (OSError, ValueError):  # no index: the next open parses the whole file, as without one
            idx.unlink(missing_ok=True)

    def _note(self, record: dict) -> None:
        trial, final = record["trial_id"], is_final(record)
        self._index[trial] = (int(record.get("attempt") or 0), final)
        if final:
            self._done.add(trial)
        else:
            self._done.discard(trial)

    @property
    def done(self) -> set:
        """The trials whose record is final (an infrastructure failure is not: it runs again). The
        store's own set, kept up to date as records are appended: read it, do not change it."""
        return self._done

    def __len__(self) -> int:
        """How many trials are recorded (infrastructure failures included)."""
        return len(self._index)

    @property
    def records(self) -> List[dict]:
        """The record that counts of each trial recorded, infrastructure failures included, in the order
        of trials.jsonl (read back from it: the store keeps none in memory)."""
        return list(self.iter_records())

    def iter_records(self) -> Iterator[dict]:
        """`records` one at a time, streamed from trials.jsonl (on a path, a line at a time)."""
        self.flush()
        for raw in self._raw_lines():
            text, record, _ = _parse_line(raw)
            if record is None:
                continue
            held = self._index.get(record["trial_id"])
            if held is not None and held[0] == _attempt(record.get("attempt")):
                yield record

    def _raw_lines(self) -> Iterator[bytes]:
        if self.path is None or self.storage.buffered:  # parts to merge in: read through the storage
            yield from self.storage.read_raw_lines()
            return
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):  # a torn last line is not a record
                    yield line

    def next_attempt(self, trial: str) -> int:
        """The attempt a trial not done runs as: one past its recorded infrastructure failure, else 0."""
        held = self._index.get(trial)
        return held[0] + 1 if held is not None else 0

    def _supersedes(self, record: dict) -> bool:
        """Whether `record` is to be recorded: its trial has no record, or only an infrastructure
        failure of an earlier attempt."""
        held = self._waiting.get(record["trial_id"]) or self._index.get(record["trial_id"])
        return held is None or (not held[1] and int(record.get("attempt") or 0) > held[0])

    def append(self, record: dict, flush: bool = True) -> bool:
        """Appends one finished trial; with `flush` (the default) it is durable before this returns,
        else it waits for the next `flush_due()`/`flush()` (one write for all waiting). Returns False if it
        was already recorded (a final record, or this attempt or a later one). Raises AppendError when
        the storage refuses the line (permission, a full disk, an object store error)."""
        if not self._supersedes(record):
            return False
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((record, json.dumps(record, default=str, sort_keys=False)))
        self._waiting[record["trial_id"]] = (int(record.get("attempt") or 0), is_final(record))
        if flush:
            self.flush()
        return True

    def flush_due(self) -> None:
        """Writes the waiting records if due: at once on a path, on an object store once the oldest has
        waited FLUSH_EVERY_S or FLUSH_RECORDS wait."""
        if self._pending and (not self.storage.buffered or len(self._pending) >= FLUSH_RECORDS
                              or time.monotonic() - self._pending_since >= FLUSH_EVERY_S):
            self.flush()

    def flush(self) -> None:
        """Writes every waiting record in one append (one part object on an object store)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._waiting.clear()
        try:
            self.storage.append_lines([line for _, line in pending])
        except Exception as err:  # OSError, pyarrow's errors, StorageError: all stop the sweep the same way
            raise AppendError(f"cannot append to {self.shown}: {_reason(err)}; "
                              + "; ".join(self._kept(record["trial_id"]) for record, _ in pending[:3])
                              + (f" (and {len(pending) - 3} more trials)" if len(pending) > 3 else "")) from None
        for record, _ in pending:  # only now: a record the storage refused is not recorded
            self._note(record)
        self._index_written(pending)

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
            if trial in self._done:
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
            self.append(record, flush=False)
            print(f"mleray: {self.storage.shown(path)}: recorded (its trial finished, but its record was "
                  f"missing from {RECORDS})", file=sys.stderr, flush=True)
        self.flush()  # every record picked up, in one write

    def compact(self) -> None:
        """Writes what waits, then folds an object store's parts into one trials.jsonl (at sweep end; a
        no-op on a path)."""
        self.flush()
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


def _supersedes_entry(held: Optional[Tuple[int, bool]], attempt: int) -> bool:
    """Whether a line of `attempt` may follow the trial's earlier line `held` in a clean trials.jsonl: only
    a later attempt after an infrastructure failure (parse_lines's rule for history, which the store
    keeps by appending nothing else)."""
    return held is None or (not held[1] and attempt > held[0])


def _read_index(idx: Path, index: Dict[str, Tuple[int, bool]]) -> Tuple[int, int]:
    """Fills `index` (trial -> (attempt, final)) from trials.jsonl.idx; returns (end, crc) of its last
    entry: (0, 0) for no index, and end -1 when an entry breaks the rules (a trial repeated other than
    by a later attempt after an infrastructure failure; an offset that does not grow). A torn or
    malformed line ends the index there (the lines after it are parsed)."""
    try:
        text = idx.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 0, 0
    end, crc = 0, 0
    for line in text.split("\n")[:-1]:
        try:
            at, check, attempt_text, final_text, trial = line.split(" ", 4)
            offset, attempt, checksum = int(at), int(attempt_text), int(check, 16)
        except ValueError:
            break
        if offset <= end or final_text not in ("0", "1") or not trial.strip():
            break
        if not _supersedes_entry(index.get(trial), attempt):
            return -1, 0
        index[trial] = (attempt, final_text == "1")
        end, crc = offset, checksum
    return end, crc


def _complete_lines_from(data: bytes, start: int) -> Iterator[bytes]:
    """The complete lines of data[start:], without their newlines (blank ones too)."""
    while True:
        stop = data.find(b"\n", start)
        if stop < 0:
            return
        yield data[start:stop]
        start = stop + 1


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
