"""The hostile-agent catalogue both sandboxes are tried with, through the real runner (`run_trial`:
staging, the sandbox, grading, the record). Each `Attack` is an agent script (stdlib Python, run as
/home/agent/agent.py on titanic), the tier and agent settings it needs, and `check(outcome)`: what the
record and agent.log must say. `run_attack` runs one as a trial of a custom agent (its YAML in a
temporary agents folder, image `mleray-base:local` for Docker, the agent runtime for bwrap).

What every attack's record must hold whatever the attack (`common_checks`): a score no better than the
honest gender model gets from the answers, no secret (the answers' rows, a root-only file, the driver's
canary variable) anywhere in the record or the trial folder, a record line under 4 KB.

Agents report what they found on lines `HOSTILE {"key": ..., "value": ...}` in their log; the tests
read them back (`Outcome.found`). Used by tests/integration/trial/test_hostile_agents_bwrap.py and
tests/docker/test_hostile_agents_docker.py."""

from __future__ import annotations

import hashlib
import http.server
import importlib.metadata
import json
import os
import re
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import psutil
import pytest
from helpers import ROOT

from mleray.config import load_sweep
from mleray.grading import grade_submission
from mleray.records import TrialResult
from mleray.sandbox.images import BASE_TAG
from mleray.sweep.trials import TrialJob, expand
from mleray.trial.runner import run_trial

CANARY_VAR = "MLERAY_CANARY_SECRET"
RECORD_LINE_MAX = 4096
SHADOW_MARK = "shadow-hash-"  # the root-only host file's content starts with it

# -- what the agents share -------------------------------------------------------------------------

PRELUDE = '''
import csv, json, os, sys, time
SUB = "/home/submission/submission.csv"

def report(key, value):
    sys.stdout.flush()  # one write per line: processes reporting at once never interleave
    os.write(1, ("HOSTILE " + json.dumps({"key": key, "value": value}) + "\\n").encode())

def honest(path=SUB):
    """The gender model (women survive): what an honest agent submits without any answer."""
    with open("/home/data/test.csv") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w") as out:
        out.write("PassengerId,Survived\\n")
        for r in rows:
            out.write("%s,%d\\n" % (r["PassengerId"], r["Sex"] == "female"))
'''


@dataclass
class Facts:
    """What the host knows and the agent must not: the prepared titanic, its answers' hash, the honest
    score, the secrets that must appear nowhere."""

    prepared: object
    answers_sha: str  # sha256 of the answers' canonical form (label_hash)
    honest_score: float  # the gender model's accuracy: no attack may score better
    shadow: Path  # a root-only (0600) host file
    canary: str  # the value of CANARY_VAR in the driver's environment
    secrets: List[str] = field(default_factory=list)


def label_hash(rows: Dict[str, str]) -> str:
    """The canonical hash of a {PassengerId: Survived} labelling (the agent's and the test's alike)."""
    text = "".join(f"{k},{int(float(v))}\n" for k, v in sorted(rows.items(), key=lambda kv: int(kv[0])))
    return hashlib.sha256(text.encode()).hexdigest()


