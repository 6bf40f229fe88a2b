"""The prepared answers are unreachable by construction: a root-only folder (0700, files 0600) whose
path cannot be derived from the public folder's, which an agent can read in /proc/self/mountinfo."""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest
from helpers import as_user

import mleray.competitions as competitions
from mleray.competitions import cache
from mleray.trial.staging import stage

TOKEN = "ANSWER-" + uuid.uuid4().hex

PREPARE = textwrap.dedent(f"""\
    from pathlib import Path

    def prepare(public, private):
        (Path(public) / "train.csv").write_text("id,y\\n1,0\\n2,1\\n")
        (Path(public) / "sample_submission.csv").write_text("id,y\\n3,0\\n")
        (Path(private) / "answers.csv").write_text("id,y\\n3,{TOKEN}\\n")
        (Path(private) / "extra").mkdir()
        (Path(private) / "extra" / "labels.txt").write_text("{TOKEN}\\n")
    """)

# Run as uid 1000: knowing both paths, try everything a path gives, and walk the whole cache root
# (public/../../.., so every `..` path inside the cache) reading what can be read, looking for the answers
# or the name of their folder.
PROBE = textwrap.dedent("""\
    import json, os, sys
    public, answers, cache_root, token = sys.argv[1:5]
    secret_name = os.path.basename(answers)
    out = {"uid": os.getuid(), "public_read": open(os.path.join(public, "train.csv")).read(), "denied": {}}
    for name, call in [("list answers", lambda: os.listdir(answers)),
                       ("read answers", lambda: open(os.path.join(answers, "answers.csv")).read()),
                       ("list answers root", lambda: os.listdir(os.path.dirname(answers))),
                       ("read key", lambda: open(os.path.join(os.path.dirname(answers), ".key"), "rb").read()),
                       ("stat answers file", lambda: os.stat(os.path.join(answers, "answers.csv")))]:
        try:
            call()
            out["denied"][name] = False
        except PermissionError:
            out["denied"][name] = True
    found, readable = [], 0
    for dirpath, dirnames, filenames in os.walk(os.path.join(public, "..", "..", "..")):  # the cache root
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
                readable += 1
                if token.encode() in data or secret_name.encode() in data:
                    found.append(path)
            except OSError:
                pass
    out["readable_files"], out["token_found_in"] = readable, found
    print(json.dumps(out))
    """)


