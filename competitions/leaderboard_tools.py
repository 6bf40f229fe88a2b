"""Build-time tooling of the offline competitions' leaderboards: each `build_leaderboard.py` imports
this module first, yields its field of automated reference pipelines as `Entry`s and calls `main`,
which gives it `[--check] [--limit N] [OUT.csv]` and writes or checks leaderboard.csv.

An offline competition has no human leaderboard, so its field is automated reference pipelines:
the tabular ones (titanic, house-prices, bike-sharing-demand) sample a few hundred diverse
scikit-learn pipelines here (`sample_configs`, `run_configs`: model family, hyperparameters,
feature subset, share of the training rows, target transform); the others cross their own model
zoo with representations and training shares. Every model has a fixed random_state and runs on one
thread (set below, before numpy loads), so a board is identical byte for byte.

The committed boards were built with the versions in BUILT_WITH (requirements.lock pins them) and
OpenBLAS's Haswell kernels on x86-64; other versions may move a last digit or a tie's order, and a
check that finds a difference says which versions differ (`version_differences`). This module ships
with the competition folders, not in the runtime package: nothing but a board's rebuild runs it.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
# OpenBLAS picks its kernels by CPU, and an AVX-512 kernel moves last bits (and so k-NN ties) away from
# the committed boards: every x86-64 build uses the AVX2 (Haswell) kernels they were made with.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import argparse
import functools
import importlib.util
import io
import itertools
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Sequence

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # mleray from a checkout, installed or not
warnings.filterwarnings("ignore")  # convergence notes from tiny training shares

SUBMISSION_DATE = "2026-01-01 00:00:00"
DECIMALS = 5  # of every score on every board
CLASSIFIERS = ["logreg", "knn", "tree", "forest", "extra_trees", "hist_gb", "gb", "naive_bayes", "linear_svm"]
REGRESSORS = ["ridge", "lasso", "knn", "tree", "forest", "extra_trees", "hist_gb", "gb", "linear"]


@dataclass
class PipelineConfig:
    model: str
    params: Dict[str, object]
    features: List[str]
    train_frac: float
    log_target: bool = False
    text: str = "drop"  # "drop" | "tfidf": what to do with high-cardinality string columns
    seed: int = 0
    log_skewed: bool = False  # log1p of skewed non-negative numeric columns before scaling

    def describe(self, n_features: int, has_text: bool = True) -> str:
        params = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        extra = (" log-target" if self.log_target else "") + (" log-skewed" if self.log_skewed else "")
        text = " text=tfidf" if self.text == "tfidf" and has_text else ""
        return (f"{self.model}({params}) features={len(self.features)}/{n_features} "
                f"rows={self.train_frac:g}{extra}{text}")


def _choice(rng: np.random.Generator, items: Sequence):
    return items[int(rng.integers(len(items)))]


def sample_params(rng: np.random.Generator, model: str) -> Dict[str, object]:
    """Hyperparameters for one model family, from small grids (weak to strong settings)."""
    c = lambda items: _choice(rng, items)  # noqa: E731
    if model == "logreg":
        return {"C": c([0.001, 0.01, 0.1, 1.0, 10.0])}
    if model == "linear_svm":
        return {"C": c([0.001, 0.01, 0.1, 1.0])}
    if model in ("ridge",):
        return {"alpha": c([0.1, 1.0, 10.0, 100.0, 1000.0])}
    if model == "lasso":
        return {"alpha": c([0.0003, 0.001, 0.01, 0.1, 1.0])}
    if model == "knn":
        return {"n_neighbors": c([1, 3, 5, 10, 20, 50])}
    if model == "tree":
        return {"max_depth": c([1, 2, 3, 5, 8, None]), "min_samples_leaf": c([1, 5, 20])}
    if model in ("forest", "extra_trees"):
        return {"n_estimators": c([10, 50, 150]), "max_depth": c([3, 6, 12, None]),
                "max_features": c([0.3, 0.6, 1.0]), "min_samples_leaf": c([1, 3, 10])}
    if model == "hist_gb":
        return {"learning_rate": c([0.01, 0.03, 0.1, 0.3]), "max_iter": c([50, 100, 300]),
                "max_depth": c([2, 3, 6, None]), "l2_regularization": c([0.0, 1.0])}
    if model == "gb":
        return {"learning_rate": c([0.03, 0.1, 0.3]), "n_estimators": c([50, 100, 200]),
                "max_depth": c([1, 2, 3, 5]), "subsample": c([0.7, 1.0])}
    return {}


def build_estimator(cfg: PipelineConfig, task: str):
    from sklearn import ensemble, linear_model, naive_bayes, neighbors, svm, tree

    p, seed, cls = dict(cfg.params), cfg.seed, task == "classification"
    if cfg.model == "logreg":
        return linear_model.LogisticRegression(max_iter=2000, **p)
    if cfg.model == "linear_svm":
        return svm.LinearSVC(max_iter=5000, random_state=seed, **p)
    if cfg.model == "naive_bayes":
        return naive_bayes.GaussianNB()
    if cfg.model == "ridge":
        return linear_model.Ridge(**p)
    if cfg.model == "lasso":
        return linear_model.Lasso(max_iter=5000, random_state=seed, **p)
    if cfg.model == "linear":
        return linear_model.LinearRegression()
    if cfg.model == "knn":
        return (neighbors.KNeighborsClassifier if cls else neighbors.KNeighborsRegressor)(**p)
    if cfg.model == "tree":
        return (tree.DecisionTreeClassifier if cls else tree.DecisionTreeRegressor)(random_state=seed, **p)
    if cfg.model == "forest":
        return (ensemble.RandomForestClassifier if cls else ensemble.RandomForestRegressor)(
            random_state=seed, n_jobs=1, **p)
    if cfg.model == "extra_trees":
        return (ensemble.ExtraTreesClassifier if cls else ensemble.ExtraTreesRegressor)(
            random_state=seed, n_jobs=1, **p)
    if cfg.model == "hist_gb":
        return (ensemble.HistGradientBoostingClassifier if cls else ensemble.HistGradientBoostingRegressor)(
            random_state=seed, early_stopping=False, **p)
    if cfg.model == "gb":
        return (ensemble.GradientBoostingClassifier if cls else ensemble.GradientBoostingRegressor)(
            random_state=seed, **p)
    raise ValueError(f"unknown model family {cfg.model!r}")


def column_kinds(frame: pd.DataFrame, max_categories: int = 30) -> Dict[str, str]:
    """'numeric', 'categorical' (few distinct strings) or 'text' (many) for each column."""
    kinds = {}
    for col in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            kinds[col] = "numeric"
        elif frame[col].nunique(dropna=True) <= max_categories:
            kinds[col] = "categorical"
        else:
            kinds[col] = "text"
    return kinds


def skewed_columns(frame: pd.DataFrame, kinds: Dict[str, str]) -> List[str]:
    """Non-negative numeric columns with many values and |skew| > 1 (areas, prices, counts)."""
    return [c for c, k in kinds.items() if k == "numeric" and frame[c].min() >= 0
            and frame[c].nunique() > 10 and abs(frame[c].skew()) > 1.0]


def build_pipeline(cfg: PipelineConfig, task: str, kinds: Dict[str, str], skewed: Sequence[str] = ()):
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    logged = [c for c in cfg.features if cfg.log_skewed and c in skewed]
    numeric = [c for c in cfg.features if kinds[c] == "numeric" and c not in logged]
    categorical = [c for c in cfg.features if kinds[c] == "categorical"]
    text = [c for c in cfg.features if kinds[c] == "text"] if cfg.text == "tfidf" else []
    parts = []
    if numeric:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if logged:
        parts.append(("log", make_pipeline(SimpleImputer(strategy="median"), FunctionTransformer(np.log1p),
                                           StandardScaler()), logged))
    if categorical:
        parts.append(("cat", make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"),
            OneHotEncoder(handle_unknown="ignore", min_frequency=3, sparse_output=False)), categorical))
    for col in text:
        parts.append((f"txt_{col}", make_pipeline(
            FunctionTransformer(lambda x: pd.Series(np.asarray(x).ravel()).fillna("").astype(str).values,
                                feature_names_out="one-to-one"),
            TfidfVectorizer(min_df=1, max_features=200), FunctionTransformer(lambda m: m.toarray())), [col]))
    if not parts:
        raise ValueError("a pipeline needs at least one usable feature")
    prep = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    return make_pipeline(prep, build_estimator(cfg, task))


def sample_configs(n: int, seed: int, task: str, features: Sequence[str],
                   core: Sequence[str] = (), log_target_p: float = 0.5) -> List[PipelineConfig]:
    """n diverse configs. Feature subsets always keep one of `core` (the strongest columns) so
    that most pipelines learn something; regression pipelines model log(1 + y) with probability
    log_target_p (high where the metric is on a log scale, as practitioners would)."""
    rng = np.random.default_rng(seed)
    families = CLASSIFIERS if task == "classification" else REGRESSORS
    features = list(features)
    configs = []
    for i in range(n):
        model = _choice(rng, families)
        params = sample_params(rng, model)
        share = _choice(rng, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
        k = max(1, int(round(share * len(features))))
        chosen = set(rng.choice(features, size=k, replace=False).tolist())
        if core and not chosen.intersection(core):
            chosen.add(_choice(rng, list(core)))
        frac = float(_choice(rng, [0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]))
        lt = bool(rng.random() < log_target_p) if task == "regression" else False
        text = _choice(rng, ["drop", "tfidf"])
        log_skewed = bool(rng.integers(2))
        configs.append(PipelineConfig(model, params, [f for f in features if f in chosen], frac, lt, text,
                                      seed=int(rng.integers(1_000_000)), log_skewed=log_skewed))
    return configs


@dataclass
class Entry:
    """One reference pipeline: its name on the board and its score (rounded when written)."""
    name: str
    score: float


def run_configs(configs: List[PipelineConfig], task: str, train: pd.DataFrame, target: pd.Series,
                test: pd.DataFrame, score_fn: Callable[[np.ndarray], float]) -> Iterator[Entry]:
    """Fits every config on (a share of) the training rows and yields its test predictions' score."""
    kinds = column_kinds(train)
    skewed = skewed_columns(train, kinds)
    all_features = len(train.columns)
    started = time.monotonic()
    for i, cfg in enumerate(configs):
        if i and i % 25 == 0:
            print(f"  {i}/{len(configs)} pipelines, {time.monotonic() - started:.0f} s", flush=True)
        rows = np.random.default_rng(cfg.seed).permutation(len(train))[: max(20, int(cfg.train_frac * len(train)))]
        rows.sort()
        x, y = train.iloc[rows][cfg.features], target.iloc[rows]
        if task == "regression" and cfg.log_target:
            y = np.log1p(y)
        pipe = build_pipeline(cfg, task, kinds, skewed)
        if cfg.model == "knn":
            pipe.steps[-1][1].set_params(n_neighbors=min(cfg.params["n_neighbors"], len(rows)))
        try:
            pipe.fit(x, y)
        except ValueError:  # e.g. no text term frequent enough in a small share of rows
            continue
        pred = pipe.predict(test[cfg.features])
        if task == "regression" and cfg.log_target:
            pred = np.expm1(np.clip(pred, -20, 20))
        value = float(score_fn(np.asarray(pred)))
        if not math.isfinite(value):
            continue
        has_text = any(kinds[f] == "text" for f in cfg.features)
        if cfg.log_skewed and not any(f in skewed for f in cfg.features):
            cfg.log_skewed = False  # nothing to transform: say so in the name
        yield Entry(f"ref-{i + 1:03d} {cfg.describe(all_features, has_text)}", value)


