"""Regenerates leaderboard.csv: 300 sampled and 177 tuned reference pipelines scored on the private answers.

    python competitions/bike-sharing-demand/build_leaderboard.py [--check] [--limit N] [OUT.csv]

Calendar features are derived from the timestamp (hour, weekday, month, year); model families
(ridge, lasso, least squares, k-NN, trees, forests, boosting), with and without a log transform of
the count, hyperparameters, feature subsets and shares of the training rows are sampled by
leaderboard_tools.sample_configs from one seeded generator. The tuned field is what careful work
reaches: a grid of histogram gradient boosting on log(1 + y), for the count and for casual and
registered riders modelled apart, their means and means of nearby grid points. `--limit N`
checks the first N of each field.
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
    out["hour"], out["weekday"], out["month"], out["year"] = when.dt.hour, when.dt.day_of_week, when.dt.month, when.dt.year
    return out


def tuned_models():
    """(name, factory) of the tuned field's grid, in a fixed order."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    for p in lt.grid(learning_rate=[0.05, 0.1], max_iter=[100, 200, 400], max_leaf_nodes=[15, 31, 63],
                     l2_regularization=[0.0, 1.0]):
        yield f"hist_gb({lt.params_text(p)})", lambda p=p: HistGradientBoostingRegressor(
            random_state=SEED, early_stopping=False, **p)


def tuned(train, test, score_fn):
    """Each grid model on log(1 + count), and on casual and registered riders apart (summed), then
    the mean of the two, and the mean with each of the two grid models before it: all on the calendar features."""
    x_tr, x_te = calendar(train[test.columns]), calendar(test)
    i, previous = 0, []
    for name, make in tuned_models():
        total = np.clip(np.expm1(make().fit(x_tr, np.log1p(train["count"])).predict(x_te)), 0, None)
        apart = np.clip(sum(np.expm1(make().fit(x_tr, np.log1p(train[t])).predict(x_te))
                            for t in ("casual", "registered")), 0, None)
        for label, pred in (("count", total), ("casual+registered", apart), ("mean(count,casual+registered)",
                                                                            (total + apart) / 2)):
            i += 1
            yield lt.Entry(f"tuned-{i:03d} {name} target={label} log-target", score_fn(pred))
        for other, other_pred in previous[-2:]:
            i += 1
            yield lt.Entry(f"tuned-{i:03d} mean({other},{name}) target=casual+registered log-target",
                           score_fn((other_pred + apart) / 2))
        previous.append((name, apart))


def build():
    train, test, answers = lt.read_prepared(HERE)
    x_train, x_test = calendar(train[test.columns]), calendar(test)
    features = list(x_test.columns)
    configs = lt.sample_configs(N_PIPELINES, SEED, "regression", features, CORE, log_target_p=0.8)

    def score_fn(pred):
        sub = pd.DataFrame({"datetime": test["datetime"], "count": np.clip(pred, 0, None)})
        return score("rmsle", sub, answers, "datetime", ["count"])

    return lt.Blocks([lt.run_configs(configs, "regression", x_train, train["count"].astype(float), x_test, score_fn),
                      tuned(train, test, score_fn)])


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=True, doc=__doc__)
