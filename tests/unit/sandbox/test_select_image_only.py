"""bwrap runs an agent's command on its runtime with the `code` folder at /home/agent: an agent that starts
a program only its image holds (aide, MLE-bench's agent images) is refused by name at sweep start, with
sandbox=docker as the fix, and sandbox=auto passes bwrap over for it. Plain commands still run there."""

from __future__ import annotations

import pytest

from mleray.config import AgentConfig
from mleray.sandbox.base import SandboxError
from mleray.sandbox.bwrap.sandbox import BwrapSandbox
from mleray.sandbox.select import choose


def test_an_agent_living_in_its_image_is_named_and_sent_to_docker(tmp_path):
    aide = AgentConfig(name="aide", image="mleray-agent-aide:latest", command=["python3", "/opt/aide/run_aide.py"])
    mlebench = AgentConfig(name="mlebench-dummy", image="dummy:local", command=["bash", "/home/agent/start.sh"])
    dummy = AgentConfig(name="dummy", image="d", code=str(tmp_path), command=["python3", "/home/agent/agent.py"])
    plain = AgentConfig(name="plain", command=["true"])
    problem = BwrapSandbox.problem([aide, mlebench, dummy, plain])
    assert problem is not None and "aide, mlebench-dummy" in problem and "sandbox=docker" in problem
    assert "dummy," not in problem and "plain" not in problem
    with pytest.raises(SandboxError, match="sandbox=bwrap but agent"):
        choose("bwrap", [aide])
    assert "only their image holds" not in (BwrapSandbox.problem([dummy, plain]) or "")
