"""Regenerates leaderboard.csv: 300 sampled and 311 tuned reference pipelines scored on the private answers.

    python competitions/house-prices/build_leaderboard.py [--check] [--limit N] [OUT.csv]

Model families (ridge, lasso, least squares, k-NN, trees, forests, boosting), with and without a log
transform of the price, hyperparameters, feature subsets and shares of the training rows are sampled
by leaderboard_tools.sample_configs from one seeded generator. The tuned field is what careful work
reaches: regularised linear models on one-hot, log-skewed, scaled features and gradient boosting on
ordinal codes, each on log(price), and their weighted blends (what wins this competition's
kernels); and a zoo on engineered features (total area, baths, ages) with every mean of three or four of
its models (stacked regressions, what tops the field). `--limit N` checks the first N of each field.
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


def design(train: pd.DataFrame, test: pd.DataFrame, features, linear: bool) -> tuple:
    """Linear models: median-imputed numerics with missing indicators, log1p of the skewed ones,
    scaled, and one-hot categoricals; boosting: raw numerics and ordinal codes."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    kinds = lt.column_kinds(train[features], max_categories=50)
    skewed = lt.skewed_columns(train[features], kinds) if linear else []
    numeric = [c for c in features if kinds[c] == "numeric" and c not in skewed]
    categorical = [c for c in features if kinds[c] != "numeric"]
    x_tr, x_te = train[features].copy(), test[features].copy()
    for frame in (x_tr, x_te):
        frame[categorical] = frame[categorical].astype(object).where(frame[categorical].notna(), "missing").astype(str)
    parts = [("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=linear),
                                   *([StandardScaler()] if linear else [])), numeric)]
    if skewed:
        parts.append(("skew", make_pipeline(SimpleImputer(strategy="median"), FunctionTransformer(np.log1p),
                                            StandardScaler()), skewed))
    parts.append(("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=2, sparse_output=False) if linear
                  else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), categorical))
    prep = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    return prep.fit_transform(x_tr), prep.transform(x_te)


