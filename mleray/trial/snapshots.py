"""Submission snapshots: every `interval` seconds the current submission is copied out if it
changed, stamped with the elapsed time, so one long run yields a time-scaling curve. The agent is
still running while this reads its file: links, FIFOs and files over the sweep's `max_submission_mb` are
skipped, never followed; the copy is streamed (memory stays one chunk whatever the file's size)."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from mleray.trial.agent_files import MAX_SUBMISSION_MB, AgentFileError, copy_fd, max_bytes, open_regular

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float
    path: Path


class Snapshotter:
    """Context manager: a thread takes snapshots while the agent runs, and one last on exit."""

    def __init__(self, submission: Path, folder: Path, interval: float, t0: float,
                 max_submission_mb: float = MAX_SUBMISSION_MB):
        self.submission, self.folder, self.interval, self.t0 = Path(submission), Path(folder), interval, t0
        self.max_bytes = max_bytes(max_submission_mb)
        self.refused: Optional[str] = None  # why the last look did not copy the file, when it was refused
        self._last: Optional[str] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="snapshots", daemon=True)

    def take(self) -> Optional[Snapshot]:
        """Copies the submission out if it exists and changed since the last snapshot."""
        try:
            fd = open_regular(self.submission, self.max_bytes)
        except FileNotFoundError:
            return None
        except (OSError, AgentFileError) as err:  # something the host does not read: skipped, said once
            if str(err) != self.refused:
                log.info("snapshot skipped: %s", err)
            self.refused = str(err)
            return None
        self.refused = None
        partial = self.folder / ".partial.csv"
        digest = hashlib.sha256()
        try:
            with open(partial, "wb") as out:
                copy_fd(fd, out, self.max_bytes, self.submission.name, digest)
        except (OSError, AgentFileError) as err:
            self.refused = str(err)
            partial.unlink(missing_ok=True)
            return None
        finally:
            os.close(fd)
        if digest.hexdigest() == self._last:
            partial.unlink(missing_ok=True)
            return None
        elapsed = time.monotonic() - self.t0
        target = self.folder / f"{elapsed:010.1f}s.csv"
        os.replace(partial, target)
        self._last = digest.hexdigest()
        return Snapshot(round(elapsed, 1), target)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.take()

    def __enter__(self) -> "Snapshotter":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.take()

    @staticmethod
    def list(folder: Path) -> List[Snapshot]:
        """All snapshots in a folder, oldest first."""
        return [Snapshot(float(p.name[:-5]), p) for p in sorted(Path(folder).glob("*s.csv"))]
