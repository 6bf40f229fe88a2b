"""Both instructions files reach a bwrap agent, read-only, as in the Docker sandbox (MLE-bench's layout)."""

from __future__ import annotations

from pathlib import Path

from mleray.sandbox.base import SandboxSpec
from mleray.sandbox.bwrap import BwrapSandbox

SCRIPT = """
for name in ("instructions.txt", "instructions_obfuscated.txt"):
    path = "/home/" + name
    print(name, open(path).read().strip())
    try:
        open(path, "a")
        print("writable", name)
    except OSError as err:
        print("readonly", name, err.errno)
"""


def test_both_instructions_files_are_there_read_only(tmp_path: Path, bwrap_path):
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "description.md").write_text("the task\n")
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "agent.py").write_text(SCRIPT)
    (tmp_path / "instructions.txt").write_text("plain\n")
    (tmp_path / "instructions_obfuscated.txt").write_text("obfuscated\n")
    spec = SandboxSpec(sweep="t", trial_id="t1", attempt=0, command=["python3", "/home/agent/agent.py"],
                       data_dir=tmp_path / "public", instructions=tmp_path / "instructions.txt",
                       instructions_obfuscated=tmp_path / "instructions_obfuscated.txt",
                       submission_dir=tmp_path / "sub", code_dir=tmp_path / "code", logs_dir=tmp_path / "logs",
                       agent_code=tmp_path / "agent", env={"COMPETITION_ID": "demo"})
    box = BwrapSandbox(spec, grace_period=2.0)
    box.start()
    try:
        lines = list(box.logs())
        info = box.wait(60)
    finally:
        box.kill()
    assert info.exit_code == 0, lines
    assert lines[0] == "instructions.txt plain" and lines[2] == "instructions_obfuscated.txt obfuscated", lines
    assert lines[1].startswith("readonly instructions.txt") and lines[3].startswith("readonly instructions_obf"), lines
