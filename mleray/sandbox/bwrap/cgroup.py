"""One cgroup per trial for the bwrap backend: pids, memory, cpuset and CPU quota for the whole process tree.

Without systemd the cgroup file system is written directly (root only). Each limit goes where this
machine offers its controller: the cgroup2 hierarchy when the controller is enabled there, else the v1
hierarchy that mounts it (hybrid hosts: every controller on v1, cgroup2 with none). The trial's folders
sit below the launching process's own cgroup in each hierarchy, `<own>/mleray-trials/<name>`, so a trial
never escapes the limits its node worker runs under. bwrap joins the cgroup before it is exec'd
(`preexec`), so everything it forks is inside from the start; `read_back()` says what held, measured
from the files; `events()` tells OOM kills and refused forks; `destroy()` kills what is left and removes
the folders. A v1 tree is killed race-free by freezing it first; v2 has `cgroup.kill`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mleray.sandbox.cpusets import cpu_list, cpu_text, least_taken

PARENT = "mleray-trials"
CONTROLLERS = ("pids", "memory", "cpuset", "cpu")
V1_NAMES = ("pids", "memory", "cpuset", "cpu", "freezer")


class CgroupError(RuntimeError):
    """A cgroup could not be made or configured (the message says which file and why)."""


def _mounts() -> List[Tuple[str, str, str]]:
    """(mount point, fs type, super options) of every mount of this process."""
    out: List[Tuple[str, str, str]] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) > 4 and len(rest) > 2:
            out.append((fields[4].replace("\\040", " "), rest[0], rest[2]))
    return out


def _own_paths() -> Dict[str, str]:
    """This process's cgroup path by controller ("" for the cgroup2 entry)."""
    own: Dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        for name in ctrls.split(",") if ctrls else [""]:
            own[name] = path
    return own


class Layout:
    """Where each controller lives here: `v2` (the cgroup2 mount or None) with the controllers it offers,
    `v1` controller -> mount point, and this process's own path in each."""

    def __init__(self) -> None:
        self.v2: Optional[Path] = None
        self.v2_controllers: List[str] = []
        self.v1: Dict[str, Path] = {}
        for mount, fstype, opts in _mounts():
            if fstype == "cgroup2" and self.v2 is None:
                self.v2 = Path(mount)
            elif fstype == "cgroup":
                for opt in opts.split(","):
                    if opt in V1_NAMES:
                        self.v1[opt] = Path(mount)
        self.own = _own_paths()
        if self.v2 is not None:
            try:
                self.v2_controllers = (self.v2 / "cgroup.controllers").read_text().split()
            except OSError:
                pass

    def v2_parent(self) -> Optional[Path]:
        return None if self.v2 is None else self.v2 / self.own.get("", "/").lstrip("/") / PARENT

    def v1_parent(self, controller: str) -> Optional[Path]:
        if controller not in self.v1:
            return None
        return self.v1[controller] / self.own.get(controller, "/").lstrip("/") / PARENT

    def where(self, controller: str) -> Optional[str]:
        """"v2", "v1" or None: where a trial's `controller` would go."""
        if controller in self.v2_controllers:
            return "v2"
        return "v1" if controller in self.v1 else None


def sweep_token(sweep_id: str) -> str:
    """The prefix of every cgroup a sweep's trials make (so reap() finds only its own)."""
    return "s" + hashlib.sha256(sweep_id.encode()).hexdigest()[:12]


def cgroup_name(sweep_id: str, trial_id: str, attempt: int) -> str:
    """A unique, file-system-safe folder name for one run of a trial."""
    trial = re.sub(r"[^A-Za-z0-9_.-]", "_", trial_id)[:80]
    return f"{sweep_token(sweep_id)}.{trial}.{attempt}.{os.getpid()}.{os.urandom(3).hex()}"


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as err:
        raise CgroupError(f"cannot write {value!r} to {path}: {err.strerror or err}") from err


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _kv(path: Path) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _ensure_parent(parent: Path, cpuset_v1: bool) -> None:
    """Makes `parent` (the mleray-trials folder); a v1 cpuset one starts with no cpus and mems: copy them."""
    parent.mkdir(exist_ok=True)
    if cpuset_v1:
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not _read(parent / name):
                _write(parent / name, _read(parent.parent / name))


