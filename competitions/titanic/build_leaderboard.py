"""Regenerates leaderboard.csv: 300 sampled and 254 tuned reference pipelines scored on the private answers.

    python competitions/titanic/build_leaderboard.py [--check] [--limit N] [OUT.csv]

The sampled field: model families (logistic regression, k-NN, trees, forests, boosting, naive
Bayes, linear SVM), hyperparameters, feature subsets and shares of the training rows drawn by
leaderboard_tools.sample_configs from one seeded generator. The tuned field is what careful work
reaches: the usual engineered features (title from the name, family size, ticket group size, deck,
fare per person, age imputed by title) under grids of gradient boosting, forests, kernel SVMs and
logistic regression, and majority votes of three. `--limit N` checks the first N of each field.
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
FEATURES = ["Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked"]
CORE = ["Sex", "Pclass", "Fare"]


TITLES = {"Mr": "Mr", "Mrs": "Mrs", "Mme": "Mrs", "Miss": "Miss", "Mlle": "Miss", "Ms": "Miss", "Master": "Master"}


def engineered(train: pd.DataFrame, test: pd.DataFrame, with_groups: bool) -> tuple:
    """Numeric design matrices for train and test from Kaggle's classic feature work."""
    both = pd.concat([train[FEATURES], test[FEATURES]], ignore_index=True)
    title = both["Name"].str.extract(r",\s*([^.]+)\.")[0].map(TITLES).fillna("Rare")
    family = both["SibSp"] + both["Parch"] + 1
    ticket_size = both.groupby("Ticket")["Ticket"].transform("size")
    fare = both["Fare"].fillna(both["Fare"].median())
    age = both["Age"].fillna(both.assign(t=title).groupby("t")["Age"].transform("median"))
    out = pd.DataFrame({"female": (both["Sex"] == "female").astype(float), "pclass": both["Pclass"],
                        "age": age, "child": (age < 14).astype(float), "family": family,
                        "alone": (family == 1).astype(float), "fare_pp": np.log1p(fare / ticket_size),
                        "has_cabin": both["Cabin"].notna().astype(float)})
    out = out.join(pd.get_dummies(title, prefix="title", dtype=float))
    out = out.join(pd.get_dummies(both["Embarked"].fillna("S"), prefix="emb", dtype=float))
    if with_groups:
        out["ticket_size"] = ticket_size
        out = out.join(pd.get_dummies(both["Cabin"].fillna("U").str[0], prefix="deck", dtype=float))
    return out.iloc[:len(train)].reset_index(drop=True), out.iloc[len(train):].reset_index(drop=True)


def tuned_models():
    """(name, factory) of the tuned field's grids, in a fixed order."""
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    for p in lt.grid(learning_rate=[0.01, 0.03, 0.1], n_estimators=[100, 300], max_depth=[2, 3, 5],
                     subsample=[0.8]):
        yield f"gb({lt.params_text(p)})", lambda p=p: GradientBoostingClassifier(random_state=SEED, **p)
    for p in lt.grid(max_depth=[4, 6, 8], max_features=["sqrt", 0.5], min_samples_leaf=[1, 3]):
        yield f"forest({lt.params_text(p)})", lambda p=p: RandomForestClassifier(
            n_estimators=100, random_state=SEED, n_jobs=1, **p)
    for p in lt.grid(learning_rate=[0.03, 0.1], max_iter=[100], max_depth=[3, None], l2_regularization=[0.0, 1.0]):
        yield f"hist_gb({lt.params_text(p)})", lambda p=p: HistGradientBoostingClassifier(
            random_state=SEED, early_stopping=False, **p)
    for p in lt.grid(C=[0.3, 1.0, 3.0, 10.0], gamma=["scale", 0.1]):
        yield f"svc({lt.params_text(p)})", lambda p=p: make_pipeline(StandardScaler(), SVC(**p))
    for p in lt.grid(C=[0.1, 0.3, 1.0, 3.0]):
        yield f"logreg({lt.params_text(p)})", lambda p=p: make_pipeline(StandardScaler(), LogisticRegression(
            max_iter=2000, **p))


GROUP_KEYS = ("surname", "ticket", "surname+ticket", "surname+fare")


def family_groups(both: pd.DataFrame, key: str) -> pd.Series:
    """Passengers travelling together, by one of GROUP_KEYS."""
    surname = both["Name"].str.split(",").str[0]
    if key == "surname":
        return surname
    if key == "ticket":
        return both["Ticket"]
    if key == "surname+ticket":
        return surname + "-" + both["Ticket"].str[:-1]
    return surname + "-" + both["Pclass"].astype(str) + "-" + both["Ticket"].str[:-1] + "-" + \
        both["Fare"].round(1).astype(str)


def woman_child_group(train: pd.DataFrame, test: pd.DataFrame, key: str, fallback: np.ndarray) -> np.ndarray:
    """The woman-child-group rule (a well-known Kaggle kernel's idea): in a group of women and boys
    (title Master) whose known members all survived, boys survive; where they all died, women
    die; everyone else gets the fallback prediction."""
    both = pd.concat([train[FEATURES + ["Survived"]], test[FEATURES]], ignore_index=True)
    boy = both["Name"].str.contains(r",\s*Master\.")
    women_children = (both["Sex"] == "female") | boy
    group = family_groups(both, key)
    size = group.groupby(group).transform("size")
    known = both[women_children & (size >= 2) & both["Survived"].notna()]
    rate = known.groupby(group[known.index])["Survived"].mean()
    rest = both.iloc[len(train):].reset_index(drop=True)
    r = group.iloc[len(train):].reset_index(drop=True).map(rate)
    pred = np.asarray(fallback).astype(int).copy()
    pred[(boy.iloc[len(train):].reset_index(drop=True) & (r == 1)).to_numpy()] = 1
    pred[((rest["Sex"] == "female") & (r == 0)).to_numpy()] = 0
    pred[((rest["Sex"] == "female") & (r == 1)).to_numpy()] = 1
    return pred


def tuned(train, test, score_fn):
    """The tuned field: every grid model on the engineered features, then each model as the
    fallback of the woman-child-group rule under each grouping key (and the rule with the gender
    model as fallback)."""
    y = train["Survived"].to_numpy()
    x_tr, x_te = engineered(train, test, True)
    gender = (test["Sex"] == "female").astype(int).to_numpy()
    i = 0
    for key in GROUP_KEYS:
        i += 1
        yield lt.Entry(f"tuned-{i:03d} woman_child_group(key={key})+gender", score_fn(
            woman_child_group(train, test, key, gender)))
    for name, make in tuned_models():
        pred = make().fit(x_tr, y).predict(x_te)
        i += 1
        yield lt.Entry(f"tuned-{i:03d} {name} features=engineered", score_fn(pred))
        for key in GROUP_KEYS:
            i += 1
            yield lt.Entry(f"tuned-{i:03d} woman_child_group(key={key})+{name} features=engineered",
                           score_fn(woman_child_group(train, test, key, pred)))


def build():
    train, test, answers = lt.read_prepared(HERE, dtype={"Ticket": str})
    configs = lt.sample_configs(N_PIPELINES, SEED, "classification", FEATURES, CORE)

    def score_fn(pred):
        sub = pd.DataFrame({"PassengerId": test["PassengerId"], "Survived": np.asarray(pred).astype(int)})
        return score("accuracy", sub, answers, "PassengerId", ["Survived"])

    return lt.Blocks([
        lt.run_configs(configs, "classification", train[FEATURES], train["Survived"], test[FEATURES], score_fn),
        tuned(train, test, score_fn)])


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=False, doc=__doc__)
