"""The hostile-agent catalogue (tests/hostile_agents.py) against Docker, through the real runner: each
attack is a trial of its own agent (image mleray-base:local) on titanic, and its record says what
happened. What a machine cannot enforce is a skip naming it, from the record's own `isolation` map. The container-level
limits alone (hardening, reaping, the inner time limit) are in test_docker_sandbox.py and test_docker_lifetime.py."""

from __future__ import annotations

import threading
import uuid

import hostile_agents as ha
import pytest

from mleray.trial.staging import stage

BACKEND = "docker"


@pytest.fixture(scope="module")
def facts(tmp_path_factory, base_image):
    """titanic staged once for the module (its own cache), a canary in the driver's environment."""
    tmp = tmp_path_factory.mktemp("hostile-docker")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLERAY_CACHE_DIR", str(tmp / "cache"))
        mp.setenv(ha.CANARY_VAR, "canary-" + uuid.uuid4().hex)
        yield ha.make_facts(stage("titanic")[0], tmp)


@pytest.mark.parametrize("attack", ha.ATTACKS, ids=list(ha.ids(ha.ATTACKS)))
def test_attack_is_contained(attack, facts, tmp_path, monkeypatch):
    outcome = ha.run_attack(attack, BACKEND, facts, tmp_path, monkeypatch)
    attack.check(outcome)


@pytest.fixture(scope="module")
def egress_probe(facts, tmp_path_factory):
    """One egress trial probing the host's ports: a server on 127.0.0.1 and one on 0.0.0.0."""
    where = tmp_path_factory.mktemp("egress")
    with pytest.MonkeyPatch.context() as mp, ha.HostServers() as servers:
        out = ha.run_attack(ha.EGRESS_PROBE, BACKEND, facts, where, mp,
                            args=[str(servers.lo_port), str(servers.any_port), ha.host_ip()])
    ha.EGRESS_PROBE.check(out)
    return out


def test_egress_trial_cannot_reach_host_loopback(egress_probe):
    probes = egress_probe.found("probes")
    assert probes["127.0.0.1:loopback-only"] != "CONNECTED" and probes["127.0.0.1:any"] != "CONNECTED", probes
    assert not probes["gateway:loopback-only"].startswith("CONNECTED"), probes  # 127.0.0.1 is the host's only
    print("measured:", probes, "gateway", egress_probe.found("gateway"))


def test_egress_trial_cannot_reach_host_services_on_the_bridge(egress_probe):
    """The egress network (mleray-egress): no host service is reachable through the gateway, the host's
    own address or docker0 (on the default bridge all three answered)."""
    probes = egress_probe.found("probes")
    print("measured:", probes, "gateway", egress_probe.found("gateway"))
    reached = [k for k in ("gateway:any", "host-ip:any", "172.17.0.1:any") if probes[k].startswith("CONNECTED")]
    assert reached == [], probes


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
        assert out.found("bound") == token and out.found("read") == token, out.log[-1500:]
        ha.SAME_PORT_ATTACK.check(out)
