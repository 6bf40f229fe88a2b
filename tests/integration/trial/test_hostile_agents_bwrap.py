"""The hostile-agent catalogue (tests/hostile_agents.py) against bwrap, through the real runner: each attack
is a trial of its own agent on titanic, and its record says what happened. An attack this machine cannot
contain (no cgroup controller, no slirp4netns) is a skip naming what is missing, from the record's own
`isolation` map; never a silent pass. The kernel-level attacks on BwrapSandbox alone (seccomp, uid,
capabilities) are in tests/integration/sandbox/test_bwrap_attacks.py."""

from __future__ import annotations

import threading
import uuid

import hostile_agents as ha
import pytest

from mleray.trial.staging import stage

BACKEND = "bwrap"


@pytest.fixture(scope="module")
def facts(tmp_path_factory, bwrap_path):
    """titanic staged once for the module (its own cache), a canary in the driver's environment."""
    tmp = tmp_path_factory.mktemp("hostile-bwrap")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLERAY_CACHE_DIR", str(tmp / "cache"))
        mp.setenv(ha.CANARY_VAR, "canary-" + uuid.uuid4().hex)
        yield ha.make_facts(stage("titanic")[0], tmp)


@pytest.mark.parametrize("attack", ha.ATTACKS, ids=list(ha.ids(ha.ATTACKS)))
def test_attack_is_contained(attack, facts, tmp_path, monkeypatch):
    outcome = ha.run_attack(attack, BACKEND, facts, tmp_path, monkeypatch)
    attack.check(outcome)


def test_egress_trial_reaches_no_host_port(facts, tmp_path, monkeypatch):
    """Host services on 127.0.0.1 and on 0.0.0.0 (so on every host address, docker0's too) stay out of reach."""
    with ha.HostServers() as servers:
        out = ha.run_attack(ha.EGRESS_PROBE, BACKEND, facts, tmp_path, monkeypatch,
                         args=[str(servers.lo_port), str(servers.any_port), ha.host_ip()])
    out.need("network")
    ha.EGRESS_PROBE.check(out)
    probes = out.found("probes")
    assert probes and not [k for k, v in probes.items() if v.startswith("CONNECTED")], probes
    assert out.found("gateway") == "10.0.2.2"  # slirp4netns's, not the host's


def test_two_egress_trials_bind_the_same_port_at_once(facts, tmp_path, monkeypatch):
    outcomes = {}

    def one(token: str) -> None:
        outcomes[token] = ha.run_attack(ha.SAME_PORT_ATTACK, BACKEND, facts, tmp_path / token, monkeypatch,
                                        args=[token], name=f"same-port-{token}", agents=tmp_path / "agents")

    threads = [threading.Thread(target=one, args=(t,)) for t in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(outcomes) == {"alpha", "beta"}  # neither trial raised
    for token, out in outcomes.items():
        out.need("network")
        assert out.found("bound") == token and out.found("read") == token, out.log[-1500:]
        ha.SAME_PORT_ATTACK.check(out)