def make_facts(prepared, tmp: Path) -> Facts:
    """The answers' hash and excerpts, the gender model's score, a root-only secret file."""
    answers = Path(prepared.answers_path).read_text()
    lines = answers.splitlines()
    rows = dict(line.split(",", 1) for line in lines[1:])
    test = (Path(prepared.public_dir) / "test.csv").read_text().splitlines()
    sex = test[0].split(",").index("Sex")
    import csv

    honest_csv = tmp / "honest.csv"
    with honest_csv.open("w") as out:
        out.write("PassengerId,Survived\n")
        for r in csv.reader(test[1:]):
            out.write(f"{r[0]},{int(r[sex] == 'female')}\n")
    score = grade_submission(prepared, honest_csv)["score"]
    shadow = tmp / "shadow"
    token = SHADOW_MARK + uuid.uuid4().hex
    shadow.write_text(f"root:{token}:19000:0:99999:7:::\n")
    shadow.chmod(0o600)
    canary = os.environ[CANARY_VAR]
    # the answers' rows as text: a run of 8 of them (raw, JSON-escaped, or as a reason's excerpt quotes it)
    # that the honest submission does not hold is a leak wherever it shows
    mine = honest_csv.read_text()
    runs = ["\n".join(lines[i:i + 8]) for i in range(1, len(lines) - 8, 10)]
    runs = [r for r in runs if r not in mine][:12]
    secrets = [token, canary, *runs, *(r.replace("\n", "\\n") for r in runs), *(r.replace("\n", " ") for r in runs)]
    return Facts(prepared, label_hash(rows), float(score), shadow, canary, secrets)


@dataclass
class Outcome:
    """One attack's trial: its record, the record's line, agent.log, the trial folder, the wall time."""

    attack: "Attack"
    backend: str
    record: TrialResult
    line: str
    log: str
    folder: Path
    wall_s: float
    facts: Facts
    extra: Dict[str, object] = field(default_factory=dict)

    def found(self, key: str, default=None):
        """The last value the agent reported under `key`."""
        value = default
        for line in self.log.splitlines():
            if line.startswith("HOSTILE "):
                try:
                    item = json.loads(line[len("HOSTILE "):])
                except ValueError:
                    continue
                if item.get("key") == key:
                    value = item.get("value")
        return value

    def findings(self) -> str:
        """What the agent reported, less the bulky dumps (its /proc reads and its environment)."""
        keys = [json.loads(line[8:]).get("key") for line in self.log.splitlines() if line.startswith("HOSTILE {")]
        return json.dumps({k: self.found(k) for k in dict.fromkeys(keys) if k not in ("proc", "env")})

    def need(self, key: str, measured: str = "") -> None:
        """Skips, naming what this machine does not enforce (and what the attack then did), when the
        record's isolation says so."""
        held = self.record.isolation.get(key, "")
        if held.startswith("not enforced"):
            pytest.skip(f"{self.backend}: {key} {held}" + (f"; measured: {measured}" if measured else ""))


@dataclass(frozen=True)
class Attack:
    """An agent script, what it needs (tier, agent YAML, sweep settings), and what its record must say."""

    name: str
    script: str
    check: Callable[[Outcome], None]
    tier: Dict[str, float] = field(default_factory=dict)
    sweep: Dict[str, object] = field(default_factory=dict)
    egress: bool = False
    args: Callable[[Facts], List[str]] = lambda facts: []
    env: Callable[[Facts], Dict[str, str]] = lambda facts: {}
    backends: Tuple[str, ...] = ("bwrap", "docker")

    def __repr__(self) -> str:
        return self.name


