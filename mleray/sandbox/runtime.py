"""The agent runtime for bwrap: the offline base image's Debian root file system, as a plain folder.

The bwrap sandbox must not run agents on the host's own /usr and Python: the host's site-packages and
/usr/share hold the raw-data packages the offline competitions' answers are built from. It runs them on
this runtime instead: a minimal Debian bookworm (python3, numpy, pandas, scikit-learn, curl, CA
certificates, an `agent` user uid 1000) built by debootstrap from the machine's configured mirror, the
same root file system `mleray-base:local` is imported from (one debootstrap serves both).

Where: `<cache>/runtime/<suite>-<key>/rootfs`, `<key>` a hash of the suite, packages, architecture and
BUILD_VERSION (a changed package list is a new runtime); `$MLERAY_RUNTIME_DIR` replaces `<cache>/runtime`.
A `ready` file beside `rootfs/`, written last, marks a finished build: a folder without it is never used.
Built by `mleray images build` (or `--runtime-only` where there is no Docker), as root; when the
base image exists and no runtime does, the folder is `docker export`ed from a container of the image.

Light to import (no Docker SDK): the bwrap backend asks `runtime_root()` and `bwrap_args()` per trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from mleray import paths

SUITE = "bookworm"
# What agents need, plus what MLE-bench's agent scripts call (envsubst, venvs with pip, `python`, ps, unzip),
# so the MLE-bench-compatible base (mlebench_images.py) is an import of this same folder, not a second
# debootstrap.
PACKAGES: Tuple[str, ...] = ("python3", "python3-numpy", "python3-pandas", "python3-sklearn", "curl",
                             "ca-certificates", "gettext-base", "python3-venv", "python3-pip", "python-is-python3",
                             "procps", "unzip")
AGENT_UID = 1000
PYTHON = "/usr/bin/python3"
# Bump when the way a runtime is made changes (what make_rootfs writes), so old folders are not reused.
BUILD_VERSION = 1
MARKER = "ready"
ENV_VAR = "MLERAY_RUNTIME_DIR"
BUILD_COMMAND = "mleray images build --runtime-only"
# Top-level names a Debian root links into /usr (merged-/usr) or holds as folders (older layouts).
_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

Log = Callable[[str], None]


class BuildError(RuntimeError):
    """A runtime or image could not be built; the message names what is missing and what to do."""


# --------------------------------------------------------------------------------------------
# Where the runtime lives


def _arch() -> str:
    return platform.machine() or "unknown"


def key(packages: Iterable[str] = PACKAGES, suite: str = SUITE) -> str:
    """The folder name of a runtime: the suite and a hash of what it is made of."""
    made_of = {"suite": suite, "packages": sorted(packages), "arch": _arch(), "build": BUILD_VERSION}
    return f"{suite}-{hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:12]}"


def runtime_dirs() -> List[Path]:
    """Folders searched for runtimes, the first one is where `build` writes.

    `$MLERAY_RUNTIME_DIR` alone when set; else `<cache>/runtime`, then the default cache's (so a test or a
    sweep that points MLERAY_CACHE_DIR at a fresh folder still finds the machine's runtime)."""
    if os.environ.get(ENV_VAR):
        return [Path(os.environ[ENV_VAR])]
    first = paths.cache_dir() / "runtime"
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mleray" / "runtime"
    return [first] if default == first else [first, default]


def _is_ready(folder: Path) -> bool:
    """The ready marker is there (written last) and so is the interpreter; an unreadable folder is not."""
    try:
        return (folder / MARKER).is_file() and (folder / "rootfs" / PYTHON.lstrip("/")).exists()
    except OSError:
        return False


def runtime_root() -> Optional[Path]:
    """The built runtime's root file system for this machine, or None (never a half-built one)."""
    for base in runtime_dirs():
        folder = base / key()
        if _is_ready(folder):
            return folder / "rootfs"
    return None


