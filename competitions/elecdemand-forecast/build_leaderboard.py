"""Regenerates leaderboard.csv for elecdemand-forecast, byte for byte.

The field is automated reference pipelines, not people: calendar/weather feature sets crossed with
scikit-learn regressors (profiles, linear, k-NN, trees, forests, gradient boosting), their
hyperparameters and training windows (the last 4, 13 or 26 weeks before the test period, or all
of it), each trained on public/train.csv and scored (RMSE) on the private answers.

    python competitions/elecdemand-forecast/build_leaderboard.py [--check] [--limit N] [OUT.csv]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import leaderboard_tools as lt  # first: it sets the thread variables before numpy loads

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

HERE = Path(__file__).resolve().parent
SEED = 5
WINDOWS_WEEKS = [4, 13, 26, None]  # None: all training data
FEATURE_SETS = {
    "slot": ["slot"],
    "slot+workday": ["slot", "work_day"],
    "slot+workday+temp": ["slot", "work_day", "temperature"],
    "slot+dow+temp": ["slot", "dow", "temperature"],
    "calendar+weather": ["slot", "dow", "work_day", "temperature", "cooling", "heating", "day_of_year"],
    "calendar+weather_history": ["slot", "dow", "work_day", "temperature", "cooling", "heating", "temp_mean_6h",
                                 "temp_mean_24h", "day_max", "day_min", "prev_day_max", "temp_lag_1h"],
}


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """Calendar and weather features of consecutive half-hours (train and test together: the
    temperature of the test period is public, so its rolling summaries are too)."""
    t = pd.to_datetime(frame["datetime"])
    temp = frame["temperature"].reset_index(drop=True)
    day = t.dt.date.reset_index(drop=True)
    day_max = temp.groupby(day).transform("max")
    return pd.DataFrame({
        "temp_mean_6h": temp.rolling(12, min_periods=1).mean().to_numpy(),
        "temp_mean_24h": temp.rolling(48, min_periods=1).mean().to_numpy(),
        "day_max": day_max.to_numpy(),
        "day_min": temp.groupby(day).transform("min").to_numpy(),
        "prev_day_max": day_max.shift(48).bfill().to_numpy(),
        "temp_lag_1h": temp.shift(2).bfill().to_numpy(),
        "slot": (t.dt.hour * 2 + t.dt.minute // 30).to_numpy(),
        "dow": t.dt.day_of_week.to_numpy(),
        "day_of_year": t.dt.day_of_year.to_numpy(),
        "work_day": frame["work_day"].to_numpy(),
        "temperature": frame["temperature"].to_numpy(),
        "cooling": np.maximum(frame["temperature"].to_numpy() - 20.0, 0.0),
        "heating": np.maximum(15.0 - frame["temperature"].to_numpy(), 0.0),
    })


def linear_design(f: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One-hot half-hour slot and weekday, numeric columns as they are."""
    parts = []
    for c in cols:
        if c in ("slot", "dow"):
            n = 48 if c == "slot" else 7
            parts.append(np.eye(n)[f[c].to_numpy()])
        else:
            parts.append(f[[c]].to_numpy(float))
    if "slot" in cols and "temperature" in cols:  # temperature response varies by time of day
        parts.append(np.eye(48)[f["slot"].to_numpy()] * f[["temperature"]].to_numpy(float))
    return np.hstack(parts)


def _models():
    yield "linear", True, lambda: LinearRegression()
    for a in (1, 30):
        yield f"ridge(alpha={a})", True, lambda a=a: Ridge(alpha=float(a))
    for k in (5, 15, 30):
        yield f"knn(k={k})", False, lambda k=k: make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=k))
    for d in (4, 7, 10):
        yield f"tree(depth={d})", False, lambda d=d: DecisionTreeRegressor(max_depth=d, random_state=SEED)
    yield "random_forest(n=40)", False, lambda: RandomForestRegressor(
        n_estimators=40, min_samples_leaf=3, random_state=SEED, n_jobs=1)
    yield "extra_trees(n=40)", False, lambda: ExtraTreesRegressor(
        n_estimators=40, min_samples_leaf=3, random_state=SEED, n_jobs=1)
    for it, lr in ((50, 0.05), (100, 0.05), (200, 0.1)):
        yield f"hist_gbm(iter={it},lr={lr})", False, lambda it=it, lr=lr: HistGradientBoostingRegressor(
            max_iter=it, learning_rate=lr, random_state=SEED)


def build():
    train, test, answers = lt.read_prepared(HERE)
    y_true = answers.set_index("id").loc[test["id"], "demand"].to_numpy(float)
    both = features(pd.concat([train, test]).sort_values("id").reset_index(drop=True))
    f_all, f_test = both.iloc[: len(train)].reset_index(drop=True), both.iloc[len(train):].reset_index(drop=True)
    assert train["id"].max() < test["id"].min()
    y_all = train["demand"].to_numpy(float)

    def entry(name, pred):
        return lt.Entry(name, float(np.sqrt(np.mean((np.asarray(pred, float) - y_true) ** 2))))

    for weeks in WINDOWS_WEEKS:
        start = 0 if weeks is None else len(train) - weeks * 7 * 48
        window = "all" if weeks is None else f"last_{weeks}w"
        f_tr, y_tr = f_all.iloc[start:].reset_index(drop=True), y_all[start:]
        yield entry(f"mean|none|window={window}", np.full(len(y_true), y_tr.mean()))
        yield entry(f"median|none|window={window}", np.full(len(y_true), np.median(y_tr)))
        profile = pd.Series(y_tr).groupby(f_tr["slot"].to_numpy()).mean()
        yield entry(f"slot_profile|slot|window={window}", profile.loc[f_test["slot"]].to_numpy())
        wd_profile = pd.Series(y_tr).groupby([f_tr["slot"].to_numpy(), f_tr["work_day"].to_numpy()]).mean()
        keys = list(zip(f_test["slot"], f_test["work_day"]))
        yield entry(f"slot_workday_profile|slot+workday|window={window}",
                    wd_profile.reindex(keys).fillna(y_tr.mean()).to_numpy())
        for fs_name, cols in FEATURE_SETS.items():
            for name, linear, make in _models():
                if linear:
                    x_tr, x_te = linear_design(f_tr, cols), linear_design(f_test, cols)
                else:
                    x_tr, x_te = f_tr[cols].to_numpy(float), f_test[cols].to_numpy(float)
                yield entry(f"{name}|{fs_name}|window={window}", make().fit(x_tr, y_tr).predict(x_te))


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=True, doc=__doc__, auto_ids=True)