def run_attack(attack: Attack, backend: str, facts: Facts, where: Path, monkeypatch,
               args: Sequence[str] = (), name: Optional[str] = None, agents: Optional[Path] = None) -> Outcome:
    """Runs `attack` as one trial (seed 1, titanic) of an agent of its own under `backend`, its YAML in
    `agents` (default `where`/agents; trials run at once share one)."""
    name = name or attack.name.replace("_", "-")
    agents = agents or where / "agents"
    (agents / name).mkdir(parents=True, exist_ok=True)
    (agents / name / "agent.py").write_text(PRELUDE + textwrap.dedent(attack.script))
    token = "hostile-" + uuid.uuid4().hex[:12]  # last on the command line: finds the agent's processes on the host
    command = ["python3", "/home/agent/agent.py", *attack.args(facts), *args, token]
    (agents / f"{name}.yaml").write_text(json.dumps({
        "image": BASE_TAG, "code": name, "command": command, "env": attack.env(facts), "egress": attack.egress}))
    monkeypatch.setenv("MLERAY_AGENTS_DIR", str(agents))
    tier = {"time_limit": 20, **attack.tier}
    overrides = [f"agents=[{name}]", "competitions=[titanic]", "seeds=1", "snapshot_interval=1", "grace_period=2",
                 f"name=hostile-{name}"]
    overrides += [f"tiers.cpu.{k}={v}" for k, v in tier.items()] + [f"{k}={v}" for k, v in attack.sweep.items()]
    cfg = load_sweep(overrides=overrides)
    spec = expand(cfg, ["titanic"])[0]
    t0 = time.monotonic()
    record = run_trial(TrialJob.of(cfg, spec, where / "sweep", backend))
    wall = time.monotonic() - t0
    folder = where / "sweep" / "trials" / spec.trial_id
    log = (folder / "agent.log").read_text(errors="replace")
    line = json.dumps(record.to_dict(), default=str)
    outcome = Outcome(attack, backend, record, line, log, folder, wall, facts, {"token": token})
    print(f"{backend} {name}: {wall:.1f} s; score {record.score}, valid {record.valid_submission}, "
          f"timed_out {record.timed_out}, oom {record.oom_killed}/{record.child_oom_killed}, "
          f"disk {record.disk_exceeded}; reason: {record.reason!r}; found: {outcome.findings()[:700]}")  # pytest -rP
    common_checks(outcome)
    return outcome


def common_checks(out: Outcome) -> None:
    """What every attack's record holds: no better than honest, no secret anywhere, a short line."""
    rec = out.record
    assert nothing_left(str(out.extra["token"])) == [], "an agent process outlived its trial"
    assert len(out.line.encode()) < RECORD_LINE_MAX, len(out.line)
    # what held is in every record, a trial the runner stopped (disk) included
    assert {"env", "user", "pids", "memory", "cpu", "network", "disk"} <= set(rec.isolation), rec.isolation
    assert rec.score is None or rec.score <= out.facts.honest_score + 1e-9, (rec.score, out.facts.honest_score)
    for snap in rec.snapshots:
        assert snap["score"] is None or snap["score"] <= out.facts.honest_score + 1e-9, snap
    for secret in out.facts.secrets:
        assert secret not in out.line, f"a secret is in the record: {secret[:40]!r}"
        assert secret not in out.log, f"a secret is in agent.log: {secret[:40]!r}"
    for file in out.folder.rglob("*"):
        if file.is_file() and not file.is_symlink() and file.name != "agent.log" and file.stat().st_size < 2**24:
            text = file.read_text(errors="replace")
            assert not [s for s in out.facts.secrets if s in text], file


def graded_honestly(out: Outcome) -> None:
    """The trial ended and its honest submission was graded as usual: the gender model's score."""
    rec = out.record
    assert rec.status == "graded" and rec.valid_submission, (rec.status, rec.reason)
    assert rec.score == pytest.approx(out.facts.honest_score), (rec.score, rec.reason)