def _rmdir(folder: Path, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() > end:
                return
            time.sleep(0.05)


class TrialCgroup:
    """The cgroup(s) of one trial. `create()` makes them and writes the limits it can; `held` says, per
    limit ("pids", "memory", "cpu"), what was read back, and `missing` why a limit could not be set."""

    def __init__(self, name: str, pids: Optional[int], memory_bytes: Optional[int], cores: int = 0,
                 quota: Optional[float] = None, layout: Optional[Layout] = None):
        self.name, self.pids_max, self.memory_bytes = name, pids, memory_bytes
        self.cores, self.quota = cores, quota
        self.layout = layout or Layout()
        self.dirs: Dict[str, Path] = {}  # "v2" or a v1 controller -> the trial's folder there
        self.held: Dict[str, str] = {}
        self.missing: Dict[str, str] = {}
        self.cpus: List[int] = []

    # -- making --------------------------------------------------------------------------------

    def _dir(self, controller: str) -> Optional[Path]:
        where = self.layout.where(controller)
        return self.dirs.get("v2") if where == "v2" else self.dirs.get(controller)

    def _make(self, key: str, parent: Path, cpuset_v1: bool = False) -> Path:
        for _ in range(3):  # another trial may remove an empty parent between our mkdirs
            try:
                _ensure_parent(parent, cpuset_v1)
                folder = parent / self.name
                folder.mkdir()
                self.dirs[key] = folder
                return folder
            except FileNotFoundError:
                continue
            except OSError as err:
                raise CgroupError(f"cannot make {parent / self.name}: {err.strerror or err}") from err
        raise CgroupError(f"cannot make {parent / self.name}: its parent keeps disappearing")

    def create(self) -> "TrialCgroup":
        """Makes the folders and writes the limits; raises CgroupError when nothing at all can be made."""
        lay = self.layout
        wanted = [c for c in CONTROLLERS if lay.where(c)]
        if not wanted:
            raise CgroupError("no pids, memory, cpuset or cpu controller is mounted")
        try:
            if any(lay.where(c) == "v2" for c in wanted):
                parent = lay.v2_parent()
                assert parent is not None
                parent.mkdir(exist_ok=True)
                for folder in (parent.parent, parent):  # enable the controllers for the children
                    try:
                        (folder / "cgroup.subtree_control").write_text(
                            " ".join("+" + c for c in wanted if lay.where(c) == "v2"))
                    except OSError:
                        pass
                self._make("v2", parent)
            for controller in [*(c for c in wanted if lay.where(c) == "v1"), "freezer"]:
                v1_parent = lay.v1_parent(controller)
                if v1_parent is not None and controller not in self.dirs:
                    self._make(controller, v1_parent, cpuset_v1=controller == "cpuset")
            self._limits()
        except CgroupError:
            self.destroy()
            raise
        return self

    def _try(self, limit: str, fn: Callable[[], str]) -> None:
        try:
            self.held[limit] = fn()
        except CgroupError as err:
            self.missing[limit] = f"not enforced: {err}"

    def _version(self, controller: str) -> str:
        return "cgroup v2" if self.layout.where(controller) == "v2" else "cgroup v1"

    def _limits(self) -> None:
        def pids() -> str:
            folder = self._dir("pids")
            if folder is None:
                raise CgroupError("no pids controller")
            _write(folder / "pids.max", str(self.pids_max))
            return f"{self._version('pids')} pids.max={_read(folder / 'pids.max')}"

        def memory() -> str:
            folder = self._dir("memory")
            if folder is None:
                raise CgroupError("no memory controller")
            assert self.memory_bytes is not None
            if "v2" in self.dirs and folder == self.dirs["v2"]:
                _write(folder / "memory.max", str(self.memory_bytes))
                if (folder / "memory.swap.max").exists():
                    _write(folder / "memory.swap.max", "0")
                read = int(_read(folder / "memory.max") or 0)
            else:
                _write(folder / "memory.limit_in_bytes", str(self.memory_bytes))
                if (folder / "memory.memsw.limit_in_bytes").exists():  # no swapping past the limit
                    _write(folder / "memory.memsw.limit_in_bytes", str(self.memory_bytes))
                read = int(_read(folder / "memory.limit_in_bytes") or 0)
            return f"{self._version('memory')} {read / 2**30:.1f} GiB"

        def cpu() -> str:
            parts = []
            folder = self._dir("cpuset")
            if folder is not None and self.cores:
                self.cpus = pick_cores(self.cores, folder.parent)
                _write(folder / "cpuset.cpus", cpu_text(self.cpus))
                if self.layout.where("cpuset") == "v1":
                    _write(folder / "cpuset.mems", _read(folder.parent / "cpuset.mems"))
                self.cpus = cpu_list(_read(folder / "cpuset.cpus"))
                parts.append(f"cpuset {cpu_text(self.cpus)}")
            elif self.cores:
                self.missing["cpuset"] = "no cpuset controller"
            quota_dir = self._dir("cpu")
            if self.quota and quota_dir is not None:
                period = 100000
                if "v2" in self.dirs and quota_dir == self.dirs["v2"]:
                    _write(quota_dir / "cpu.max", f"{int(self.quota * period)} {period}")
                    got = _read(quota_dir / "cpu.max").split()
                    share = int(got[0]) / int(got[1]) if got and got[0].isdigit() else 0.0
                else:
                    _write(quota_dir / "cpu.cfs_period_us", str(period))
                    _write(quota_dir / "cpu.cfs_quota_us", str(int(self.quota * period)))
                    share = int(_read(quota_dir / "cpu.cfs_quota_us") or 0) / period
                parts.append(f"quota {share:g}")
            elif self.quota:
                self.missing["quota"] = "no cpu controller"
            if not parts:
                raise CgroupError("; ".join(self.missing.values()) or "no cpu limit asked for")
            return " + ".join(parts)

        if self.pids_max:
            self._try("pids", pids)
        if self.memory_bytes:
            self._try("memory", memory)
        if self.cores or self.quota:
            self._try("cpu", cpu)

    # -- joining, watching ---------------------------------------------------------------------

    def preexec(self) -> Callable[[], None]:
        """For subprocess's preexec_fn: the child joins every folder before it execs bwrap."""
        files = [str(folder / "cgroup.procs") for folder in self.dirs.values()]

        def join() -> None:
            for name in files:
                fd = os.open(name, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
        return join

    def members(self) -> List[int]:
        """Host pids of every process in the trial's cgroup."""
        for key in ("v2", "pids", "memory", "freezer", "cpuset", "cpu"):
            if key in self.dirs:
                return [int(p) for p in _read(self.dirs[key] / "cgroup.procs").split() if p.isdigit()]
        return []

    def events(self) -> Dict[str, int]:
        """oom_kill (processes the memory limit killed), pids_refused (forks refused at pids.max),
        cpu_throttled (periods the quota held back), and memory_peak / pids_peak (bytes, processes) where
        the kernel keeps them; -1 when unknown."""
        out = {"oom_kill": 0, "pids_refused": 0, "cpu_throttled": 0, "memory_peak": -1, "pids_peak": -1}
        quota = self._dir("cpu")
        if quota is not None:
            out["cpu_throttled"] = _kv(quota / "cpu.stat").get("nr_throttled", 0)
        memory, pids = self._dir("memory"), self._dir("pids")
        v2 = self.dirs.get("v2")
        if memory is not None:
            if memory == v2:
                out["oom_kill"] = _kv(memory / "memory.events").get("oom_kill", 0)
                peak = _read(memory / "memory.peak")
            else:
                out["oom_kill"] = _kv(memory / "memory.oom_control").get("oom_kill", 0)
                peak = _read(memory / "memory.max_usage_in_bytes")
            out["memory_peak"] = int(peak) if peak.isdigit() else -1
        if pids is not None:
            out["pids_refused"] = _kv(pids / "pids.events").get("max", 0)
            peak = _read(pids / "pids.peak")
            out["pids_peak"] = int(peak) if peak.isdigit() else -1
        return out

    # -- stopping ------------------------------------------------------------------------------

    def signal(self, sig: int, exclude: Sequence[int] = ()) -> int:
        """Sends `sig` to every member but `exclude`; returns how many it reached."""
        sent = 0
        for pid in self.members():
            if pid in exclude:
                continue
            try:
                os.kill(pid, sig)
                sent += 1
            except ProcessLookupError:
                pass
        return sent

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL of the whole tree, race-free (v2 cgroup.kill; v1 freeze, kill, thaw). True when empty."""
        v2 = self.dirs.get("v2")
        if v2 is not None and (v2 / "cgroup.kill").exists():
            try:
                (v2 / "cgroup.kill").write_text("1")
            except OSError:
                pass
        freezer = self.dirs.get("freezer")
        try:
            if freezer is not None:
                (freezer / "freezer.state").write_text("FROZEN")
            self.signal(signal.SIGKILL)
        except OSError:
            pass
        finally:
            if freezer is not None:
                try:
                    (freezer / "freezer.state").write_text("THAWED")
                except OSError:
                    pass
        end = time.monotonic() + timeout
        while self.members():
            if time.monotonic() > end:
                return False
            self.signal(signal.SIGKILL)
            time.sleep(0.02)
        return True

    def destroy(self) -> None:
        """Kills what is left and removes the trial's folders (and an empty mleray-trials parent). Never raises."""
        if not self.dirs:
            return
        try:
            self.kill_all()
        except OSError:
            pass
        for folder in self.dirs.values():
            _rmdir(folder)
            try:
                folder.parent.rmdir()  # the last trial out removes the parent
            except OSError:
                pass
        self.dirs = {}


def pick_cores(count: int, parent: Path) -> List[int]:
    """`count` cores of the ones this process may use, the least taken by other trials' cpusets under
    `parent` first (ties: the highest numbered), so concurrent trials spread over the machine. Only
    cgroups with processes in them count: an empty one left by a killed sweep (until its reap) is not a
    running trial (two such on core 1 sent two new trials both to core 0)."""
    allowed = sorted(os.sched_getaffinity(0)) or [0]
    offered = set(cpu_list(_read(parent / "cpuset.cpus"))) or set(allowed)
    usable = [c for c in allowed if c in offered] or allowed
    try:
        siblings = [p for p in parent.iterdir() if p.is_dir() and _read(p / "cgroup.procs").strip()]
    except OSError:
        siblings = []
    return least_taken(usable, (_read(sibling / "cpuset.cpus") for sibling in siblings), count)


def leftovers(sweep_id: str, layout: Optional[Layout] = None) -> List[Path]:
    """The cgroup folders of `sweep_id`'s trials under this process's own cgroups (a crashed worker's)."""
    lay = layout or Layout()
    parents = [lay.v2_parent(), *(lay.v1_parent(c) for c in V1_NAMES)]
    prefix = sweep_token(sweep_id) + "."
    found = []
    for parent in parents:
        if parent is None:
            continue
        try:
            found += [p for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix)]
        except OSError:
            continue
    return found


def remove(folders: Sequence[Path]) -> None:
    """Kills every process in `folders` and removes them (reap's half of destroy())."""
    for folder in folders:
        for pid in _read(folder / "cgroup.procs").split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _rmdir(folder)
        try:
            folder.parent.rmdir()
        except OSError:
            pass
