"""Building the images agents run in: the offline base image, then each agent's image.

`mleray images build [--offline] [--base TAG] [--runtime-only | --no-runtime] [AGENT...]`

- The offline base image (`mleray-base:local`) needs no container registry: debootstrap builds a
  minimal Debian bookworm root file system with python3, numpy, pandas, scikit-learn and curl from
  the machine's own Debian mirror (read from its apt sources), and `docker import` turns it into an
  image (about 2-3 minutes, once; skipped when the tag exists).
- The bwrap agent runtime (mleray.sandbox.runtime) is that same root file system kept as a folder;
  one debootstrap serves both: the base image is imported from a ready runtime, and a missing runtime
  is exported from an existing base image. `--runtime-only` builds just the runtime (no Docker needed),
  `--no-runtime` skips it.
- An agent is declared in `configs/agents/<name>.yaml` (`mleray.config.AgentConfig`). Agents with a
  `build_context` are built from its Dockerfile, which takes `ARG BASE_IMAGE` (defaulting to a
  registry image such as python:3.11-slim); `--offline` passes BASE_IMAGE=mleray-base:local and
  builds the base image first. Agents with only an `image` (e.g. built with MLE-bench) are not rebuilt.
- Every agent image gets /home made writable by uid 1000 (a small layer, once), as MLE-bench's
  entrypoint does at each start: agents run as uid 1000 and MLE-bench agents write under /home/agent.
  An image built elsewhere keeps its tag: the layer is derived beside it, once per image id
  (mleray.sandbox.mlebench_images.writable_image; the Docker backend derives it too, in prepare_agent).
- `mleray images mlebench-env` builds the offline MLE-bench-compatible base, `mleray images mlebench-agent
  DIR --tag TAG` one of MLE-bench's agents/<name>/ folders (mleray.sandbox.mlebench_images).
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from mleray import paths
from mleray.config import AgentConfig, ConfigError, load_agent
from mleray.sandbox import mlebench_images, runtime
from mleray.sandbox.docker import engine
from mleray.sandbox.docker.engine import image_exists
from mleray.sandbox.runtime import SUITE, BuildError, make_rootfs

BASE_TAG = "mleray-base:local"
BASE_PACKAGES = runtime.PACKAGES
AGENT_UID = runtime.AGENT_UID
# Set on the imported image: docker import keeps no ENV or CMD of its own.
BASE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PYTHONUNBUFFERED=1",
    'CMD ["/bin/bash"]',
]


class ImageError(BuildError):
    """An image could not be built; the message names what is missing and what to do."""


Log = Callable[[str], None]


def _client():
    """The engine's client from the project's one factory; no engine is an ImageError here."""
    try:
        return engine.client()
    except engine.EngineError as err:
        raise ImageError(str(err)) from None


# --------------------------------------------------------------------------------------------
# The machine's Debian mirror


def _deb822_mirrors(text: str) -> List[tuple]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if fields.get("enabled", ["yes"])[0].lower() == "no":
            continue
        if "deb" in fields.get("types", []) and fields.get("uris"):
            out.append((fields["uris"][0], fields.get("suites", [])))
    return out


def _one_line_mirrors(text: str) -> List[tuple]:
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 3 and parts[0] == "deb":
            rest = [p for p in parts[1:] if not p.startswith("[")]
            # drop an options block like [signed-by=...] spanning several tokens
            rest = [p for p in rest if "=" not in p and not p.endswith("]")]
            if len(rest) >= 2:
                out.append((rest[0], [rest[1]]))
    return out


def debian_mirror(suite: str = SUITE, root: Path = Path("/etc/apt")) -> str:
    """The URI of the machine's configured Debian archive for `suite` (not -security/-updates)."""
    candidates: List[tuple] = []
    for source in sorted(glob.glob(str(root / "sources.list.d" / "*.sources"))):
        candidates += _deb822_mirrors(Path(source).read_text(errors="replace"))
    one_line = sorted(glob.glob(str(root / "sources.list.d" / "*.list")))
    lists = [root / "sources.list"] + [Path(p) for p in one_line]
    for path in lists:
        if path.is_file():
            candidates += _one_line_mirrors(path.read_text(errors="replace"))
    for uri, suites in candidates:
        if suite in suites and "security" not in uri:
            return uri
    for uri, _ in candidates:
        if "security" not in uri:
            return uri
    raise ImageError(f"no Debian mirror configured in {root}/sources.list(.d); add one, or build {BASE_TAG} by hand")