def nothing_left(token: str) -> List[int]:
    """Host pids of processes whose command line carries `token` (the attack's own marker)."""
    left = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if token in " ".join(proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                left.append(proc.pid)
        except psutil.Error:
            continue
    return left


# -- 1. submission.csv that is not a regular file ---------------------------------------------------

LINKER = '''
kind, target = sys.argv[1], sys.argv[2]
mounts = [line.split()[3:5] for line in open("/proc/self/mountinfo")]
data = [root for root, point in mounts if point == "/home/data"]
report("data_mount_root", data)
guesses = []
for root in data:  # the private side as it once sat: beside the public folder, or in the cache's layout
    parent = os.path.dirname(root)
    guesses += [parent + "/private/answers.csv", os.path.dirname(parent) + "/.answers"]
report("guesses", {g: os.path.exists(g) for g in guesses})
os.chdir("/home/submission")
if kind == "link":
    os.symlink(target, "submission.csv")
elif kind == "loop":
    os.symlink("loop.csv", "submission.csv"); os.symlink("submission.csv", "loop.csv")
elif kind == "chain":
    honest("/home/submission/real.csv")
    os.symlink("real.csv", "l60")
    for i in range(59, -1, -1):
        os.symlink("l%d" % (i + 1), "l%d" % i)
    os.symlink("l0", "submission.csv")
elif kind == "fifo":
    os.mkfifo("submission.csv")
elif kind == "dir":
    os.mkdir("submission.csv")
    honest("/home/submission/submission.csv/submission.csv")
report("planted", [kind, os.path.islink("submission.csv")])
time.sleep(1.5)  # a snapshot or two meets it too
'''


def _not_graded(what: str) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        rec = out.record
        assert out.found("planted") is not None, out.log[-2000:]
        assert rec.status == "graded" and rec.exit_code == 0, (rec.status, rec.reason)
        assert rec.score is None and not rec.valid_submission and rec.submission_path is None, rec.reason
        assert what in rec.reason and "only regular files are graded" in rec.reason, rec.reason
        assert rec.snapshots == [], rec.snapshots  # never copied out either
        assert not any(out.found("guesses", {}).values()), out.found("guesses")  # the answers are no sibling
    return check


def _link_to(which: str) -> Callable[[Facts], List[str]]:
    def args(facts: Facts) -> List[str]:
        kind, target = {"answers": ("link", str(facts.prepared.answers_path)),  # as if guessed right
                        "root_only": ("link", str(facts.shadow)), "dev_zero": ("link", "/dev/zero"),
                        "dangling": ("link", "/nonexistent/answers.csv"), "loop": ("loop", "-"),
                        "chain": ("chain", "-"), "fifo": ("fifo", "-"), "dir": ("dir", "-")}[which]
        return [kind, target]
    return args


SUBMISSION_KINDS = {"answers": "symbolic link", "root_only": "symbolic link", "dev_zero": "symbolic link",
                    "dangling": "symbolic link", "loop": "symbolic link", "chain": "symbolic link",
                    "fifo": "a FIFO", "dir": "a directory"}
LINK_ATTACKS = [Attack(f"submission_{kind}", LINKER, _not_graded(what), args=_link_to(kind))
                for kind, what in SUBMISSION_KINDS.items()]

# -- 2-4. reading the answers, the driver's environment, raw-data packages: one snooping agent ----------

SNOOP = r'''
import hashlib, importlib, importlib.util, re
answers_path, modules = sys.argv[1], json.loads(sys.argv[2])
try:
    open(answers_path).read(10); report("answers_path", "READ")
except OSError as e:
    report("answers_path", type(e).__name__)

# 3. every /proc/*/environ and cmdline readable here, and our own environment, written to the log
seen = {}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for part in ("environ", "cmdline"):
            try:
                seen[pid + "/" + part] = open("/proc/%s/%s" % (pid, part), "rb").read().decode("utf-8", "replace")
            except OSError as e:
                seen[pid + "/" + part] = "ERR " + type(e).__name__
report("proc", seen)
report("env", dict(os.environ))

# 4. the raw-data packages titanic and the other offline competitions were built from
importable = []
for m in modules:
    try:
        if importlib.util.find_spec(m) is not None:
            importlib.import_module(m); importable.append(m)
    except Exception:
        pass
report("importable", importable)

# 2. the whole visible file system, for titanic's test labels
test_ids = [r["PassengerId"] for r in csv.DictReader(open("/home/data/test.csv"))]
names = {}
for r in csv.DictReader(open("/home/data/test.csv")):
    names[re.sub(r"[^a-z]", "", r["Name"].lower())] = r["PassengerId"]
found, scanned, candidates = [], 0, []
for top, dirs, files in os.walk("/", onerror=lambda e: None):
    if top in ("/proc", "/sys", "/dev", "/home/submission"):
        dirs[:] = []
        continue
    for f in files:
        path = os.path.join(top, f)
        low = f.lower()
        if not low.endswith((".csv", ".txt", ".tsv", ".json", ".data")) and not re.search(
                "answer|gender|test|titanic|label|surviv|private", low):
            continue
        try:
            if not os.path.isfile(path) or os.path.getsize(path) > 50 * 2**20:
                continue
            head = open(path, "rb").read(4096).decode("utf-8", "replace")
        except OSError:
            continue
        scanned += 1
        if "surviv" not in head.lower():
            continue
        found.append(path)
        try:
            rows = list(csv.DictReader(open(path, errors="replace")))
        except Exception:
            continue
        keys = {k.lower(): k for k in (rows[0].keys() if rows else []) if k}
        if "survived" not in keys:
            continue
        labels = {}
        if "passengerid" in keys:  # a submission-shaped table: the test ids with labels
            wanted = set(test_ids)
            labels = {r[keys["passengerid"]]: r[keys["survived"]] for r in rows if r[keys["passengerid"]] in wanted}
        elif "name" in keys:  # a raw table (titanic3): join on the passenger's name
            for r in rows:
                pid = names.get(re.sub(r"[^a-z]", "", (r[keys["name"]] or "").lower()))
                if pid and (r[keys["survived"]] or "").strip() in ("0", "1"):
                    labels[pid] = r[keys["survived"]].strip()
        if len(labels) >= 400 and len(set(labels.values())) > 1:  # not a constant one (the sample submission)
            candidates.append((path, labels))
def canon(rows):
    text = "".join("%s,%d\n" % (k, int(float(v))) for k, v in sorted(rows.items(), key=lambda kv: int(kv[0])))
    return hashlib.sha256(text.encode()).hexdigest()
report("scanned", scanned)
report("survived_files", found)
report("candidates", [[p, len(l), canon(l)] for p, l in candidates])
honest()
if candidates:  # what a cheat would do with them
    path, labels = max(candidates, key=lambda c: len(c[1]))
    rows = list(csv.DictReader(open("/home/data/test.csv")))
    with open(SUB, "w") as out:
        out.write("PassengerId,Survived\n")
        for r in rows:
            out.write("%s,%d\n" % (r["PassengerId"], int(float(labels.get(r["PassengerId"], r["Sex"] == "female")))))
report("done", True)
'''


def requirement_names(path: Path) -> List[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0])
    return names