def info(root: Optional[Path] = None) -> Dict[str, object]:
    """What the ready marker of a runtime says (how and when it was built, its size); {} when none."""
    root = root or runtime_root()
    if root is None:
        return {}
    try:
        return json.loads((root.parent / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def problem() -> Optional[str]:
    """None when a runtime is ready; else one line saying why not and the command that builds it."""
    if runtime_root() is not None:
        return None
    folder = runtime_dirs()[0] / key()
    try:
        state = "is half-built (no ready marker)" if folder.exists() else "is not built"
    except OSError as err:
        state = f"cannot be read ({err.strerror})"
    return (f"the bwrap agent runtime ({SUITE}: {', '.join(PACKAGES)}) {state} at {folder}; "
            f"build it as root with `{BUILD_COMMAND}`")


def bwrap_args(root: Path) -> List[str]:
    """bwrap arguments mounting the runtime read-only as the sandbox's /usr, /etc and the top-level
    links or folders (/bin, /sbin, /lib, /lib64 as Debian has them). /proc, /dev, /tmp and /home are the
    sandbox's own to mount. The runtime's /etc holds no host secret: its passwd and group with the agent
    user, CA certificates, alternatives, ld.so.cache; hosts and resolv.conf exist, so the sandbox may bind
    the host's resolv.conf over it for egress agents."""
    root = Path(root)
    args = ["--ro-bind", str(root / "usr"), "/usr"]
    for name in _TOP_LEVEL:
        path = root / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    args += ["--ro-bind", str(root / "etc"), "/etc"]
    return args


# --------------------------------------------------------------------------------------------
# Making a Debian root file system (shared with the offline base image)


def _add_agent_user(rootfs: Path) -> None:
    """A non-root user 1000:1000 named `agent` whose HOME (/tmp/agent-home) is always writable."""
    passwd, group = rootfs / "etc/passwd", rootfs / "etc/group"
    if f":{AGENT_UID}:" not in passwd.read_text():
        with passwd.open("a") as f:
            f.write(f"agent:x:{AGENT_UID}:{AGENT_UID}:mleray agent:/tmp/agent-home:/bin/bash\n")
        with group.open("a") as f:
            f.write(f"agent:x:{AGENT_UID}:\n")
    (rootfs / "home").mkdir(exist_ok=True)
    os.chmod(rootfs / "home", 0o755)


def _neutral_etc(rootfs: Path) -> None:
    """Replaces what debootstrap copies from the host (hostname, resolv.conf) with neutral files."""
    etc = rootfs / "etc"
    for name, text in (("hostname", "sandbox\n"), ("hosts", "127.0.0.1 localhost\n::1 localhost\n"),
                       ("resolv.conf", "")):
        path = etc / name
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_text(text)
        os.chmod(path, 0o644)


def make_rootfs(rootfs: Path, mirror: str, packages: Iterable[str] = PACKAGES, suite: str = SUITE,
                log: Log = print) -> float:
    """Makes a minimal Debian root file system in `rootfs` with debootstrap from `mirror` (offline
    against the machine's own mirror), the agent user added and apt's caches emptied. Returns seconds.
    The offline base image is this folder `docker import`ed; the bwrap runtime is this folder."""
    if shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed (apt-get install -y debootstrap) - "
                         "it builds the offline base image and the bwrap agent runtime")
    if os.geteuid() != 0:
        raise BuildError("debootstrap needs root: run as root, or build on a machine where you are")
    t0 = time.monotonic()
    log(f"debootstrap {suite} from the configured mirror ({mirror}) into {rootfs} - a few minutes")
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(rootfs), mirror]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise BuildError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / junk).glob("*"):
            if item.is_file():
                item.unlink()
    _add_agent_user(rootfs)
    _neutral_etc(rootfs)
    return time.monotonic() - t0


def installed_packages(rootfs: Path) -> Dict[str, str]:
    """Package -> version of what dpkg lists as installed in a root file system."""
    try:
        text = (rootfs / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return {}
    out: Dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[:1].isspace())
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            out[fields["Package"]] = fields.get("Version", "")
    return out


def _size(folder: Path) -> int:
    total = 0
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(top, name))
                total += st.st_blocks * 512
    return total


# --------------------------------------------------------------------------------------------
# Building the runtime


