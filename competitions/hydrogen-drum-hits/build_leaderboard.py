"""Regenerates leaderboard.csv for hydrogen-drum-hits, byte for byte.

The field is automated reference pipelines, not people: scikit-learn classifiers on the
precomputed clip features of train.csv (all of them, the band energies only, the spectral
summaries only, the envelope only), crossed with hyperparameters and training subsets (random
fractions of the clips, or leaving whole kits out), scored (macro F1) on the private answers.

    python competitions/hydrogen-drum-hits/build_leaderboard.py [OUT.csv]

The committed leaderboard.csv was built single-threaded with numpy 2.4.6, pandas 3.1.1, scipy 1.17.1
and scikit-learn 1.9.1 on x86-64; other versions may move a last digit or a tie's order.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
# OpenBLAS picks its kernels by CPU, and an AVX-512 kernel moves last bits (and so k-NN ties) away from
# the committed board: every x86-64 build uses the AVX2 (Haswell) kernels it was made with.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import prepare as prep  # noqa: E402

SEED = 21
warnings.filterwarnings("ignore")


def _models():
    yield "majority", lambda: DummyClassifier(strategy="most_frequent")
    yield "stratified_random", lambda: DummyClassifier(strategy="stratified", random_state=SEED)
    yield "gaussian_nb", lambda: make_pipeline(StandardScaler(), GaussianNB())
    yield "lda", lambda: make_pipeline(StandardScaler(), LinearDiscriminantAnalysis())
    for c in (0.1, 1.0, 10.0):
        yield f"logreg(C={c})", lambda c=c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    for c in (1.0, 10.0):
        yield f"svc_rbf(C={c})", lambda c=c: make_pipeline(StandardScaler(), SVC(C=c))
    for k in (1, 5, 15):
        yield f"knn(k={k})", lambda k=k: make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
    for d in (3, 8):
        yield f"tree(depth={d})", lambda d=d: DecisionTreeClassifier(max_depth=d, random_state=SEED)
    yield "random_forest(n=200)", lambda: RandomForestClassifier(n_estimators=200, random_state=SEED, n_jobs=1)
    yield "extra_trees(n=200)", lambda: ExtraTreesClassifier(n_estimators=200, random_state=SEED, n_jobs=1)
    yield "hist_gbm(iter=100)", lambda: HistGradientBoostingClassifier(max_iter=100, random_state=SEED)


def build(out: Path) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        public, private = Path(tmp, "public"), Path(tmp, "private")
        prep.prepare(public, private)
        train = pd.read_csv(public / "train.csv")
        test = pd.read_csv(public / "test.csv")
        answers = pd.read_csv(private / "answers.csv")
    y_true = answers.set_index("id").loc[test["id"], "label"].to_numpy()
    bands = [c for c in train.columns if c.startswith("band")]
    spectral = ["spectral_centroid", "spectral_rolloff", "spectral_flatness", "zero_crossing_rate"]
    envelope = ["rms", "peak", "attack_s", "energy_0_50ms", "energy_50_200ms", "energy_200ms_1s",
                "decay_to_10pct_s"]
    feature_sets = {"all": bands + spectral + envelope, "bands": bands, "spectral+envelope": spectral + envelope,
                    "envelope": envelope}
    kits = sorted(train["kit"].unique())
    rng = np.random.default_rng(SEED)
    subsets = {"all_train": np.arange(len(train))}
    order = rng.permutation(len(train))
    for frac in (0.15, 0.4):
        subsets[f"random_frac={frac}"] = np.sort(order[: int(round(frac * len(train)))])
    subsets["largest_kit_out"] = np.flatnonzero(train["kit"] != train["kit"].value_counts().index[0])
    subsets["three_kits_only"] = np.flatnonzero(train["kit"].isin(kits[:3]))
    rows = []
    for sub_name, idx in subsets.items():
        y_tr = train["label"].to_numpy()[idx]
        for fs_name, cols in feature_sets.items():
            x_tr, x_te = train[cols].to_numpy(float)[idx], test[cols].to_numpy(float)
            for name, make in _models():
                if name in ("majority", "stratified_random") and fs_name != "all":
                    continue
                pred = make().fit(x_tr, y_tr).predict(x_te)
                f1 = float(f1_score(y_true, pred, average="macro"))
                rows.append({"teamName": f"{name}|{fs_name}|{sub_name}", "score": round(f1, 5)})
    board = pd.DataFrame(rows).sort_values(["score", "teamName"], ascending=[False, True])
    board.insert(0, "teamId", [f"auto-{i:04d}" for i in range(len(board))])
    board["submissionDate"] = "2026-01-01 00:00:00"
    board = board[["teamId", "teamName", "submissionDate", "score"]]
    board.to_csv(out, index=False, float_format="%.5f")
    return board


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "leaderboard.csv"
    b = build(target)
    print(f"{len(b)} entries, median {b['score'].median():.5f}, best {b['score'].iloc[0]:.5f} -> {target}")
