"""One driver per sweep: a lock in the sweep folder naming who runs it (host, pid, start) with a heartbeat.

    with SweepLock(storage, name):   # LockHeld (one line naming the running driver) when another runs it
        ...                          # a daemon thread refreshes the heartbeat every HEARTBEAT_S

On a local or shared path the lock is `driver.lock`, created with O_EXCL (one creator wins; a takeover
happens under an flock of `driver.lock.takeover`, re-reading the lock inside it). On an object store it
is a lease object written through the SweepStorage API: written, then read back after SETTLE_S, and held
only if it still names this driver (object stores have no exclusive create; two drivers racing within
SETTLE_S are told apart by that read-back, best effort).

A lock is stale, and taken over with a one-line note, when its pid is dead on this host, or its
heartbeat is older than STALE_S (a driver on another host, or a frozen one). Released at exit.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from typing import Optional

from mleray.storage.backends import StorageError, SweepStorage

LOCK = "driver.lock"
HEARTBEAT_S = 5.0
STALE_S = 60.0
SETTLE_S = 2.0


class LockHeld(StorageError):
    """Another driver runs this sweep; the message names it (pid, host, heartbeat age)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _zombie(pid: int) -> bool:
    """A dead child not yet waited for still answers kill(pid, 0)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class SweepLock:
    """The lock of one sweep folder (see the module's docstring)."""

    def __init__(self, storage: SweepStorage, name: str, heartbeat_s: float = HEARTBEAT_S,
                 stale_s: float = STALE_S):
        self.storage, self.name = storage, name
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.token = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.started = time.time()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._held = False

    # ----------------------------------------------------------------- the lock's content
    def _body(self) -> bytes:
        return json.dumps({"host": self.host, "pid": self.pid, "started": self.started,
                           "heartbeat": time.time(), "token": self.token, "sweep": self.name}).encode()

    def _read(self) -> Optional[dict]:
        """The lock as written (None: no lock; {} for an unreadable one, which counts as stale)."""
        try:
            if self.storage.local_path is not None:
                data = (self.storage.local_path / LOCK).read_bytes()
            elif self.storage.size(LOCK) is None:
                return None
            else:
                data = self.storage.read_file(LOCK)
        except FileNotFoundError:
            return None
        try:
            found = json.loads(data.decode("utf-8"))
        except ValueError:
            return {}
        if not isinstance(found, dict):
            return {}
        return None if found.get("released") else found

    def _write(self) -> None:
        """Replaces the lock with this driver's (atomically on a path)."""
        if self.storage.local_path is not None:
            path = self.storage.local_path / LOCK
            tmp = path.with_name(f"{LOCK}.{self.token}.tmp")
            tmp.write_bytes(self._body())
            os.replace(tmp, path)
        else:
            self.storage.write_file(LOCK, self._body())

    def stale(self, held: dict) -> Optional[str]:
        """Why the lock `held` is stale ("pid 12 is not running", "heartbeat 75 s ago"), or None if live."""
        try:
            age = time.time() - float(held["heartbeat"])
            host, pid = str(held["host"]), int(held["pid"])
        except (KeyError, TypeError, ValueError):
            return "the lock is unreadable"
        if host == self.host and (not _alive(pid) or _zombie(pid)):
            return f"pid {pid} on host {host} is not running"
        if age > self.stale_s:
            return f"its heartbeat is {age:.0f} s old"
        return None

    def _refusal(self, held: dict) -> LockHeld:
        age = time.time() - float(held.get("heartbeat", 0))
        return LockHeld(f"sweep {self.name} is already being run by pid {held.get('pid')} on host "
                        f"{held.get('host')} (heartbeat {age:.0f} s ago); wait for it to end or stop it "
                        f"(a lock whose heartbeat is over {self.stale_s:.0f} s old is taken over: "
                        f"{self._where()})")

    def _where(self) -> str:
        if self.storage.local_path is not None:
            return str(self.storage.local_path / LOCK)
        return f"{self.storage.location.split('?', 1)[0]}/{LOCK}"

    # ----------------------------------------------------------------- acquire / release
    def acquire(self) -> None:
        """Takes the lock, or raises LockHeld naming the live driver that holds it. Prints a one-line note
        when it takes over a stale one. Raises StorageError when the folder cannot hold a lock."""
        try:
            if self.storage.local_path is not None:
                self._acquire_path()
            else:
                self._acquire_lease()
        except OSError as err:
            raise StorageError(f"cannot lock {self._where()}: {err.strerror or err}") from None
        self._held = True
        self._thread = threading.Thread(target=self._beat, name="sweep-lock", daemon=True)
        self._thread.start()

    def _acquire_path(self) -> None:
        assert self.storage.local_path is not None
        path = self.storage.local_path / LOCK
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            with open(path.with_name(LOCK + ".takeover"), "a") as guard:
                fcntl.flock(guard, fcntl.LOCK_EX)  # one taker at a time; the holder never waits on it
                held = self._read()
                if held is not None:
                    why = self.stale(held)
                    if why is None:
                        raise self._refusal(held) from None
                    self._note(held, why)
                self._write()
            return
        with os.fdopen(fd, "wb") as out:
            out.write(self._body())

    def _acquire_lease(self) -> None:
        held = self._read()
        if held is not None:
            why = self.stale(held)
            if why is None:
                raise self._refusal(held)
            self._note(held, why)
        self._write()
        time.sleep(SETTLE_S)  # a driver racing us writes within this; the last writer holds it
        now = self._read() or {}
        if now.get("token") != self.token:
            raise self._refusal(now)

    def _note(self, held: dict, why: str) -> None:
        print(f"mleray: note: taking over the lock of sweep {self.name} from pid {held.get('pid')} on host "
              f"{held.get('host')} ({why})", file=sys.stderr, flush=True)

    def _beat(self) -> None:
        """Refreshes the heartbeat; stops (with a warning) if another driver took the lock over."""
        while not self._stop.wait(self.heartbeat_s):
            try:
                held = self._read() or {}
                if held.get("token") != self.token:
                    print(f"mleray: warning: the lock of sweep {self.name} was taken over by pid {held.get('pid')} "
                          f"on host {held.get('host')}", file=sys.stderr, flush=True)
                    return
                self._write()
            except Exception:
                pass  # a storage hiccup: the next beat tries again (STALE_S allows a dozen misses)

    def release(self) -> None:
        """Stops the heartbeat and removes the lock if it is still this driver's. Never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_s + 5)
        if not self._held:
            return
        self._held = False
        try:
            if (self._read() or {}).get("token") != self.token:
                return
            if self.storage.local_path is not None:
                (self.storage.local_path / LOCK).unlink(missing_ok=True)
            else:  # the storage API has no file delete: a released lease reads as no lease
                self.storage.write_file(LOCK, json.dumps({"released": True, "token": self.token}).encode())
        except Exception:
            pass

    def __enter__(self) -> "SweepLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