def tuned(train, test, features, score_fn):
    """Each linear and boosting model alone, then every linear model blended with every boosting
    model (and with the boosters' mean) at seven weights, all on log(price)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Lasso, Ridge

    y = np.log(train["SalePrice"].to_numpy(float))
    linear = [(f"ridge(alpha={a})", lambda a=a: Ridge(alpha=a)) for a in (10.0, 30.0, 100.0)] + [
        (f"lasso(alpha={a})", lambda a=a: Lasso(alpha=a, max_iter=20000)) for a in (0.0003, 0.0005, 0.001)]
    boosters = [(f"hist_gb({lt.params_text(p)})", lambda p=p: HistGradientBoostingRegressor(
        random_state=SEED % 1000, early_stopping=False, **p)) for p in (
        {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31, "l2_regularization": 0.0},
        {"learning_rate": 0.05, "max_iter": 500, "max_leaf_nodes": 15, "l2_regularization": 1.0},
        {"learning_rate": 0.05, "max_iter": 800, "max_leaf_nodes": 7, "l2_regularization": 1.0})]
    preds, i = {}, 0
    for group, models in ((True, linear), (False, boosters)):
        x_tr, x_te = design(train, test, features, group)
        for name, make in models:
            preds[name] = make().fit(x_tr, y).predict(x_te)
            i += 1
            yield lt.Entry(f"tuned-{i:03d} {name} log-target", score_fn(np.exp(preds[name])))
    mixes = [(name, preds[name]) for name, _ in boosters]
    mixes.append(("mean(" + ",".join(name for name, _ in boosters) + ")",
                  np.mean([preds[name] for name, _ in boosters], axis=0)))
    for lin, _ in linear:
        for boost, boost_pred in mixes:
            for w in (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
                i += 1
                yield lt.Entry(f"tuned-{i:03d} blend({w}*{lin}+{round(1 - w, 1)}*{boost}) log-target",
                               score_fn(np.exp(w * preds[lin] + (1 - w) * boost_pred)))


def engineered(frame: pd.DataFrame) -> pd.DataFrame:
    """The features careful kernels add: total floor area, baths, ages, porch area, quality x area; the
    calendar and dwelling-class codes as categories."""
    frame = frame.copy()
    frame["TotalSF"] = frame["TotalBsmtSF"].fillna(0) + frame["1stFlrSF"] + frame["2ndFlrSF"]
    frame["TotalBath"] = (frame["FullBath"] + 0.5 * frame["HalfBath"] + frame["BsmtFullBath"].fillna(0)
                          + 0.5 * frame["BsmtHalfBath"].fillna(0))
    frame["Age"] = frame["YrSold"] - frame["YearBuilt"]
    frame["RemodAge"] = frame["YrSold"] - frame["YearRemodAdd"]
    frame["TotalPorch"] = frame[["OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF"]].sum(axis=1)
    frame["QualSF"] = frame["OverallQual"] * frame["GrLivArea"]
    for column in ("MSSubClass", "MoSold", "YrSold"):
        frame[column] = frame[column].astype(str)
    return frame


def ensembles(train, test, features, score_fn):
    """A model zoo on engineered features (robust-scaled linear and kernel models on one-hot codes,
    boosting on ordinal codes), each alone and then every equal-weight mean of three or four of them,
    all on log(price): the stacked-regression entries that top this competition's field."""
    import itertools

    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import Lasso, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, RobustScaler
    from sklearn.svm import SVR

    y = np.log(train["SalePrice"].to_numpy(float))
    x_tr, x_te = engineered(train[features]), engineered(test[features])
    numeric = [c for c in x_tr.columns if x_tr[c].dtype.kind in "if"]
    categorical = [c for c in x_tr.columns if c not in numeric]
    for frame in (x_tr, x_te):
        frame[categorical] = frame[categorical].astype(object).where(frame[categorical].notna(), "missing").astype(str)
    skewed = [c for c in numeric if abs(x_tr[c].skew()) > 0.75]
    plain = [c for c in numeric if c not in skewed]
    linear = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), RobustScaler()), plain),
        ("skew", make_pipeline(SimpleImputer(strategy="median"), FunctionTransformer(np.log1p), RobustScaler()),
         skewed),
        ("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=2, sparse_output=False), categorical)],
        sparse_threshold=0.0)
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    trees = ColumnTransformer([("num", SimpleImputer(strategy="median"), numeric), ("cat", ordinal, categorical)])
    designs = {True: (linear.fit_transform(x_tr), linear.transform(x_te)),
               False: (trees.fit_transform(x_tr), trees.transform(x_te))}
    zoo = [("ridge(alpha=10)", True, lambda: Ridge(alpha=10.0)),
           ("ridge(alpha=20)", True, lambda: Ridge(alpha=20.0)),
           ("lasso(alpha=0.0008)", True, lambda: Lasso(alpha=0.0008, max_iter=50000)),
           ("svr(C=20,epsilon=0.008,gamma=0.0003)", True, lambda: SVR(C=20, epsilon=0.008, gamma=0.0003)),
           ("kernel_ridge(alpha=0.6,polynomial,degree=2,coef0=2.5)", True,
            lambda: KernelRidge(alpha=0.6, kernel="polynomial", degree=2, coef0=2.5)),
           ("gb(n_estimators=1500,learning_rate=0.03,max_depth=3,subsample=0.8,max_features=0.3)", False,
            lambda: GradientBoostingRegressor(n_estimators=1500, learning_rate=0.03, max_depth=3, subsample=0.8,
                                              max_features=0.3, random_state=1)),
           ("hist_gb(learning_rate=0.02,max_iter=3000,max_leaf_nodes=7,l2_regularization=3.0,max_features=0.5)", False,
            lambda: HistGradientBoostingRegressor(learning_rate=0.02, max_iter=3000, max_leaf_nodes=7,
                                                  l2_regularization=3.0, min_samples_leaf=8, max_features=0.5,
                                                  random_state=0)),
           ("hist_gb(learning_rate=0.03,max_iter=1500,max_leaf_nodes=15,l2_regularization=1.0)", False,
            lambda: HistGradientBoostingRegressor(learning_rate=0.03, max_iter=1500, max_leaf_nodes=15,
                                                  l2_regularization=1.0, min_samples_leaf=10, random_state=0))]
    preds, i = {}, 0
    for name, is_linear, make in zoo:
        x_fit, x_pred = designs[is_linear]
        preds[name] = make().fit(x_fit, y).predict(x_pred)
        i += 1
        yield lt.Entry(f"tuned-e{i:03d} {name} engineered log-target", score_fn(np.exp(preds[name])))
    for size in (3, 4):
        for names in itertools.combinations([name for name, _, _ in zoo], size):
            i += 1
            yield lt.Entry(f"tuned-e{i:03d} mean({','.join(names)}) engineered log-target",
                           score_fn(np.exp(np.mean([preds[n] for n in names], axis=0))))


def build():
    train, test, answers = lt.read_prepared(HERE)
    features = [c for c in test.columns if c != "Id"]
    configs = lt.sample_configs(N_PIPELINES, SEED, "regression", features, CORE, log_target_p=0.8)

    def score_fn(pred):
        sub = pd.DataFrame({"Id": test["Id"], "SalePrice": np.clip(pred, 1000, None)})
        return score("rmse_log", sub, answers, "Id", ["SalePrice"])

    return lt.Blocks([lt.run_configs(configs, "regression", train[features], train["SalePrice"].astype(float),
                                     test[features], score_fn),
                      tuned(train, test, features, score_fn),
                      ensembles(train, test, features, score_fn)])


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=True, doc=__doc__)