@pytest.fixture
def world(monkeypatch):
    """A toy competition and a cache under a world-traversable folder, so that a uid-1000 process
    reaches the public folder (its parents are 0755) and only the answers' own modes stop it."""
    base = Path(tempfile.mkdtemp(prefix="mleray-answers-", dir="/tmp"))
    os.chmod(base, 0o755)
    folder = base / "competitions" / "toy"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(textwrap.dedent("""\
        id: toy
        name: Toy
        metric: accuracy
        id_column: id
        target_columns: [y]
        sample_submission: sample_submission.csv
        answers: answers.csv
        version: "1"
        """))
    (folder / "prepare.py").write_text(PREPARE)
    monkeypatch.setenv("MLERAY_COMPETITIONS_DIR", str(base / "competitions"))
    old_umask = os.umask(0o022)
    try:
        yield competitions.get("toy"), base / "cache"
    finally:
        os.umask(old_umask)
        shutil.rmtree(base, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_answers_are_root_only_and_not_beside_public(world):
    comp, root = world
    prepared = competitions.prepare(comp, root)
    public, answers = prepared.public_dir, prepared.private_dir
    assert prepared.answers_path.read_text() == f"id,y\n3,{TOKEN}\n"
    assert answers.parent == root / cache.ANSWERS
    # Not a sibling, not under the entry, not reachable by `..` from public short of the cache root.
    assert not (public.parent / "private").exists()
    assert root not in answers.parents or answers.parent.parent == root
    assert all(not answers.is_relative_to(up) for up in (public, public.parent, public.parent.parent))
    # Root-only modes, all the way down.
    assert _mode(answers.parent) == 0o700 and _mode(answers) == 0o700
    assert _mode(answers.parent / cache.KEY) == 0o600
    for path in answers.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
        assert os.lstat(path).st_uid == os.geteuid()
    # The public path names the competition, its version and content hash, nothing about the answers.
    assert public.relative_to(root).parts == ("toy", public.parent.name, "public")
    assert answers.name not in str(public)


def test_answers_name_needs_the_key(world, tmp_path):
    """The same competition in two caches (two keys) gets unrelated answers folders: the name is a keyed
    hash, not a function of anything an agent can see."""
    comp, root = world
    first = competitions.prepare(comp, root)
    other = competitions.prepare(comp, tmp_path / "other-cache")
    assert first.public_dir.relative_to(root) == other.public_dir.relative_to(tmp_path / "other-cache")
    assert first.private_dir.name != other.private_dir.name
    assert first.answers_path.read_bytes() == other.answers_path.read_bytes()  # byte-identical content


def test_uid_1000_cannot_reach_the_answers_knowing_every_path(world):
    if os.geteuid() != 0:
        pytest.skip("needs root: the test runs the probe as uid 1000 with setpriv")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    comp, root = world
    prepared = stage("toy", cache_root=root)[0]  # prepares, and leaves the (world-readable) staging manifest
    assert (root / ".staging" / "toy.json").is_file()
    result = subprocess.run(
        [setpriv, "--reuid", "1000", "--regid", "1000", "--clear-groups", sys.executable, "-I", "-c", PROBE,
         str(prepared.public_dir), str(prepared.private_dir), str(root), TOKEN],
        capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["uid"] == 1000
    assert out["public_read"] == "id,y\n1,0\n2,1\n"  # the control: the public side is readable
    assert out["denied"] == {"list answers": True, "read answers": True, "list answers root": True,
                             "read key": True, "stat answers file": True}
    assert out["readable_files"] >= 2 and out["token_found_in"] == []


def test_old_layout_is_rebuilt_without_private_beside_public(world):
    """A cache entry from before (private/ beside public/, the old marker) is rebuilt into the new layout."""
    comp, root = world
    entry = cache.cache_entry(comp, root)
    (entry / "public").mkdir(parents=True)
    (entry / "private").mkdir()
    (entry / "private" / "answers.csv").write_text("old\n")
    (entry / ".prepared").write_text("ok\n")
    prepared = competitions.prepare(comp, root)
    assert not (entry / "private").exists()
    assert prepared.answers_path.read_text() == f"id,y\n3,{TOKEN}\n"
    assert (entry / cache.DONE).is_file()


def test_lost_answers_are_rebuilt(world):
    comp, root = world
    first = competitions.prepare(comp, root)
    shutil.rmtree(first.private_dir)
    second = competitions.prepare(comp, root)
    assert second == first and second.answers_path.read_text() == f"id,y\n3,{TOKEN}\n"


def test_another_user_gets_a_one_line_error_not_a_traceback(world):
    """A user who is not the cache's owner (here uid 1000) asking for a root-prepared competition is
    told, in one line, that the answers are root-only, instead of a PermissionError traceback."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv: the test runs the caller as uid 1000")
    comp, root = world
    competitions.prepare(comp, root)
    script = textwrap.dedent("""\
        import sys
        import mleray.competitions as competitions
        try:
            competitions.prepare(competitions.get("toy"), sys.argv[1])
        except competitions.CompetitionError as err:
            print(err)
        """)
    result = subprocess.run(as_user(1000, [sys.executable, "-c", script, str(root)]),
                            capture_output=True, text=True, timeout=60, cwd="/", env=dict(os.environ))
    assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "cannot open the prepared answers" in lines[0] and "Permission denied" in lines[0]
    assert TOKEN not in result.stdout