def grid(**axes: Sequence) -> List[Dict[str, object]]:
    """Every combination of the axes' values, in order: a tuned block's hyperparameter grid."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]


def params_text(params: Dict[str, object]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


class Blocks(list):
    """A board's entries as separate blocks (the sampled field, the tuned field, ...): `--limit N`
    takes the first N entries of each block, so a quick check covers every kind of pipeline."""


def write_leaderboard(entries: List[Entry], path: Path, lower_is_better: bool, auto_ids: bool = False) -> pd.DataFrame:
    """leaderboard.csv in Kaggle's form, best first (ties by name): teamId, teamName, submissionDate,
    score. teamId counts 1, 2, ... or, with auto_ids (the non-tabular boards), auto-0000, auto-0001, ..."""
    frame = pd.DataFrame({"teamName": [e.name for e in entries],
                          "score": [round(e.score, DECIMALS) for e in entries]})
    frame = frame.sort_values(["score", "teamName"], ascending=[lower_is_better, True], kind="mergesort")
    frame.insert(0, "teamId", [f"auto-{i:04d}" for i in range(len(frame))] if auto_ids
                 else np.arange(1, len(frame) + 1))
    frame.insert(2, "submissionDate", SUBMISSION_DATE)
    frame.to_csv(path, index=False, float_format=f"%.{DECIMALS}f", lineterminator="\n")
    return frame


def prepare_module(folder: Path):
    """A competition folder's prepare.py as a module (for its constants and helpers too)."""
    spec = importlib.util.spec_from_file_location("competition_prepare", folder / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_prepared(folder: Path, public: Sequence[str] = ("train.csv", "test.csv"),
                  dtype: Dict[str, type] = None) -> tuple:
    """The `public` CSVs, then private/answers.csv, of a competition folder prepared into a temporary
    folder: what a build script starts from. `dtype` applies to the public files."""
    with tempfile.TemporaryDirectory() as tmp:
        pub, private = Path(tmp, "public"), Path(tmp, "private")
        pub.mkdir(), private.mkdir()
        prepare_module(folder).prepare(pub, private)
        return (*(pd.read_csv(pub / name, dtype=dtype) for name in public), pd.read_csv(private / "answers.csv"))


# The versions every committed leaderboard.csv was built with.
BUILT_WITH = {"numpy": "2.4.6", "pandas": "3.1.1", "scipy": "1.17.1", "scikit-learn": "1.9.1"}


def version_differences() -> str:
    """Which BUILT_WITH libraries this environment has at other versions ("" when none), e.g.
    "pandas 2.3.3 here, the boards need 3.1.1"."""
    from importlib.metadata import PackageNotFoundError, version

    differ = []
    for name, wanted in BUILT_WITH.items():
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "none"
        if have != wanted:
            differ.append(f"{name} {have} here, the boards need {wanted}")
    return "; ".join(differ)


def library_versions() -> str:
    return ", ".join(f"{name} {version}" for name, version in BUILT_WITH.items()) + \
        (f" ({version_differences()})" if version_differences() else " (all as built)")


def finish(entries: List[Entry], path: Path, write: Callable[[List[Entry], Path], pd.DataFrame],
           check: bool = False, partial: bool = False) -> int:
    """Writes the board with `write`, or with check=True compares a fresh one with `path`; returns an
    exit code. partial=True (a --limit run) checks that every entry's score appears in the committed
    file under the same name, since the full ranking needs every pipeline."""
    if not check:
        frame = write(entries, path)
        print(f"wrote {path}: {len(frame)} entries, best {frame['score'].iloc[0]}, "
              f"median {frame['score'].median()}, worst {frame['score'].iloc[-1]}")
        return 0
    committed = path.read_text()
    if partial:
        table = pd.read_csv(io.StringIO(committed))
        known = dict(zip(table["teamName"], table["score"]))
        bad = [e.name for e in entries
               if e.name not in known or round(e.score, DECIMALS) != round(float(known[e.name]), DECIMALS)]
        print(f"checked {len(entries)} pipelines against {path}: {len(bad)} differ")
        if bad:
            print(f"first: {bad[0]}; the committed file was built with {library_versions()}")
        return 1 if bad else 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "leaderboard.csv"
        write(entries, fresh)
        same = fresh.read_text() == committed
    print(f"{path} {'is reproduced byte for byte' if same else 'DIFFERS from a fresh build'}")
    if not same:
        print(f"the committed file was built with {library_versions()}")
    return 0 if same else 1


def main(build: Callable[[], Iterable[Entry]], folder: Path, lower_is_better: bool, doc: str,
         auto_ids: bool = False) -> None:
    """A build script's command line (`doc` is its docstring): builds the entries of `build()`, writes
    or checks the board, and exits with finish's code."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare a fresh build with the board instead of writing it")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="only the first N entries, of each block where the board has blocks "
                             "(with --check: compare their scores with the board's)")
    parser.add_argument("out", nargs="?", type=Path, default=folder / "leaderboard.csv", metavar="OUT.csv",
                        help="the board to write or check (default: the competition's leaderboard.csv)")
    args = parser.parse_args()
    if args.limit is not None and not args.check:
        parser.error("refusing to write a partial leaderboard (drop --limit, or add --check)")
    built = build()
    if isinstance(built, Blocks):
        entries = [e for block in built for e in itertools.islice(block, args.limit)]
    else:
        entries = list(itertools.islice(built, args.limit))
    write = functools.partial(write_leaderboard, lower_is_better=lower_is_better, auto_ids=auto_ids)
    sys.exit(finish(entries, args.out, write, check=args.check, partial=args.limit is not None))
