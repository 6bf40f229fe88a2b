"""Regenerates leaderboard.csv for fashion-mnist-denoise, byte for byte.

The field is automated reference pipelines, not people: classical image filters (Gaussian,
median, uniform, their combinations, thresholds), PCA reconstructions, whole-image ridge maps
and per-pixel regressors on local patches (ridge, gradient boosting), crossed with their
hyperparameters and training-set fractions, each fitted on the public training pairs and scored
(RMSE on intensities in [0, 1]) on the private clean test pixels.

    python competitions/fashion-mnist-denoise/build_leaderboard.py [OUT.csv]

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
from scipy import ndimage
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingRegressor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import prepare as prep  # noqa: E402

SEED = 3
S = prep.SIDE
warnings.filterwarnings("ignore")


def _images(frame: pd.DataFrame) -> np.ndarray:
    return frame[[f"pixel{i}" for i in range(S * S)]].to_numpy(np.float64).reshape(-1, S, S) / 255.0


def _per_image(fn, imgs: np.ndarray) -> np.ndarray:
    return np.stack([fn(im) for im in imgs])


def _patches(imgs: np.ndarray, size: int) -> np.ndarray:
    """[n*28*28, size*size] neighbourhoods (edge-padded), one row per pixel."""
    r = size // 2
    padded = np.pad(imgs, ((0, 0), (r, r), (r, r)), mode="edge")
    cols = [padded[:, dy:dy + S, dx:dx + S].reshape(-1) for dy in range(size) for dx in range(size)]
    return np.stack(cols, axis=1)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float):
    x1 = np.hstack([x, np.ones((len(x), 1))])
    gram = x1.T @ x1 + alpha * np.eye(x1.shape[1])
    w = np.linalg.solve(gram, x1.T @ y)
    return lambda z: np.hstack([z, np.ones((len(z), 1))]) @ w


def build(out: Path) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        public, private = Path(tmp, "public"), Path(tmp, "private")
        prep.prepare(public, private)
        noisy_tr = _images(pd.read_csv(public / "train_noisy.csv"))
        clean_tr = _images(pd.read_csv(public / "train_clean.csv"))
        test = pd.read_csv(public / "test_noisy.csv")
        noisy_te = _images(test)
        answers = pd.read_csv(private / "answers.csv")
    ids = prep.long_ids(test["image"].to_numpy())
    y_true = answers.set_index("id").loc[ids, "value"].to_numpy(float)
    rows = []

    def add(name: str, pred: np.ndarray) -> None:
        p = np.clip(np.asarray(pred, float).reshape(-1), 0.0, 1.0)
        rows.append({"teamName": name, "score": round(float(np.sqrt(np.mean((p - y_true) ** 2))), 5)})

    add("identity|noisy_input", noisy_te)
    add("constant|train_clean_mean", np.full(noisy_te.shape, clean_tr.mean()))
    add("pixel_mean|train_clean", np.broadcast_to(clean_tr.mean(axis=0), noisy_te.shape))
    for sigma in (0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0):
        add(f"gaussian(sigma={sigma})", _per_image(lambda im: ndimage.gaussian_filter(im, sigma), noisy_te))
    for size in (2, 3, 4, 5):
        med = _per_image(lambda im: ndimage.median_filter(im, size=size), noisy_te)
        add(f"median(size={size})", med)
        add(f"uniform(size={size})", _per_image(lambda im: ndimage.uniform_filter(im, size=size), noisy_te))
        for sigma in (0.5, 1.0):
            add(f"median(size={size})+gaussian(sigma={sigma})",
                _per_image(lambda im: ndimage.gaussian_filter(im, sigma), med))
        for lo in (0.1, 0.2, 0.3):
            add(f"median(size={size})+floor({lo})", np.where(med < lo, 0.0, med))
    for lo in (0.1, 0.2, 0.3, 0.4):
        add(f"floor({lo})|noisy_input", np.where(noisy_te < lo, 0.0, noisy_te))
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(noisy_tr))
    for frac in (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0):
        idx = np.sort(order[: max(10, int(round(frac * len(noisy_tr))))])
        xn, xc = noisy_tr[idx], clean_tr[idx]
        for k in (5, 10, 20, 40, 60, 100):
            if k >= len(idx):
                continue
            pca = PCA(n_components=k, random_state=SEED).fit(xc.reshape(len(idx), -1))
            add(f"pca_clean_basis(k={k})|train_frac={frac}",
                pca.inverse_transform(pca.transform(noisy_te.reshape(len(noisy_te), -1))))
        for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0):
            f = _ridge(xn.reshape(len(idx), -1), xc.reshape(len(idx), -1), alpha)
            add(f"whole_image_ridge(alpha={alpha})|train_frac={frac}", f(noisy_te.reshape(len(noisy_te), -1)))
        for size in (1, 3, 5, 7):
            x_tr, y_tr = _patches(xn, size), xc.reshape(-1)
            x_te = _patches(noisy_te, size)
            for alpha in (1.0, 1000.0):
                add(f"patch_ridge(size={size},alpha={alpha})|train_frac={frac}", _ridge(x_tr, y_tr, alpha)(x_te))
            if size in (3, 5):  # the patch plus its 3x3 median as one more feature
                x_trm = np.hstack([x_tr, _patches(_per_image(lambda im: ndimage.median_filter(im, 3), xn), 1)])
                x_tem = np.hstack([x_te, _patches(_per_image(lambda im: ndimage.median_filter(im, 3), noisy_te), 1)])
                add(f"patch_ridge+median3(size={size},alpha=1.0)|train_frac={frac}", _ridge(x_trm, y_tr, 1.0)(x_tem))
            if frac in (0.02, 0.05, 0.25, 1.0) and size in (3, 5, 7):
                for it in (30, 100):
                    sub = rng.choice(len(x_tr), min(len(x_tr), 60_000), replace=False)
                    gbm = HistGradientBoostingRegressor(max_iter=it, random_state=SEED).fit(x_tr[sub], y_tr[sub])
                    add(f"patch_gbm(size={size},iter={it})|train_frac={frac}", gbm.predict(x_te))
    board = pd.DataFrame(rows).sort_values(["score", "teamName"], ascending=[True, True])
    board.insert(0, "teamId", [f"auto-{i:04d}" for i in range(len(board))])
    board["submissionDate"] = "2026-01-01 00:00:00"
    board = board[["teamId", "teamName", "submissionDate", "score"]]
    board.to_csv(out, index=False, float_format="%.5f")
    return board


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "leaderboard.csv"
    b = build(target)
    print(f"{len(b)} entries, median {b['score'].median():.5f}, best {b['score'].iloc[0]:.5f} -> {target}")
