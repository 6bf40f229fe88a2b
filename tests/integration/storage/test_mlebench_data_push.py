"""`mleray data push` and nodes staging MLE-bench data from an object store, end to end.

moto's S3 server (in a thread of the test process) is the named stand-in for S3, as in
test_s3_storage.py: pyarrow's real S3 filesystem talks to it over HTTP. Nodes are processes: two share
one node cache (the second waits for the first's lock, nothing is fetched twice), a third has a cache
of its own (another node), all three at once. A corrupted object is refused by its checksum."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from helpers import AWS_ENV, ROOT, moto_s3

from mleray.cli import data as data_cli
from mleray.mlebench import catalog, data

CID = "leaf-classification"


@pytest.fixture
def s3_uri(monkeypatch):
    # moto keeps its buckets per process, not per server: a prefix of each test's own
    yield from moto_s3(monkeypatch, f"mleray-data/{uuid.uuid4().hex[:8]}")


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """`mlebench prepare` output for one competition: 40 public files of 64 KiB and the answers."""
    root = tmp_path / "mle-bench-data"
    monkeypatch.setenv(data.ENV_DATA_DIR, str(root))
    monkeypatch.delenv(data.ENV_DATA_URI, raising=False)
    public, private = root / CID / "prepared" / "public", root / CID / "prepared" / "private"
    (public / "images").mkdir(parents=True)
    private.mkdir(parents=True)
    for i in range(40):
        (public / "images" / f"{i}.jpg").write_bytes(os.urandom(64 << 10))
    (public / "description.md").write_text("# leaves\n")
    (public / "sample_submission.csv").write_text("id,y\n1,0\n")
    (private / "test.csv").write_text("id,y\n1,ANSWER\n")
    return root


STAGE = textwrap.dedent("""\
    import json, sys
    from mleray.trial.staging import stage
    prepared, staged = stage(sys.argv[1], on_wait=lambda m: print("WAIT", m, file=sys.stderr, flush=True))
    print(json.dumps({"public": str(prepared.public_dir), "answers": str(prepared.answers_path),
                      "prepared_here": staged.prepared_here, "waited_s": staged.waited_s}))
    """)


def _stager(uri: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, **AWS_ENV, data.ENV_DATA_URI: uri, "MLERAY_CACHE_DIR": str(cache)}
    env.pop(data.ENV_DATA_DIR, None)  # a node has no prepared data of its own
    return subprocess.Popen([sys.executable, "-c", STAGE, CID], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_push_then_three_processes_on_two_nodes_stage_at_once(s3_uri, prepared, tmp_path, capsys):
    assert data_cli.main(["push", CID, s3_uri]) == 0
    assert "pushed 43 files" in capsys.readouterr().out
    assert data_cli.main(["push", CID, s3_uri]) == 0  # once: the same digest is not uploaded again
    assert f"already at {s3_uri.split('?')[0]}" in capsys.readouterr().out

    from mleray.storage.backends import split_uri

    fs, base = split_uri(s3_uri)
    manifests = {part: json.loads(fs.open_input_stream(f"{base}/{part}/{CID}/manifest.json").read())
                 for part in ("public", "private")}
    assert set(manifests["public"]["files"]) == {"description.md", "sample_submission.csv",
                                                 *(f"images/{i}.jpg" for i in range(40))}
    assert set(manifests["private"]["files"]) == {"test.csv"}  # the answers only under private/
    assert manifests["public"]["digest"] == manifests["private"]["digest"]

    node_a, node_b = tmp_path / "node-a-cache", tmp_path / "node-b-cache"
    procs = [_stager(s3_uri, node_a), _stager(s3_uri, node_a), _stager(s3_uri, node_b)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        outs.append(json.loads(out.splitlines()[-1]))
    assert [o["prepared_here"] for o in outs[:2]].count(True) == 1  # node a: one fetched, one waited or found it
    assert outs[2]["prepared_here"]
    source = prepared / CID / "prepared"
    for out in outs:
        public = Path(out["public"])
        assert Path(out["answers"]).read_text() == "id,y\n1,ANSWER\n"
        assert not (public.parent / "private").exists() and ".answers" in Path(out["answers"]).parts
        for rel in manifests["public"]["files"]:
            assert (public / rel).read_bytes() == (source / "public" / rel).read_bytes(), rel
    assert outs[0]["public"] == outs[1]["public"]


def test_a_corrupted_upload_is_refused_by_its_checksum(s3_uri, prepared, tmp_path, monkeypatch):
    assert data_cli.main(["push", CID, s3_uri]) == 0
    from mleray.storage.backends import split_uri

    fs, base = split_uri(s3_uri)
    digest = json.loads(fs.open_input_stream(f"{base}/public/{CID}/manifest.json").read())["digest"]
    with fs.open_output_stream(f"{base}/public/{CID}/{digest}/images/7.jpg") as out:
        out.write(b"not the pushed bytes")
    monkeypatch.setenv(data.ENV_DATA_URI, s3_uri)
    monkeypatch.setenv("MLERAY_CACHE_DIR", str(tmp_path / "node-cache"))
    from mleray.competitions import CompetitionError
    from mleray.trial.staging import stage

    with pytest.raises(CompetitionError) as err:
        stage(CID)
    text = str(err.value)
    assert "public/images/7.jpg" in text and "fails its checksum" in text and "mleray data push" in text
    assert "endpoint_override" not in text  # the URI as a user names it
    entry_parent = tmp_path / "node-cache" / CID
    assert [p.name for p in entry_parent.iterdir()] == [f"mlebench-{digest[:12]}.lock"]  # no entry, no temporary
    # Pushed again (same digest, so the object is rewritten only after the manifest check) it stages.
    with fs.open_output_stream(f"{base}/public/{CID}/{digest}/images/7.jpg") as out:
        out.write((prepared / CID / "prepared" / "public" / "images" / "7.jpg").read_bytes())
    assert stage(CID)[0].answers_path.read_text() == "id,y\n1,ANSWER\n"


def _ours(stderr: str) -> list:
    """mleray's lines of stderr (moto's server logs its requests there too, and its logging errors), and any
    traceback through mleray's own code."""
    assert "mleray/mlebench" not in stderr and "mleray/cli" not in stderr, stderr[-2000:]
    return [line for line in stderr.splitlines() if line.startswith("mleray")]


