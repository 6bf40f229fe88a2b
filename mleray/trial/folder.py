"""A trial's folder, `trials/<trial id>/`: its layout (TrialPaths) and where it is written on the node
that runs it (trial_folder).

A local or shared sweep path: in place. An object store (s3://...): a node-local scratch folder
`<scratch>/<sweep>/<trial id>`, whose agent.log is mirrored to the storage every MIRROR_EVERY_S (so
`mleray logs --follow` works while the trial runs), uploaded whole when the trial ends (regular files
only: links and special files are skipped and named in agent.log), then removed.
"""

from __future__ import annotations

import shutil
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mleray.paths import scratch_dir
from mleray.storage.backends import SweepStorage, is_local_location, open_location

MIRROR_EVERY_S = 10.0
INSTRUCTIONS = Path(__file__).with_name("instructions.txt")  # mleray's own; MLE-bench's when its clone is installed


@dataclass
class TrialPaths:
    """A trial's folder: `<sweep>/trials/<trial id>/`."""

    root: Path

    @property
    def submission(self) -> Path: return self.root / "submission"
    @property
    def code(self) -> Path: return self.root / "code"
    @property
    def logs(self) -> Path: return self.root / "logs"
    @property
    def snapshots(self) -> Path: return self.root / "snapshots"
    @property
    def agent_log(self) -> Path: return self.root / "agent.log"
    @property
    def result(self) -> Path: return self.root / "result.json"
    @property
    def instructions(self) -> Path: return self.root / "instructions.txt"
    @property
    def instructions_obfuscated(self) -> Path: return self.root / "instructions_obfuscated.txt"

    def fresh(self) -> "TrialPaths":
        """Empties what an earlier attempt left, so an attempt never grades its predecessor's file."""
        if self.root.exists():
            shutil.rmtree(self.root)
        for folder in (self.submission, self.code, self.logs, self.snapshots):
            folder.mkdir(parents=True, exist_ok=True)
        from mleray.sandbox.mlebench_images import instructions  # MLE-bench's text from its clone, else ours

        shutil.copyfile(instructions(), self.instructions)
        shutil.copyfile(instructions(obfuscated=True), self.instructions_obfuscated)
        return self


class LogMirror:
    """A background thread that copies a growing local file to the storage whenever its size changes.

    Object stores cannot append, so each copy rewrites the whole object; a reader following it with
    `read_from(path, offset)` still sees only the new bytes.
    """

    def __init__(self, storage: SweepStorage, local: Path, dest: str, every: float = MIRROR_EVERY_S):
        self.storage, self.local, self.dest, self.every = storage, Path(local), dest, every
        self._stop = threading.Event()
        self._sent = -1
        self._thread = threading.Thread(target=self._loop, name="log-mirror", daemon=True)

    def __enter__(self) -> "LogMirror":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.push()
            except Exception:  # a storage hiccup costs one round of mirroring, never the trial
                pass

    def push(self) -> None:
        """Copies the file now if it grew or changed size since the last copy."""
        try:
            data = self.local.read_bytes()
        except FileNotFoundError:
            return
        if len(data) != self._sent:
            self.storage.write_file(self.dest, data)
            self._sent = len(data)


def upload(storage: SweepStorage, root: Path, dest: str) -> list[str]:
    """Uploads the trial folder `root` to `dest`; what it skipped (links, FIFOs, sockets, devices the
    agent planted: never followed, never opened) is said in agent.log, "upload: skipped submission/x
    (a symbolic link)", and that log uploaded again. Returns the skip notes."""
    skipped = storage.upload_dir(root, dest)
    if skipped:
        log = root / "agent.log"
        with open(log, "a", encoding="utf-8") as out:
            out.writelines(f"upload: skipped {note}\n" for note in skipped)
        storage.write_file(f"{dest}/agent.log", log.read_bytes())
    return skipped


@contextmanager
def trial_folder(location: str | Path, sweep: str, trial_id: str,
                 mirror_every: float = MIRROR_EVERY_S) -> Iterator[Path]:
    """Yields the local folder the trial writes into; for an object store, uploads it on exit (also
    when the trial raised, so its log is kept) and removes the scratch."""
    if is_local_location(location):
        yield Path(location) / "trials" / trial_id
        return
    storage = open_location(location, repair=False)  # a trial never rewrites trials.jsonl
    if storage.local_path is not None:  # file:// — a path after all
        yield storage.local_path / "trials" / trial_id
        return
    dest = f"trials/{trial_id}"
    root = scratch_dir() / sweep / trial_id
    storage.delete_dir(dest)  # an earlier attempt's files never mix with this one's
    try:
        with LogMirror(storage, root / "agent.log", f"{dest}/agent.log", mirror_every):
            yield root
    except BaseException:
        try:  # keep what the failed trial left (its log says why); the trial's own error is what counts
            if root.is_dir():
                upload(storage, root, dest)
        except Exception:
            pass
        raise
    else:
        upload(storage, root, dest)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        try:
            root.parent.rmdir()  # the sweep's scratch folder, once its last trial is gone
        except OSError:
            pass
