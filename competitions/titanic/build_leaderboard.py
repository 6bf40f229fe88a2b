"""Regenerates leaderboard.csv: 300 automated reference pipelines scored on the private answers.

    python competitions/titanic/build_leaderboard.py [--check] [--limit N] [OUT.csv]

Model families (logistic regression, k-NN, trees, forests, boosting, naive Bayes, linear SVM),
hyperparameters, feature subsets and shares of the training rows are sampled by
leaderboard_tools.sample_configs from one seeded generator.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import leaderboard_tools as lt  # first: it sets the thread variables before numpy loads

import pandas as pd

from mleray.grading.metrics import score

HERE = Path(__file__).resolve().parent
N_PIPELINES, SEED = 300, 20260101
FEATURES = ["Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked"]
CORE = ["Sex", "Pclass", "Fare"]


def build():
    train, test, answers = lt.read_prepared(HERE, dtype={"Ticket": str})
    configs = lt.sample_configs(N_PIPELINES, SEED, "classification", FEATURES, CORE)

    def score_fn(pred):
        sub = pd.DataFrame({"PassengerId": test["PassengerId"], "Survived": pred.astype(int)})
        return score("accuracy", sub, answers, "PassengerId", ["Survived"])

    return lt.run_configs(configs, "classification", train[FEATURES], train["Survived"], test[FEATURES], score_fn)


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=False, doc=__doc__)