def test_preflight_and_push_errors_are_one_line(s3_uri, prepared, monkeypatch, capsys):
    monkeypatch.setenv(data.ENV_DATA_URI, s3_uri)
    problems = data.preflight([CID])
    assert any(f"mleray data push {CID} {s3_uri.split('?')[0]}" in p for p in problems), problems
    assert data_cli.main(["push", "titanic", s3_uri]) == 2
    err = _ours(capsys.readouterr().err)
    assert len(err) == 1 and "not an MLE-bench competition" in err[0]
    assert catalog.get("spaceship-titanic") is not None
    assert data_cli.main(["push", "spaceship-titanic", s3_uri]) == 2  # not prepared here
    err = _ours(capsys.readouterr().err)
    assert len(err) == 1 and "mlebench prepare -c spaceship-titanic" in err[0]


def test_a_sweep_stages_from_the_uri_and_grades(s3_uri, tmp_path, bwrap_path):
    """A whole sweep with `mlebench_data_uri`: the driver has no prepared data of its own (its
    MLERAY_MLEBENCH_DATA_DIR is empty), the trial stages public data and answers from the bucket into the
    node cache and the official grader scores the dummy agent's copy of the sample submission."""
    from mleray.mlebench.data import package_problem

    if package_problem() is not None:
        pytest.skip(f"SKIPPED: the official mlebench package does not import ({package_problem()})")
    prepared = tmp_path / "prepared-elsewhere"
    cid = "spooky-author-identification"  # a grader with three classes: the sample submission scores log 3
    public, private = prepared / cid / "prepared" / "public", prepared / cid / "prepared" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    (public / "description.md").write_text("# leaves\n")
    (public / "train.csv").write_text("id,text,author\nid1,a dark night,EAP\n")
    third = 1 / 3
    (public / "sample_submission.csv").write_text(f"id,EAP,HPL,MWS\nid2,{third},{third},{third}\n"
                                                  f"id3,{third},{third},{third}\n")
    (private / "test.csv").write_text("id,EAP,HPL,MWS\nid2,1,0,0\nid3,0,0,1\n")
    env = {**os.environ, **AWS_ENV, data.ENV_DATA_DIR: str(prepared)}
    push = subprocess.run([sys.executable, "-m", "mleray", "data", "push", cid, s3_uri], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert push.returncode == 0, push.stderr[-2000:]
    empty = tmp_path / "no-data-here"
    empty.mkdir()
    cache = tmp_path / "node-cache"
    env = {**env, data.ENV_DATA_DIR: str(empty), "MLERAY_CACHE_DIR": str(cache)}
    env.pop(data.ENV_DATA_URI, None)
    done = subprocess.run([sys.executable, "-m", "mleray.sweep", f"storage={tmp_path / 'runs'}", "name=uri",
                           f"competitions=[{cid}]", "agents=[dummy]", "seeds=1", "sandbox=bwrap", "report=false",
                           "ray.num_cpus=1", f"mlebench_data_uri={s3_uri}"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    records = [json.loads(line) for line in (tmp_path / "runs" / "uri" / "trials.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["status"] == "graded", records
    assert records[0]["valid_submission"] and abs(records[0]["score"] - 1.098612) < 1e-3, records[0]["reason"]
    staged = list((cache / cid).glob("mlebench-*/public/train.csv"))
    assert len(staged) == 1 and not (staged[0].parent.parent / "private").exists()
    assert (cache / ".answers").stat().st_mode & 0o777 == 0o700
