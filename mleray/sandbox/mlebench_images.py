"""MLE-bench's agent images, run unchanged: what they expect of the image and of the run.

An image built from MLE-bench's `environment/Dockerfile` (tag `mlebench-env`) and one of its
`agents/<name>/` folders runs as is in mleray's Docker sandbox:

- its environment (`agent_env`, both backends): SUBMISSION_DIR, LOGS_DIR, CODE_DIR, AGENT_DIR (the layout),
  TIME_LIMIT_SECS (the tier's time limit), STEP_LIMIT (the agent's `step_limit`), HARDWARE (the devices
  given, worded as MLE-bench's start.sh scripts word them: "a CPU", "2 NVIDIA A100-SXM4-80GB");
- /home writable by the agent's uid 1000 (`writable_image`): MLE-bench's entrypoint makes it so at every
  start, as root; mleray derives a small layer once per image id instead (tag `mleray-writable:<id>`);
- /home/instructions.txt and /home/instructions_obfuscated.txt (`instructions`): MLE-bench's own files,
  read at run time from the clone the official `mlebench` package was installed from, else mleray's own;
- for machines with no registry, an offline base image they accept (`build_compatible_base`, tag
  `mleray-mlebench-env:local`): the Debian root file system mleray's other images are made from, with
  `python` on PATH, `envsubst`, and a small conda shim (mlebench_env/conda, not real conda) for
  `conda shell.bash hook`, `conda activate agent` and `conda run -n agent` over a venv named `agent`;
- `build_agent_image`: an `agents/<name>/` folder built as MLE-bench builds it (its build args), FROM that
  base (or any other) in a temporary copy of the folder; the folder itself is left untouched.

`mleray images mlebench-env` and `mleray images mlebench-agent DIR --tag TAG` are the command lines.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib.metadata
import io
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence
from urllib.parse import unquote, urlparse

from mleray import paths
from mleray.sandbox import runtime

COMPAT_TAG = "mleray-mlebench-env:local"
ROOTFS_TAG = "mleray-mlebench-rootfs:local"  # the runtime's root file system, imported; the shim layer goes on it
MLEBENCH_BASE = "mlebench-env"  # what MLE-bench's agent Dockerfiles name in FROM
# envsubst (gettext-base), venvs with pip, `python` on PATH, ps and unzip as in MLE-bench's environment: all in
# the bwrap runtime's package list, so the root file system is an import of the runtime's folder.
EXTRA_PACKAGES = ("gettext-base", "python3-venv", "python3-pip", "python-is-python3", "procps", "unzip")
PACKAGES = tuple(runtime.PACKAGES)  # tests/unit/sandbox/test_mlebench_env.py checks EXTRA_PACKAGES are in it
SHIM_DIR = Path(__file__).with_name("mlebench_env")
LABEL_SHIM = "mleray.mlebench-env"  # on the compatible base: a hash of what it is made of
LABEL_HOME_WRITABLE = "mleray.home-writable"  # as mleray.sandbox.images sets on the images it builds
LABEL_WRITABLE_OF = "mleray.writable-of"
WRITABLE_REPO = "mleray-writable"
# The layout MLE-bench's agents are told about (its agents' shared environment), as mleray mounts it.
LAYOUT = {"SUBMISSION_DIR": "/home/submission", "LOGS_DIR": "/home/logs", "CODE_DIR": "/home/code",
          "AGENT_DIR": "/home/agent"}
INSTRUCTIONS = ("instructions.txt", "instructions_obfuscated.txt")
OWN_INSTRUCTIONS = Path(__file__).resolve().parents[1] / "trial"  # mleray's own text, same names

Log = Callable[[str], None]


class MlebenchImageError(runtime.BuildError):
    """An MLE-bench image could not be built; the message names what is missing and what to do."""


# --------------------------------------------------------------------------------------------
# The run's environment


@functools.lru_cache(maxsize=1)
def gpu_names() -> Dict[str, str]:
    """Device index and UUID -> name, as nvidia-smi on this node reports them; {} without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    names: Dict[str, str] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",", 2)]
        if len(parts) == 3:
            names[parts[0]] = names[parts[1]] = parts[2]
    return names


