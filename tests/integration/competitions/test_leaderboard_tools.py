"""The leaderboard builders' shared command line (competitions/leaderboard_tools.py), on the quickest
builder: `--check --limit N` passes on the committed board and fails on a changed one, and `--limit`
without `--check` refuses to write a partial board."""

import subprocess
import sys

import pytest
from helpers import require

import mleray.competitions as competitions


@pytest.fixture(scope="module")
def comp():
    comp = competitions.get("elecdemand-forecast")
    problems = competitions.missing_requirements(comp)
    require(not problems, "; ".join(problems))
    return comp


def build(comp, *args):
    return subprocess.run([sys.executable, str(comp.root / "build_leaderboard.py"), *args],
                          capture_output=True, text=True, timeout=600)


def test_check_limit_passes_on_the_board_and_fails_on_a_changed_one(comp, tmp_path):
    ok = build(comp, "--check", "--limit", "5")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "checked 5 pipelines" in ok.stdout and "0 differ" in ok.stdout
    changed = tmp_path / "leaderboard.csv"
    lines = comp.leaderboard.read_text().splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if ",mean|none|window=last_4w," in line)
    lines[row] = lines[row].rsplit(",", 1)[0] + ",0.12345\n"
    changed.write_text("".join(lines))
    bad = build(comp, "--check", "--limit", "5", str(changed))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "1 differ" in bad.stdout and "first: mean|none|window=last_4w" in bad.stdout


def test_limit_without_check_refuses_to_write(comp, tmp_path):
    out = tmp_path / "leaderboard.csv"
    result = build(comp, "--limit", "5", str(out))
    assert result.returncode == 2 and "refusing to write a partial leaderboard" in result.stderr
    assert not out.exists()