def _export_image(image: str, rootfs: Path, log: Log) -> bool:
    """The fast path: the root file system of a container of `image` (docker export) into `rootfs`.
    False (nothing kept) when there is no engine, no such image, or it lacks the runtime's packages."""
    try:
        from mleray.sandbox.docker import engine

        client = engine.client()
        if not engine.image_exists(image, client):
            return False
    except Exception:  # no engine here: debootstrap instead
        return False
    log(f"bwrap runtime: exporting the root file system of {image}")
    container = client.containers.create(image, command=["true"], network_mode="none")
    try:
        rootfs.mkdir(parents=True)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-x", "-C", str(rootfs)], stdin=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        assert tar.stdin is not None  # stdin=PIPE
        try:
            for chunk in container.export():
                tar.stdin.write(chunk)
        finally:
            tar.stdin.close()
            err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
            tar.wait()
    finally:
        container.remove(force=True)
    if tar.returncode != 0:
        raise BuildError(f"extracting docker export of {image} failed (tar exit {tar.returncode}): {err[-300:]}")
    missing = [p for p in PACKAGES if p not in installed_packages(rootfs)]
    if missing or not (rootfs / PYTHON.lstrip("/")).exists():
        log(f"bwrap runtime: {image} lacks {', '.join(missing) or 'python3'}; debootstrap instead")
        shutil.rmtree(rootfs, ignore_errors=True)
        return False
    (rootfs / ".dockerenv").unlink(missing_ok=True)
    _add_agent_user(rootfs)
    _neutral_etc(rootfs)
    return True


def _build_lock(base: Path) -> contextlib.AbstractContextManager:
    """One builder per folder at a time (a second waits, then finds the runtime ready)."""
    return paths.node_lock(base / ".build.lock")


def build(force: bool = False, log: Log = print, image: Optional[str] = None,
          export: bool = True) -> Path:
    """Builds the runtime for this machine and returns its rootfs; a no-op when one is ready (unless
    `force`). With `export` and the base image (`image`, default mleray-base:local) on the engine, the
    root file system is exported from it; otherwise debootstrap from the configured mirror. Root only.
    The folder is built beside its final place and renamed there; the ready marker is written last.
    `force` replaces a ready folder in place: only while no sandbox runs on it."""
    base = runtime_dirs()[0]
    folder = base / key()
    if not force and _is_ready(folder):
        log(f"bwrap runtime: ready at {folder / 'rootfs'}, skipped")
        return folder / "rootfs"
    if os.geteuid() != 0:
        raise BuildError(f"building the bwrap agent runtime needs root (debootstrap, or extracting the base "
                         f"image as root-owned files): run `{BUILD_COMMAND}` as root")
    with _build_lock(base):
        if not force and _is_ready(folder):
            log(f"bwrap runtime: ready at {folder / 'rootfs'} (built meanwhile), skipped")
            return folder / "rootfs"
        partial = base / f".{key()}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        t0 = time.monotonic()
        try:
            method = ""
            if export:
                from mleray.sandbox.images import BASE_TAG

                if _export_image(image or BASE_TAG, partial / "rootfs", log):
                    method = f"docker export of {image or BASE_TAG}"
            if not method:
                from mleray.sandbox.images import debian_mirror

                mirror = debian_mirror()
                make_rootfs(partial / "rootfs", mirror, log=log)
                method = f"debootstrap from {mirror}"
            seconds = time.monotonic() - t0
            os.chmod(partial, 0o755)
            os.chmod(partial / "rootfs", 0o755)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(partial, folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        pkgs = installed_packages(folder / "rootfs")
        size = _size(folder / "rootfs")
        record = {"method": method, "seconds": round(seconds, 1), "bytes": size,
                  "suite": SUITE, "packages": {p: pkgs.get(p, "") for p in PACKAGES}, "built_at": time.time()}
        tmp = folder / f".{MARKER}.tmp"
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, folder / MARKER)
    log(f"bwrap runtime: built at {folder / 'rootfs'} in {seconds:.0f} s by {method} "
        f"({size / 2**20:.0f} MiB)")
    return folder / "rootfs"
