"""Regenerates leaderboard.csv for fashion-mnist-denoise, byte for byte.

The field is automated reference pipelines, not people: classical image filters (Gaussian,
median, uniform, their combinations, thresholds), PCA reconstructions, whole-image ridge maps
and per-pixel regressors on local patches (ridge, gradient boosting), crossed with their
hyperparameters and training-set fractions, each fitted on the public training pairs and scored
(RMSE on intensities in [0, 1]) on the private clean test pixels.

    python competitions/fashion-mnist-denoise/build_leaderboard.py [--check] [--limit N] [OUT.csv]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import leaderboard_tools as lt  # first: it sets the thread variables before numpy loads

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingRegressor

HERE = Path(__file__).resolve().parent
prep = lt.prepare_module(HERE)  # for SIDE and long_ids

SEED = 3
S = prep.SIDE


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


def build():
    noisy, clean, test, answers = lt.read_prepared(HERE, ["train_noisy.csv", "train_clean.csv", "test_noisy.csv"])
    noisy_tr, clean_tr, noisy_te = _images(noisy), _images(clean), _images(test)
    ids = prep.long_ids(test["image"].to_numpy())
    y_true = answers.set_index("id").loc[ids, "value"].to_numpy(float)

    def entry(name: str, pred: np.ndarray) -> lt.Entry:
        p = np.clip(np.asarray(pred, float).reshape(-1), 0.0, 1.0)
        return lt.Entry(name, float(np.sqrt(np.mean((p - y_true) ** 2))))

    yield entry("identity|noisy_input", noisy_te)
    yield entry("constant|train_clean_mean", np.full(noisy_te.shape, clean_tr.mean()))
    yield entry("pixel_mean|train_clean", np.broadcast_to(clean_tr.mean(axis=0), noisy_te.shape))
    for sigma in (0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0):
        yield entry(f"gaussian(sigma={sigma})", _per_image(lambda im: ndimage.gaussian_filter(im, sigma), noisy_te))
    for size in (2, 3, 4, 5):
        med = _per_image(lambda im: ndimage.median_filter(im, size=size), noisy_te)
        yield entry(f"median(size={size})", med)
        yield entry(f"uniform(size={size})", _per_image(lambda im: ndimage.uniform_filter(im, size=size), noisy_te))
        for sigma in (0.5, 1.0):
            yield entry(f"median(size={size})+gaussian(sigma={sigma})",
                        _per_image(lambda im: ndimage.gaussian_filter(im, sigma), med))
        for lo in (0.1, 0.2, 0.3):
            yield entry(f"median(size={size})+floor({lo})", np.where(med < lo, 0.0, med))
    for lo in (0.1, 0.2, 0.3, 0.4):
        yield entry(f"floor({lo})|noisy_input", np.where(noisy_te < lo, 0.0, noisy_te))
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(noisy_tr))
    for frac in (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0):
        idx = np.sort(order[: max(10, int(round(frac * len(noisy_tr))))])
        xn, xc = noisy_tr[idx], clean_tr[idx]
        for k in (5, 10, 20, 40, 60, 100):
            if k >= len(idx):
                continue
            pca = PCA(n_components=k, random_state=SEED).fit(xc.reshape(len(idx), -1))
            yield entry(f"pca_clean_basis(k={k})|train_frac={frac}",
                        pca.inverse_transform(pca.transform(noisy_te.reshape(len(noisy_te), -1))))
        for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0):
            f = _ridge(xn.reshape(len(idx), -1), xc.reshape(len(idx), -1), alpha)
            yield entry(f"whole_image_ridge(alpha={alpha})|train_frac={frac}",
                        f(noisy_te.reshape(len(noisy_te), -1)))
        for size in (1, 3, 5, 7):
            x_tr, y_tr = _patches(xn, size), xc.reshape(-1)
            x_te = _patches(noisy_te, size)
            for alpha in (1.0, 1000.0):
                yield entry(f"patch_ridge(size={size},alpha={alpha})|train_frac={frac}",
                            _ridge(x_tr, y_tr, alpha)(x_te))
            if size in (3, 5):  # the patch plus its 3x3 median as one more feature
                x_trm = np.hstack([x_tr, _patches(_per_image(lambda im: ndimage.median_filter(im, 3), xn), 1)])
                x_tem = np.hstack([x_te, _patches(_per_image(lambda im: ndimage.median_filter(im, 3), noisy_te), 1)])
                yield entry(f"patch_ridge+median3(size={size},alpha=1.0)|train_frac={frac}",
                            _ridge(x_trm, y_tr, 1.0)(x_tem))
            if frac in (0.02, 0.05, 0.25, 1.0) and size in (3, 5, 7):
                for it in (30, 100):
                    sub = rng.choice(len(x_tr), min(len(x_tr), 60_000), replace=False)
                    gbm = HistGradientBoostingRegressor(max_iter=it, random_state=SEED).fit(x_tr[sub], y_tr[sub])
                    yield entry(f"patch_gbm(size={size},iter={it})|train_frac={frac}", gbm.predict(x_te))


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=True, doc=__doc__, auto_ids=True)