# --------------------------------------------------------------------------------------------
# The offline base image


LABEL_MADE_OF = "mleray.made-of"  # on a base image: runtime.key() of the packages its root file system holds


def _made_of(tag: str, client) -> Optional[str]:
    """The LABEL_MADE_OF of an image (None: no such image, or one imported before the label existed)."""
    import docker

    try:
        return (client.images.get(tag).labels or {}).get(LABEL_MADE_OF)
    except docker.errors.ImageNotFound:
        return None


def _import_rootfs(rootfs: Path, tag: str, client, log: Log, made_of: str = "") -> None:
    """`docker import` of a root file system folder as `tag` (ENV and CMD set: import keeps none), labelled
    with what it is made of (`made_of`: runtime.key of its packages)."""
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    stream = tar.stdout
    assert stream is not None  # stdout=PIPE
    repo, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    try:
        changes = BASE_CHANGES + ([f"LABEL {LABEL_MADE_OF}={made_of}"] if made_of else [])
        client.api.import_image_from_stream(stream, repository=repo, tag=version, changes=changes)
    finally:
        stream.close()
        tar.wait()
    if tar.returncode != 0 or not image_exists(tag, client):
        raise ImageError(f"docker import of {rootfs} as {tag} failed (tar exit {tar.returncode})")


def build_base(tag: str = BASE_TAG, force: bool = False, log: Log = print,
               packages: Iterable[str] = BASE_PACKAGES) -> str:
    """Builds the offline base image: the bwrap runtime's root file system (debootstrap, or the one
    already built; see mleray.sandbox.runtime) `docker import`ed. Skips when `tag` exists and was made of
    these packages (its label); an image made of others (an older mleray's list) is built again.

    Other `packages` than the runtime's debootstrap into a temporary folder instead."""
    client = _client()
    made_of = runtime.key(packages)
    if not force and image_exists(tag, client):
        if _made_of(tag, client) == made_of:
            log(f"{tag}: exists, skipped")
            return tag
        log(f"{tag}: exists but was not made of this package list ({', '.join(packages)}); building it again")
    if os.geteuid() != 0:
        raise ImageError("building the offline base image needs root (debootstrap); "
                         "run as root or build it on a machine where you are")
    t0 = time.monotonic()
    if tuple(packages) == tuple(runtime.PACKAGES):
        rootfs = runtime.build(log=log, export=False)  # the runtime's folder, debootstrapped when missing
        log(f"{tag}: importing the bwrap runtime's root file system {rootfs}")
        _import_rootfs(rootfs, tag, client, log, made_of)
        log(f"{tag}: built in {time.monotonic() - t0:.0f} s")
        return tag
    work = Path(tempfile.mkdtemp(prefix="mleray-base-", dir=os.environ.get("MLERAY_BUILD_DIR", "/var/tmp")))
    try:
        seconds = make_rootfs(work / "rootfs", debian_mirror(), packages, log=log)
        log(f"{tag}: debootstrap done in {seconds:.0f} s; importing")
        _import_rootfs(work / "rootfs", tag, client, log, made_of)
        log(f"{tag}: built in {time.monotonic() - t0:.0f} s")
        return tag
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Agent images


def builtin_agents(folder: Optional[Path] = None) -> List[AgentConfig]:
    """Every agent declared along the agents search path (or in `folder`)."""
    if folder is not None:
        return [load_agent(p.stem, folder) for p in sorted(folder.glob("*.yaml"))]
    return [load_agent(name) for name in paths.names("agents", "*.yaml")]


HOME_WRITABLE_LABEL = "mleray.home-writable"


