"""Regenerates leaderboard.csv: 300 automated reference pipelines scored on the private answers.

    python competitions/house-prices/build_leaderboard.py [--check] [--limit N] [OUT.csv]

Model families (ridge, lasso, least squares, k-NN, trees, forests, boosting), with and without a log
transform of the price, hyperparameters, feature subsets and shares of the training rows are sampled
by leaderboard_tools.sample_configs from one seeded generator.
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
CORE = ["OverallQual", "GrLivArea", "Neighborhood", "TotalBsmtSF", "GarageCars"]


def build():
    train, test, answers = lt.read_prepared(HERE)
    features = [c for c in test.columns if c != "Id"]
    configs = lt.sample_configs(N_PIPELINES, SEED, "regression", features, CORE, log_target_p=0.8)

    def score_fn(pred):
        sub = pd.DataFrame({"Id": test["Id"], "SalePrice": np.clip(pred, 1000, None)})
        return score("rmse_log", sub, answers, "Id", ["SalePrice"])

    return lt.run_configs(configs, "regression", train[features], train["SalePrice"].astype(float),
                          test[features], score_fn)


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=True, doc=__doc__)
