"""Regenerates leaderboard.csv: 300 automated reference pipelines scored on the private answers.

    python competitions/bike-sharing-demand/build_leaderboard.py [--check] [--limit N]

Calendar features are derived from the timestamp (hour, weekday, month, year); model families
(ridge, lasso, least squares, k-NN, trees, forests, boosting), with and without a log transform of
the count,
hyperparameters, feature subsets and shares of the training rows are sampled from one seeded
generator; everything runs on one thread, so the output is the same byte for byte. --check
compares with the committed file instead of writing it; --limit N runs only the first N pipelines
(and with --check compares their scores with the committed ones).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED"):
    os.environ.setdefault(_var, "1" if _var != "PYTHONHASHSEED" else "0")
# OpenBLAS picks its kernels by CPU, and an AVX-512 kernel moves last bits (and so k-NN ties) away from
# the committed board: every x86-64 build uses the AVX2 (Haswell) kernels it was made with.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from mleray.competitions import reference  # noqa: E402
from mleray.grading.metrics import score  # noqa: E402

N_PIPELINES, SEED = 300, 20260101
CORE = ["hour"]


def calendar(frame):
    """The timestamp split into calendar features (the raw features are kept)."""
    when = pd.to_datetime(frame["datetime"])
    out = frame.drop(columns=["datetime"]).copy()
    out["hour"], out["weekday"], out["month"], out["year"] = when.dt.hour, when.dt.dayofweek, when.dt.month, when.dt.year
    return out


def build(limit=None):
    train, test, answers = reference.read_prepared(HERE)
    x_train, x_test = calendar(train[test.columns]), calendar(test)
    features = list(x_test.columns)
    configs = reference.sample_configs(N_PIPELINES, SEED, "regression", features, CORE, log_target_p=0.8)[:limit]

    def score_fn(pred):
        sub = pd.DataFrame({"datetime": test["datetime"], "count": np.clip(pred, 0, None)})
        return score("rmsle", sub, answers, "datetime", ["count"])

    return reference.run_configs(configs, "regression", x_train, train["count"].astype(float), x_test, score_fn)


if __name__ == "__main__":
    reference.main(build, HERE, lower_is_better=True, description=__doc__.splitlines()[0])
