"""Regenerates leaderboard.csv for hydrogen-drum-hits, byte for byte.

The field is automated reference pipelines, not people: scikit-learn classifiers on the
precomputed clip features of train.csv (all of them, the band energies only, the spectral
summaries only, the envelope only), crossed with hyperparameters and training subsets (random
fractions of the clips, or leaving whole kits out), scored (macro F1) on the private answers.

The tuned field is what careful work reaches: features computed from the WAV files themselves
(log energies in 20 log-spaced bands in four windows after the onset, their cepstra, the
envelope's decay times), alone and with the precomputed ones, under grids of logistic regression,
RBF SVMs, forests and boosting, trained on every training kit. `--limit N` checks the first N of
each field.

    python competitions/hydrogen-drum-hits/build_leaderboard.py [--check] [--limit N] [OUT.csv]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import leaderboard_tools as lt  # first: it sets the thread variables before numpy loads

import tempfile
import wave

import numpy as np
import pandas as pd
from scipy.fft import dct
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


def clip_features(path: Path, bands: int = 20) -> np.ndarray:
    """Log band energies (40 Hz .. Nyquist, log-spaced) in the windows 0-30, 30-100, 100-300 and
    300-1000 ms after the onset, 8 cepstral coefficients of each window, and the times the
    envelope takes to fall to 50, 25, 10 and 3 % of its peak."""
    with wave.open(str(path), "rb") as handle:
        rate = handle.getframerate()
        x = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16).astype(np.float64) / 32768.0
    if len(x) == 0:
        x = np.zeros(rate // 10)
    x = x[int(np.argmax(np.abs(x) > 0.1 * (np.abs(x).max() + 1e-12))):]
    edges = np.geomspace(40.0, rate / 2, bands + 1)
    out = []
    for a, b in ((0.0, 0.03), (0.03, 0.1), (0.1, 0.3), (0.3, 1.0)):
        seg = x[int(a * rate): int(b * rate)]
        seg = seg if len(seg) >= 32 else np.zeros(32)
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
        freqs = np.fft.rfftfreq(len(seg), 1.0 / rate)
        energy = np.log(np.array([spec[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
                        + 1e-10)
        out += [energy - energy.max(), dct(energy, norm="ortho")[:8]]
    env = np.sqrt(np.convolve(x ** 2, np.ones(160) / 160, mode="same")) + 1e-9
    decay = [float(np.argmax(env < env.max() * f)) / rate if (env < env.max() * f).any() else len(x) / rate
             for f in (0.5, 0.25, 0.1, 0.03)]
    return np.concatenate(out + [np.array(decay)])


def own_features() -> tuple:
    """clip_features of every train and test clip (prepared into a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        pub, private = Path(tmp, "public"), Path(tmp, "private")
        pub.mkdir(), private.mkdir()
        lt.prepare_module(HERE).prepare(pub, private)
        return tuple(np.stack([clip_features(pub / f) for f in pd.read_csv(pub / name)["file"]])
                     for name in ("train.csv", "test.csv"))


def tuned_models():
    """(name, factory) of the tuned field's grids, in a fixed order."""
    for c in (0.03, 0.1, 0.3, 1.0):
        yield f"logreg(C={c})", lambda c=c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
    for c in (1.0, 3.0, 10.0, 30.0):
        for g in ("scale", 0.003, 0.01):
            yield f"svc_rbf(C={c},gamma={g})", lambda c=c, g=g: make_pipeline(StandardScaler(), SVC(C=c, gamma=g))
    for f in ("sqrt", 0.3):
        for leaf in (1, 3):
            yield f"random_forest(n=300,max_features={f},min_samples_leaf={leaf})", lambda f=f, leaf=leaf: \
                RandomForestClassifier(n_estimators=300, max_features=f, min_samples_leaf=leaf, random_state=SEED,
                                       n_jobs=1)
            yield f"extra_trees(n=300,max_features={f},min_samples_leaf={leaf})", lambda f=f, leaf=leaf: \
                ExtraTreesClassifier(n_estimators=300, max_features=f, min_samples_leaf=leaf, random_state=SEED,
                                     n_jobs=1)
    for lr in (0.05, 0.1):
        yield f"hist_gbm(iter=200,lr={lr})", lambda lr=lr: HistGradientBoostingClassifier(
            max_iter=200, learning_rate=lr, random_state=SEED, early_stopping=False)


def tuned(train, test, y_true):
    own_tr, own_te = own_features()
    given = [c for c in test.columns if c not in ("id", "file")]
    sets = {"wav_features": (own_tr, own_te),
            "wav_features+given": (np.hstack([own_tr, train[given].to_numpy(float)]),
                                   np.hstack([own_te, test[given].to_numpy(float)]))}
    y_tr = train["label"].to_numpy()
    for set_name, (x_tr, x_te) in sets.items():
        for name, make in tuned_models():
            pred = make().fit(x_tr, y_tr).predict(x_te)
            yield lt.Entry(f"tuned|{name}|{set_name}|all_train", float(f1_score(y_true, pred, average="macro")))


def build():
    train, test, answers = lt.read_prepared(HERE)
    y_true = answers.set_index("id").loc[test["id"], "label"].to_numpy()
    return lt.Blocks([sampled(train, test, y_true), tuned(train, test, y_true)])


def sampled(train, test, y_true):
    """The model zoo on the precomputed features, crossed with subsets of the training clips."""
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