def hardware(gpu_ids: Sequence[str], gpu_fraction: float = 1.0, names: Optional[Dict[str, str]] = None) -> str:
    """The devices given, in the words MLE-bench's start.sh scripts use for HARDWARE: "a CPU" without
    GPUs, else "<count> <name>" per model joined by ", " (a device with no known name is "GPU"); a share of
    each device below 1 is said after it."""
    if not gpu_ids:
        return "a CPU"
    names = gpu_names() if names is None else names
    counts: Dict[str, int] = {}
    for gpu in gpu_ids:
        name = names.get(str(gpu), "GPU")
        counts[name] = counts.get(name, 0) + 1
    text = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    return text + (f" (a {gpu_fraction:g} share of each)" if 0 < gpu_fraction < 1 else "")


def agent_env(own: Dict[str, str], time_limit: float, step_limit: Optional[int], gpu_ids: Sequence[str],
              gpu_fraction: float = 1.0, names: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The agent's environment with MLE-bench's agent variables: the layout folders and HARDWARE unless
    the agent's own `env` (`own`) sets them, then TIME_LIMIT_SECS (whole seconds of the tier's limit,
    whatever `own` says: the tier decides) and STEP_LIMIT (the agent's `step_limit`, when set)."""
    env = {**LAYOUT, "HARDWARE": hardware(gpu_ids, gpu_fraction, names), **{k: str(v) for k, v in own.items()}}
    env["TIME_LIMIT_SECS"] = str(int(time_limit))
    if step_limit is not None:
        env["STEP_LIMIT"] = str(int(step_limit))
    return env


# --------------------------------------------------------------------------------------------
# Instructions


def _clone_roots() -> Iterator[Path]:
    """Folders the official package may have come from: the one holding it (an editable install or a
    clone on the path), and the local folder pip installed it from (its direct_url.json)."""
    from mleray.mlebench.catalog import package_dir

    pkg = package_dir()
    if pkg is not None:
        yield pkg.parent
    try:
        text = importlib.metadata.distribution("mlebench").read_text("direct_url.json")
    except (importlib.metadata.PackageNotFoundError, OSError):
        text = None
    try:
        url = json.loads(text or "{}").get("url", "")
    except ValueError:
        url = ""
    if url.startswith("file://"):
        yield Path(unquote(urlparse(url).path))


def mlebench_environment_dir() -> Optional[Path]:
    """The `environment/` folder of the MLE-bench clone the installed `mlebench` package comes from (with
    its instructions files), or None: a wheel install from elsewhere, or no package."""
    for root in _clone_roots():
        folder = root / "environment"
        try:
            if (root / "mlebench").is_dir() and all((folder / name).is_file() for name in INSTRUCTIONS):
                return folder
        except OSError:
            continue
    return None


def instructions(obfuscated: bool = False) -> Path:
    """The file shown as /home/instructions.txt (`obfuscated`: /home/instructions_obfuscated.txt):
    MLE-bench's own from its clone when there is one, else mleray's own."""
    name = INSTRUCTIONS[1 if obfuscated else 0]
    folder = mlebench_environment_dir() or OWN_INSTRUCTIONS
    return folder / name


# --------------------------------------------------------------------------------------------
# Images


def _client():
    from mleray.sandbox.docker import engine

    try:
        return engine.client()
    except engine.EngineError as err:
        raise MlebenchImageError(str(err)) from None


def _shim_hash() -> str:
    made_of = hashlib.sha256(json.dumps(sorted(PACKAGES)).encode())
    for name in ("Dockerfile", "conda", "conda.sh"):
        made_of.update((SHIM_DIR / name).read_bytes())
    return made_of.hexdigest()[:16]


def _labels(client, tag: str) -> Optional[Dict[str, str]]:
    """The image's labels; None when the engine has no such image."""
    import docker

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    return dict((image.attrs.get("Config") or {}).get("Labels") or {})


def _build_tail(err) -> str:
    return "".join(str(x.get("stream") or x.get("error") or "") for x in list(err.build_log)[-10:]).strip()


def build_compatible_base(tag: str = COMPAT_TAG, force: bool = False, log: Log = print) -> str:
    """Builds the offline MLE-bench-compatible base image (see the module docstring). Skips when `tag` was
    built from the same shim and packages. The root file system (ROOTFS_TAG) is the bwrap runtime's folder
    imported, as mleray-base:local is (debootstrapped once from the machine's Debian mirror when missing);
    the shim layer takes seconds."""
    import docker

    from mleray.sandbox import images

    client = _client()
    made_of = _shim_hash()
    if not force and (_labels(client, tag) or {}).get(LABEL_SHIM) == made_of:
        log(f"{tag}: exists, skipped")
        return tag
    t0 = time.monotonic()
    try:
        images.build_base(ROOTFS_TAG, force=force, log=log, packages=PACKAGES)
    except runtime.BuildError as err:
        raise MlebenchImageError(f"{tag}: the root file system could not be built: {err}") from None
    try:
        client.images.build(path=str(SHIM_DIR), tag=tag, buildargs={"ROOTFS": ROOTFS_TAG}, labels={LABEL_SHIM: made_of},
                            rm=True, forcerm=True, network_mode="none")
    except docker.errors.BuildError as err:
        raise MlebenchImageError(f"{tag}: docker build of the conda shim layer failed: {err.msg}\n"
                                 f"{_build_tail(err)}") from None
    log(f"{tag}: built in {time.monotonic() - t0:.0f} s (python, envsubst, conda shim over the venv 'agent')")
    return tag


_FROM = re.compile(rf"^(\s*FROM\s+)(--platform=\S+\s+)?{re.escape(MLEBENCH_BASE)}(:latest)?(?=\s|$)",
                   re.IGNORECASE | re.MULTILINE)


def build_agent_image(agent_dir: Path, tag: str, base: Optional[str] = None, log: Log = print,
                      buildargs: Optional[Dict[str, str]] = None, network_mode: Optional[str] = None) -> str:
    """Builds MLE-bench's `agents/<name>/` folder as MLE-bench does (the folder as the context, the
    layout as build args) into `tag`. `base` replaces `mlebench-env` in its FROM, in a temporary copy of
    the folder: default `mlebench-env` itself when the engine has it, else the compatible base (built
    first when missing). Returns `tag`."""
    import docker

    agent_dir = Path(agent_dir)
    if not (agent_dir / "Dockerfile").is_file():
        raise MlebenchImageError(f"no Dockerfile in {agent_dir} (an MLE-bench agents/<name>/ folder has one)")
    client = _client()
    if base is None:
        base = MLEBENCH_BASE if _labels(client, MLEBENCH_BASE) is not None else COMPAT_TAG
    if base == COMPAT_TAG:
        build_compatible_base(log=log)
    with tempfile.TemporaryDirectory(prefix="mleray-mlebench-agent-") as tmp:
        context = Path(tmp) / agent_dir.name
        shutil.copytree(agent_dir, context, symlinks=True)
        dockerfile = context / "Dockerfile"
        text = dockerfile.read_text()
        if base != MLEBENCH_BASE:
            text, replaced = _FROM.subn(lambda m: f"{m.group(1)}{m.group(2) or ''}{base}", text)
            if not replaced:
                log(f"{agent_dir}: its Dockerfile does not start FROM {MLEBENCH_BASE}; built as it is")
            dockerfile.write_text(text)
        t0 = time.monotonic()
        try:
            client.images.build(path=str(context), tag=tag, buildargs={**LAYOUT, **(buildargs or {})}, rm=True,
                                forcerm=True, network_mode=network_mode)
        except docker.errors.BuildError as err:
            raise MlebenchImageError(f"docker build of {agent_dir} on {base} failed: {err.msg}\n"
                                     f"{_build_tail(err)}") from None
    log(f"{tag}: built from {agent_dir} on {base} in {time.monotonic() - t0:.1f} s")
    return tag


def _lock(name: str) -> contextlib.AbstractContextManager:
    """One builder of a derived image per node at a time (a second waits, then finds it built)."""
    return paths.node_lock(paths.cache_dir() / "locks" / f"{name}.lock")


_WRITABLE_FAILED: Dict[str, str] = {}  # image id -> why its layer could not be made (this process)


def writable_image(image: str, log: Optional[Log] = None) -> str:
    """The image to run for `image`: itself when its /home is writable by uid 1000 already (mleray's own
    images), else `mleray-writable:<image id>`, derived once per image id (FROM the id, as root:
    /home and what is under it made a+rw, dirs a+rwx; the user and entrypoint kept). An image that cannot
    take the layer (no shell in it) or is not on the engine is returned as it is: the run then says why."""
    import docker

    try:
        client = _client()
        source = client.images.get(image)
    except (MlebenchImageError, docker.errors.DockerException):  # no engine, no image: the sandbox says so
        return image
    config = source.attrs.get("Config") or {}
    if (config.get("Labels") or {}).get(LABEL_HOME_WRITABLE) == "1":
        return image
    digest = source.id.split(":")[-1]
    tag = f"{WRITABLE_REPO}:{digest[:16]}"
    if digest in _WRITABLE_FAILED:
        return image
    if _labels(client, tag) is not None:
        return tag
    with _lock(f"writable-{digest[:16]}"):
        if _labels(client, tag) is not None:
            return tag
        user = config.get("User") or ""
        dockerfile = (f"FROM {source.id}\nUSER root\n"
                      "RUN mkdir -p /home && find /home -xdev ! -perm -0666 -exec chmod a+rwX {} +\n"
                      f"LABEL {LABEL_HOME_WRITABLE}=1 {LABEL_WRITABLE_OF}={source.id}\n"
                      + (f"USER {user}\n" if user else ""))
        t0 = time.monotonic()
        try:
            client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True,
                                network_mode="none")
        except docker.errors.BuildError as err:
            _WRITABLE_FAILED[digest] = err.msg
            if log:
                log(f"mleray: {image}: /home could not be made writable for uid 1000 ({err.msg}); runs as built")
            return image
    if log:
        log(f"mleray: {image}: /home made writable for uid 1000 as {tag} ({time.monotonic() - t0:.1f} s, once)")
    return tag


