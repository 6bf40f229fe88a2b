"""Regenerates leaderboard.csv: 300 automated reference pipelines scored on the private answers.

    python competitions/bike-sharing-demand/build_leaderboard.py [--check] [--limit N] [OUT.csv]

Calendar features are derived from the timestamp (hour, weekday, month, year); model families
(ridge, lasso, least squares, k-NN, trees, forests, boosting), with and without a log transform of
the count, hyperparameters, feature subsets and shares of the training rows are sampled by
leaderboard_tools.sample_configs from one seeded generator.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import leaderboard_tools as lt  # first: it sets the thread variables before numpy loads

import numpy as np
import pandas as pd

from mleray.grading.metrics import score

HERE = Path(__file__).resolve().parent
N_PIPELINES, SEED = 300, 20260101
CORE = ["hour"]


def calendar(frame):
    """The timestamp split into calendar features (the raw features are kept)."""
    when = pd.to_datetime(frame["datetime"])
    out = frame.drop(columns=["datetime"]).copy()
    out["hour"], out["weekday"], out["month"], out["year"] = when.dt.hour, when.dt.dayofweek, when.dt.month, when.dt.year
    return out


def build():
    train, test, answers = lt.read_prepared(HERE)
    x_train, x_test = calendar(train[test.columns]), calendar(test)
    features = list(x_test.columns)
    configs = lt.sample_configs(N_PIPELINES, SEED, "regression", features, CORE, log_target_p=0.8)

    def score_fn(pred):
        sub = pd.DataFrame({"datetime": test["datetime"], "count": np.clip(pred, 0, None)})
        return score("rmsle", sub, answers, "datetime", ["count"])

    return lt.run_configs(configs, "regression", x_train, train["count"].astype(float), x_test, score_fn)


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=True, doc=__doc__)
