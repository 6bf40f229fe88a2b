"""Regenerates leaderboard.csv for hydrogen-drum-hits, byte for byte.

The field is automated reference pipelines, not people: scikit-learn classifiers on the
precomputed clip features of train.csv (all of them, the band energies only, the spectral
summaries only, the envelope only), crossed with hyperparameters and training subsets (random
fractions of the clips, or leaving whole kits out), scored (macro F1) on the private answers.

    python competitions/hydrogen-drum-hits/build_leaderboard.py [--check] [--limit N] [OUT.csv]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import leaderboard_tools as lt  # first: it sets the thread variables before numpy loads

import numpy as np
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
SEED = 21


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


def build():
    train, test, answers = lt.read_prepared(HERE)
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
    for sub_name, idx in subsets.items():
        y_tr = train["label"].to_numpy()[idx]
        for fs_name, cols in feature_sets.items():
            x_tr, x_te = train[cols].to_numpy(float)[idx], test[cols].to_numpy(float)
            for name, make in _models():
                if name in ("majority", "stratified_random") and fs_name != "all":
                    continue
                pred = make().fit(x_tr, y_tr).predict(x_te)
                yield lt.Entry(f"{name}|{fs_name}|{sub_name}", float(f1_score(y_true, pred, average="macro")))


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=False, doc=__doc__, auto_ids=True)