# --------------------------------------------------------------------------------------------
# Command lines (`mleray images mlebench-env`, `mleray images mlebench-agent`)


def add_commands(sub) -> None:
    """Adds this module's subcommands to `mleray images`' subparsers."""
    env = sub.add_parser("mlebench-env", help=f"build the offline MLE-bench-compatible base image {COMPAT_TAG}")
    env.add_argument("--force", action="store_true", help="rebuild it (and its root file system)")
    agent = sub.add_parser("mlebench-agent", help="build an MLE-bench agents/<name>/ folder as MLE-bench does")
    agent.add_argument("folder", type=Path, help="the agent's folder (with its Dockerfile and start.sh)")
    agent.add_argument("--tag", required=True, help="the image tag to build (then `image:` in the agent's yaml)")
    agent.add_argument("--base", default=None,
                       help=f"the image to build FROM instead of {MLEBENCH_BASE} (default: {MLEBENCH_BASE} when "
                            f"the engine has it, else {COMPAT_TAG})")


def run_command(args: argparse.Namespace) -> List[str]:
    """Runs a subcommand `add_commands` added; returns the tags built."""
    if args.cmd == "mlebench-env":
        return [build_compatible_base(force=args.force)]
    return [build_agent_image(args.folder, args.tag, base=args.base)]