def make_home_writable(tag: str, log: Log = print) -> bool:
    """Adds a layer that makes /home writable by any uid, in place (tag unchanged).

    MLE-bench's entrypoint does `chmod a+rw` on /home at every start, as root, and its agents (AIDE, ...)
    write into /home/agent. mleray runs agents as uid 1000 from the first instruction, so the same
    chmod is done once, at build time. Skipped when done before (image label); False when the image
    has no shell to run it (the agent then runs as built)."""
    import io

    import docker

    client = _client()
    image = client.images.get(tag)
    config = image.attrs.get("Config") or {}
    if (config.get("Labels") or {}).get(HOME_WRITABLE_LABEL) == "1":
        return True
    user = config.get("User") or ""
    dockerfile = (f"FROM {tag}\nUSER root\n"
                  "RUN mkdir -p /home && find /home -xdev -exec chmod a+rwX {} +\n"
                  f"LABEL {HOME_WRITABLE_LABEL}=1\n" + (f"USER {user}\n" if user else ""))
    try:
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True,
                            network_mode="none")
    except docker.errors.BuildError as err:
        log(f"{tag}: could not make /home writable for uid 1000 ({err.msg}); the agent runs as built")
        return False
    log(f"{tag}: /home made writable for the agent's uid 1000 (what MLE-bench's entrypoint does at start)")
    return True


HOST_PACKAGES = "wheels.txt"  # in a build context: requirements the host's pip installs into site/ (aide)
BASE_PYTHON = "3.11"  # the offline base image's python3 (Debian bookworm's): what site/'s wheels are for


def _wheel_target() -> List[str]:
    """pip options that pick wheels for the base image's Python and this machine's architecture, whatever
    Python runs pip on the host (a 3.12 host's own wheels would not load in the image: rpds-py's did not)."""
    machine = platform.machine()
    abi = "cp" + BASE_PYTHON.replace(".", "")
    tags = [f"--platform={tag}_{machine}" for tag in ("manylinux_2_36", "manylinux_2_34", "manylinux_2_31",
                                                        "manylinux_2_28", "manylinux_2_17", "manylinux2014", "linux")]
    return ["--only-binary=:all:", "--python-version", BASE_PYTHON, "--implementation", "cp", "--abi", abi, *tags]


def host_packages(context: Path, log: Log = print) -> Optional[Path]:
    """For a build context with a `wheels.txt`: its requirements installed by the host's pip (`--target`,
    the same Python minor version and platform as the base image's Debian python3) into a folder cached
    by the file's hash under the node cache, then a temporary copy of the context with that folder as
    `site/`, which the Dockerfile COPYs: the image build itself needs no registry. A line ending in
    `--no-deps` is installed without its dependencies. None for a context without the file."""
    import hashlib

    listing = context / HOST_PACKAGES
    if not listing.is_file():
        return None
    text = listing.read_text()
    target = _wheel_target()
    site = paths.cache_dir() / "agent-site" / hashlib.sha256((text + " ".join(target)).encode()).hexdigest()[:16]
    if not (site / ".ready").is_file():
        lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln]
        plain = [ln for ln in lines if not ln.endswith("--no-deps")]
        bare = [ln[: -len("--no-deps")].strip() for ln in lines if ln.endswith("--no-deps")]
        shutil.rmtree(site, ignore_errors=True)
        t0 = time.monotonic()
        for reqs, extra in ((plain, []), (bare, ["--no-deps"])):
            if not reqs:
                continue
            cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--ignore-installed",
                   "--disable-pip-version-check", "--target", str(site), *target, *extra, *reqs]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise ImageError(f"pip could not install {listing}'s packages: {' / '.join(tail)}")
        (site / ".ready").write_text("ok\n")
        log(f"{context.name}: {len(lines)} requirement(s) of {HOST_PACKAGES} installed in "
            f"{time.monotonic() - t0:.0f} s")
    copy = Path(tempfile.mkdtemp(prefix=f"mleray-context-{context.name}-"))
    shutil.copytree(context, copy / "context", ignore=shutil.ignore_patterns("site", "__pycache__"))
    shutil.copytree(site, copy / "context" / "site", symlinks=True)
    return copy / "context"


