"""Resuming a sweep whose config changed: refused, naming the keys, before anything is scheduled, unless
asked to go on; keys that change neither the trials nor their grading never count. No Ray: the
preflight and joining Ray are stubbed (joining raises `Reached`, proof that run() went past its checks)."""

import pytest

from mleray.config import ConfigError, load_sweep, to_yaml
from mleray.storage.backends import ArrowSweepStorage, SweepStorage, open_sweep_storage
from mleray.storage.store import SweepStore, config_changes
from mleray.sweep import driver as sweep

BASE = ["name=s", "competitions=[titanic]", "agents=[dummy]", "sandbox=bwrap"]
FIRST = ["seeds=2", "tiers.cpu.time_limit=60"]


class Reached(Exception):
    pass


def _parts(root) -> SweepStorage:
    """An object store's way of storing (append parts), on a local folder."""
    import pyarrow.fs as pafs

    return ArrowSweepStorage(f"file://{root}", "s", fs=pafs.LocalFileSystem(), base=str(root), append=False)


STORAGES = {"path": lambda root: open_sweep_storage(root, "s"), "object-store": _parts}


@pytest.fixture(autouse=True)
def no_machinery(monkeypatch):
    monkeypatch.setattr(sweep, "preflight", lambda cfg: (["titanic"], "bwrap", "stubbed"))

    def connect(cfg):
        raise Reached

    monkeypatch.setattr(sweep, "connect", connect)


def _cfg(root, *overrides):
    return load_sweep(overrides=[*BASE, f"storage={root}", *overrides])


def _started(storage: SweepStorage, recorded: bool = True) -> None:
    """The sweep as its first run left it: config.yaml of FIRST, and one trial recorded."""
    store = SweepStore(storage)
    store.write_config(to_yaml(_cfg(storage.uri, *FIRST)))
    if recorded:
        store.append({"trial_id": "dummy__titanic__cpu__s0", "status": "graded"})


@pytest.mark.parametrize("kind", sorted(STORAGES))
def test_changed_config_is_refused_before_anything_runs(tmp_path, kind):
    storage = STORAGES[kind](tmp_path)
    _started(storage)
    before = storage.read_file("config.yaml")
    with pytest.raises(ConfigError) as err:
        sweep.run(_cfg(tmp_path, "seeds=3", "tiers.cpu.time_limit=600"), callbacks=[], sweep_dir=storage)
    assert str(err.value) == (f"{tmp_path}/s was started with a different config: seeds 2 -> 3, "
                              "tiers.cpu.time_limit 60 -> 600; rerun with the same config, pick a new name=, "
                              "or pass --allow-config-change to go on")
    assert storage.read_file("config.yaml") == before


def test_command_exits_2_with_one_line(tmp_path, capsys):
    _started(open_sweep_storage(tmp_path, "s"))
    code = sweep.main([*BASE, f"storage={tmp_path}", "seeds=3", *FIRST[1:]])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"mleray: {tmp_path}/s was started with a different config: seeds 2 -> 3; rerun "
                                 "with the same config, pick a new name=, or pass --allow-config-change to go on\n")


def test_allow_config_change_goes_on(tmp_path, capsys):
    storage = open_sweep_storage(tmp_path, "s")
    _started(storage)
    with pytest.raises(Reached):
        sweep.main([*BASE, f"storage={tmp_path}", "seeds=3", *FIRST[1:], "--allow-config-change"])
    assert "mleray: warning: going on with a changed config: seeds 2 -> 3" in capsys.readouterr().out
    assert "seeds: 3" in storage.read_file("config.yaml").decode()


def test_free_keys_and_unrecorded_sweeps_go_on(tmp_path):
    storage = open_sweep_storage(tmp_path, "s")
    _started(storage)
    with pytest.raises(Reached):  # same trials, same grading: ray.*, max_in_flight, report, retries differ
        sweep.run(_cfg(tmp_path, *FIRST, "ray.address=auto", "ray.num_cpus=3", "max_in_flight=2", "report=false",
                       "retries=4"), callbacks=[])
    fresh = open_sweep_storage(tmp_path, "nothing-recorded")
    _started(fresh, recorded=False)
    with pytest.raises(Reached):
        sweep.run(_cfg(tmp_path, "seeds=5"), callbacks=[], sweep_dir=fresh)


def test_config_changes_names_dotted_keys():
    old = to_yaml(_cfg("runs", *FIRST))
    new = to_yaml(_cfg("elsewhere", "seeds=2", "tiers.cpu.time_limit=60.5", "tiers.gpu.gpus=1",
                       "agents=[dummy,baseline]"))
    assert config_changes(old, new) == [
        "agents ['dummy'] -> ['dummy', 'baseline']",
        "tiers.cpu.time_limit 60 -> 60.5",
        "tiers.gpu (unset) -> {'cpus': 1.0, 'memory_gb': 2.0, 'gpus': 1.0, 'time_limit': 600.0, 'pids': 512, "
        "'shm_gb': 1.0, 'disk_gb': 50.0}",
    ]
    assert config_changes(old, old) == []