def raw_data_modules() -> List[str]:
    """The import names of competitions/PIP_PACKAGES.txt and PIP_NO_DEPS.txt (the host's metadata, or
    the distribution's name), as tests/integration/sandbox/test_runtime.py finds them."""
    out = set()
    for listing in ("PIP_PACKAGES.txt", "PIP_NO_DEPS.txt"):
        for dist in requirement_names(ROOT / "competitions" / listing):
            out.add(re.sub(r"[-.]", "_", dist).lower())
            try:
                found = importlib.metadata.distribution(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
            out |= {n.strip() for n in (found.read_text("top_level.txt") or "").splitlines() if n.strip()}
            for file in found.files or []:
                first = file.parts[0]
                if not first.endswith((".dist-info", ".egg-info", ".data")) and first not in ("..", "__pycache__"):
                    out.add(first[:-3] if first.endswith(".py") else first)
    return sorted(out)


def _snooped(out: Outcome) -> None:
    rec, facts = out.record, out.facts
    assert out.found("done") is True, out.log[-3000:]
    assert out.found("answers_path") in ("PermissionError", "FileNotFoundError"), out.found("answers_path")
    # 3. the canary: set in the driver, nowhere inside (the log holds everything the agent could read)
    proc = out.found("proc")
    assert len([v for v in proc.values() if not v.startswith("ERR")]) >= 2, proc  # it did read some
    assert facts.canary not in out.log and CANARY_VAR not in out.log
    assert "COMPETITION_ID" in out.found("env")  # its own environment was dumped too
    # 4. no raw-data package
    assert out.found("importable") == [], out.found("importable")
    # 2. the search ran over a real file system and found no labelling equal to the answers
    assert out.found("scanned") > 100, out.found("scanned")
    candidates = out.found("candidates")
    assert [c for c in candidates if c[2] == facts.answers_sha] == [], candidates
    assert candidates == [], candidates  # nor any other test labelling (a join of a raw table)
    graded_honestly(out)  # the gender model, not the answers: below 1.0
    assert rec.score < 1.0 and rec.exit_code == 0


SNOOP_ATTACK = Attack("snoop", SNOOP, _snooped, tier={"time_limit": 60},
                      args=lambda facts: [str(facts.prepared.answers_path), json.dumps(raw_data_modules())])

# -- 5. resources --------------------------------------------------------------------------------------

FORK_BOMB = '''
import signal
honest()
kids, refused, t0 = [], None, time.time()
while time.time() - t0 < 4 and len(kids) < 5000:  # bounded: at most 5000 sleepers, 4 s
    try:
        pid = os.fork()
    except OSError as e:
        refused = type(e).__name__
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
report("forked", [len(kids), refused])
for pid in kids:
    os.kill(pid, signal.SIGKILL)
for pid in kids:
    os.waitpid(pid, 0)
'''


def _bomb_held(out: Outcome) -> None:
    out.need("pids")
    forked, refused = out.found("forked")
    assert refused == "BlockingIOError" and 0 < forked < 64, (forked, refused)  # pids.max 64, whatever the tree
    assert "64" in out.record.isolation["pids"], out.record.isolation
    graded_honestly(out)
    assert out.record.exit_code == 0


HOG = '''
honest()
kids = []
for i in range(4):  # 4 x 300 MiB in a 0.5 GiB tier
    pid = os.fork()
    if pid == 0:
        block = bytearray(300 * 2**20)
        for j in range(0, len(block), 4096):
            block[j] = 1
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
report("children", [os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids])
'''


def _hog_held(out: Outcome) -> None:
    out.need("memory")
    codes = out.found("children")
    assert codes and -9 in codes, codes  # at least one child killed: 1.2 GiB cannot fit in 0.5
    rec = out.record
    assert rec.child_oom_killed and not rec.oom_killed, rec.reason
    assert "memory" in rec.reason, rec.reason
    graded_honestly(out)


CPU = '''
before = sorted(os.sched_getaffinity(0))
try:
    os.sched_setaffinity(0, range(os.cpu_count())); err = None
except OSError as e:
    err = type(e).__name__
after = sorted(os.sched_getaffinity(0))
t0 = time.time(); kids = []
for i in range(max(2, os.cpu_count())):  # every core the host has, busy for 3 s
    pid = os.fork()
    if pid == 0:
        while time.time() - t0 < 3:
            pass
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
wall = time.time() - t0
used = os.times()
report("cpu", dict(before=before, after=after, err=err, host_cpus=os.cpu_count(),
                   cpu_s=used.children_user + used.children_system, wall_s=wall))
honest()
'''


def _cpu_held(out: Outcome) -> None:
    got = out.found("cpu")
    cpus = out.record.cpus
    out.need("cpu")
    ratio = got["cpu_s"] / got["wall_s"]
    out.extra["cpu_ratio"] = ratio
    assert ratio <= cpus * 1.3 + 0.05, got  # unbounded, the busy processes would use every host core
    # a cpuset in both backends: the widened affinity reads back as the one core it had
    assert len(got["before"]) == 1 and got["after"] == got["before"], got
    graded_honestly(out)


STUBBORN = '''
import signal
honest()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for i in range(3):
    if os.fork() == 0:
        break
report("ignoring", os.getpid())
while True:
    time.sleep(0.1)
'''


def _stopped_at_limit(out: Outcome) -> None:
    rec = out.record
    limit, grace = rec.time_limit, 2.0
    assert out.found("ignoring") is not None, out.log
    assert rec.timed_out and "time limit" in rec.reason, rec.reason
    assert rec.agent_s < limit + grace + 5, rec.agent_s
    graded_honestly(out)  # what it wrote before it stopped listening is still graded


FILL = '''
honest()
target = sys.argv[1]
chunk = os.urandom(2**20)
report("filling", target)
with open(target, "wb") as f:
    for i in range(600):  # 600 MiB at most, 1 MiB every 10 ms: 12 x the tier's disk_gb by 0.6 s
        f.write(chunk); f.flush(); time.sleep(0.01)
report("wrote_all", True)  # not stopped: it ends by itself, the record says whether the bound was noticed
'''


def _disk_held(out: Outcome) -> None:
    rec = out.record
    if out.found("filling") == "/tmp/fill" and out.backend == "docker":
        out.need("layer_disk", f"the agent wrote_all={out.found('wrote_all')} (600 MiB in /tmp), the record "
                               f"says disk_exceeded={rec.disk_exceeded}")
    assert rec.disk_exceeded and "GiB" in rec.reason, (rec.disk_exceeded, rec.reason)
    assert out.found("wrote_all") is None and not rec.timed_out, rec.reason  # stopped before it wrote it all
    assert rec.agent_s < 6, rec.agent_s
    graded_honestly(out)


def _fill(target: str) -> Attack:
    name = "disk_fill_" + target.strip("/").split("/")[-2 if target.count("/") > 1 else 0]
    return Attack(name, FILL, _disk_held, tier={"disk_gb": 0.05, "time_limit": 20}, args=lambda facts: [target])


FLOOD = r'''
import http.client, socket, threading, uuid
honest()
counts, lock = {}, threading.Lock()
body = open(SUB, "rb").read()
def multipart(data):
    b = uuid.uuid4().hex
    head = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="submission.csv"\r\n'
            'Content-Type: text/csv\r\n\r\n' % b).encode()
    return head + data + ("\r\n--%s--\r\n" % b).encode(), "multipart/form-data; boundary=" + b
def one(i):
    kind = ("ok", "huge", "lie", "garbage")[i % 4]
    try:
        conn = http.client.HTTPConnection("localhost", 5000, timeout=20)
        if kind == "ok":
            data, ctype = multipart(body)
        elif kind == "huge":  # 24 MiB of one line
            data, ctype = multipart(b"x" * (24 * 2**20))
        elif kind == "lie":  # says 10 GB, sends a little, then hangs up
            conn.putrequest("POST", "/validate"); conn.putheader("Content-Length", str(10**10))
            conn.putheader("Content-Type", "multipart/form-data; boundary=x"); conn.endheaders()
            conn.send(b"--x\r\n" + b"y" * 65536); conn.close()
            raise OSError("hung up")
        else:
            data, ctype = os.urandom(200000), "application/octet-stream"
        conn.request("POST", "/validate", body=data, headers={"Content-Type": ctype})
        resp = conn.getresponse(); text = resp.read(4096).decode("utf-8", "replace")
        key = "%s:%d:%s" % (kind, resp.status, "valid" if '"valid": true' in text else "no")
    except Exception as e:
        key = "%s:%s" % (kind, type(e).__name__)
    with lock:
        counts[key] = counts.get(key, 0) + 1
def worker(w):
    for i in range(20):
        one(w * 20 + i)
t0 = time.time()
threads = [threading.Thread(target=worker, args=(w,)) for w in range(10)]
for t in threads: t.start()
for t in threads: t.join()
report("flood", dict(counts=counts, seconds=round(time.time() - t0, 1)))
import subprocess
report("after", subprocess.run(["sh", "/home/validate_submission.sh", SUB], capture_output=True, text=True).stdout)
'''


def _flood_held(out: Outcome) -> None:
    flood = out.found("flood")
    assert flood is not None and sum(flood["counts"].values()) == 200, out.log[-2000:]
    assert not [k for k in flood["counts"] if k.startswith(("huge", "garbage")) and k.endswith("valid")], flood
    assert "Submission is valid" in out.found("after", ""), out.found("after")  # still answering after it
    rec = out.record
    assert not rec.timed_out and rec.exit_code == 0, rec.reason
    graded_honestly(out)


RESOURCE_ATTACKS = [
    Attack("fork_bomb", FORK_BOMB, _bomb_held, tier={"pids": 64}, args=lambda facts: []),
    Attack("memory_hog", HOG, _hog_held, tier={"memory_gb": 0.5}),
    Attack("cpu_widen", CPU, _cpu_held, tier={"cpus": 0.5}),
    Attack("sigterm_ignored", STUBBORN, _stopped_at_limit, tier={"time_limit": 5}),
    _fill("/home/code/fill"),
    _fill("/tmp/fill"),
    Attack("validation_flood", FLOOD, _flood_held, tier={"time_limit": 90}),
]

# -- 7. egress -----------------------------------------------------------------------------------------

PROBE = r'''
import socket, struct
lo_port, any_port, host_ip = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        f = line.split()
        if f[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(f[2], 16)))
def tcp(host, port):
    if not host:
        return "no address"
    try:
        s = socket.create_connection((host, port), timeout=3)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n"); data = s.recv(4096); s.close()
        return "CONNECTED" + (" (host secret)" if b"host secret" in data else "")
    except OSError as e:
        return type(e).__name__
gw = gateway()
report("gateway", gw)
report("probes", {"127.0.0.1:loopback-only": tcp("127.0.0.1", lo_port), "127.0.0.1:any": tcp("127.0.0.1", any_port),
                  "host-ip:any": tcp(host_ip, any_port), "gateway:any": tcp(gw, any_port),
                  "gateway:loopback-only": tcp(gw, lo_port), "10.0.2.2:loopback-only": tcp("10.0.2.2", lo_port),
                  "172.17.0.1:any": tcp("172.17.0.1", any_port)})
honest()
'''

EGRESS_PROBE = Attack("egress_probe", PROBE, lambda out: graded_honestly(out), egress=True)

SAME_PORT = r'''
import socket
token = sys.argv[1]
server = socket.socket(); server.bind(("127.0.0.1", 47011)); server.listen()
report("bound", token)
time.sleep(2)  # the other trial binds the same port meanwhile
client = socket.create_connection(("127.0.0.1", 47011), timeout=3)
conn, _ = server.accept(); conn.sendall(token.encode()); conn.close()
report("read", client.recv(100).decode())
honest()
time.sleep(1)
'''

SAME_PORT_ATTACK = Attack("same_port", SAME_PORT, lambda out: graded_honestly(out), egress=True)


class HostServers:
    """Two HTTP servers on the host, answering "host secret": one on 127.0.0.1, one on 0.0.0.0."""

    def __init__(self) -> None:
        class Quiet(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"host secret")

            def log_message(self, *args):
                pass

        self.servers = [http.server.ThreadingHTTPServer((addr, 0), Quiet) for addr in ("127.0.0.1", "0.0.0.0")]
        self.lo_port, self.any_port = (s.server_address[1] for s in self.servers)

    def __enter__(self) -> "HostServers":
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def host_ip() -> str:
    """This host's own address on its default route (a UDP connect sends nothing)."""
    import socket

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]
    finally:
        probe.close()


ATTACKS: List[Attack] = [*LINK_ATTACKS, SNOOP_ATTACK, *RESOURCE_ATTACKS]


def by_name() -> Dict[str, Attack]:
    return {a.name: a for a in ATTACKS}


def ids(attacks: Sequence[Attack]) -> Iterator[str]:
    return (a.name for a in attacks)