def build_agent(agent: AgentConfig, base: Optional[str] = None, log: Log = print,
                force: bool = False) -> Optional[str]:
    """Builds one agent's image from its build_context (BASE_IMAGE=base when given). Returns the tag.

    An agent with only `image` is not built: it is checked and reported when missing."""
    client = _client()
    if not agent.image:
        log(f"{agent.name}: no image declared (runs under bwrap only)")
        return None
    if not agent.build_context:
        if not image_exists(agent.image, client):
            log(f"{agent.name}: image {agent.image} is not on this engine and has no build_context: "
                "build or load it yourself")
        else:  # derived once per image id, the user's tag left alone (the Docker backend derives it too)
            mlebench_images.writable_image(agent.image, log)
        return agent.image
    context = Path(agent.build_context)
    if not (context / "Dockerfile").is_file():
        raise ImageError(f"agent {agent.name}: no Dockerfile in build_context {context}")
    import docker

    buildargs = {"BASE_IMAGE": base} if base else {}
    t0 = time.monotonic()
    staged = host_packages(context, log)  # a copy of the context with site/ when it has a wheels.txt
    try:
        client.images.build(path=str(staged or context), tag=agent.image, buildargs=buildargs, rm=True,
                            forcerm=True, nocache=force)
    except docker.errors.BuildError as err:
        tail = "".join(str(x.get("stream") or x.get("error") or "") for x in list(err.build_log)[-10:])
        hint = "" if base else " (offline? pass --offline to build on mleray-base:local)"
        raise ImageError(f"agent {agent.name}: docker build of {context} failed: {err.msg}{hint}\n{tail}") from None
    finally:
        if staged is not None:
            shutil.rmtree(staged.parent, ignore_errors=True)
    make_home_writable(agent.image, log)
    log(f"{agent.name}: built {agent.image} in {time.monotonic() - t0:.1f} s" + (f" on {base}" if base else ""))
    return agent.image


def build(agents: Optional[List[str]] = None, offline: bool = False, base: Optional[str] = None,
          log: Log = print, with_runtime: bool = True) -> List[str]:
    """Builds the bwrap runtime (unless `with_runtime` is False), the base image (offline) and the
    named agents' images (all built-in agents when empty). The runtime comes first: the base image is
    then imported from its folder (one debootstrap), or, when the image exists, exported into it."""
    if with_runtime:
        runtime.build(log=log)
    if offline and not base:
        base = BASE_TAG
    # offline always has a base by now; base == BASE_TAG is not None either
    if base is not None and (base == BASE_TAG or offline):
        build_base(base, log=log)
    configs = [load_agent(n) for n in agents] if agents else builtin_agents()
    built: List[str] = []
    failed: List[str] = []
    for agent in configs:
        try:
            tag = build_agent(agent, base=base, log=log)
        except ImageError as err:
            log(f"{agent.name}: FAILED: {err}")
            failed.append(agent.name)
            continue
        if tag:
            built.append(tag)
    if failed:
        raise ImageError(f"{len(failed)} agent image(s) failed: {', '.join(failed)} "
                         f"(built: {', '.join(built) or 'none'})")
    return built


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mleray images", description="Build agent images, the offline base image and the bwrap agent runtime.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build images")
    b.add_argument("--offline", action="store_true",
                   help=f"build without a registry: base every agent on {BASE_TAG} (built first with debootstrap)")
    b.add_argument("--base", default=None, help="BASE_IMAGE passed to every agent Dockerfile")
    b.add_argument("--base-only", action="store_true", help=f"only build the offline base image {BASE_TAG}")
    which = b.add_mutually_exclusive_group()
    which.add_argument("--runtime-only", action="store_true",
                       help="only build the bwrap agent runtime (a Debian root folder; no Docker needed)")
    which.add_argument("--no-runtime", action="store_true", help="do not build the bwrap agent runtime")
    b.add_argument("agents", nargs="*", help="agent names (configs/agents/*.yaml); default all")
    mlebench_images.add_commands(sub)  # mlebench-env, mlebench-agent
    args = parser.parse_args(argv)
    try:
        if args.cmd != "build":
            mlebench_images.run_command(args)
        elif args.runtime_only:
            runtime.build()
        elif args.base_only:
            build_base(args.base or BASE_TAG)
        else:
            build(args.agents, offline=args.offline, base=args.base, with_runtime=not args.no_runtime)
    except (BuildError, ConfigError) as err:
        print(f"mleray images: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
