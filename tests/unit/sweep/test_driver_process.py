"""What the driver sets in its own process before Ray starts: Ray's metric export off unless asked for
(by `ray.metrics=true`, or by the user's own RAY_enable_metrics_collection)."""

import os

from mleray.sweep.driver import prepare_driver_process

VAR = "RAY_enable_metrics_collection"


def test_metrics_are_off_by_default(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    prepare_driver_process(metrics=False)
    assert os.environ[VAR] == "0"


def test_ray_metrics_true_leaves_them_on(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    prepare_driver_process(metrics=True)
    assert VAR not in os.environ


def test_the_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv(VAR, "1")
    prepare_driver_process(metrics=False)
    assert os.environ[VAR] == "1"
