"""Fashion-MNIST denoising: restore 28x28 Fashion-MNIST photographs (Debian's
``dataset-fashion-mnist``) corrupted with deterministic synthetic dirt — smooth stains, Gaussian
noise and salt-and-pepper specks — in the manner of Kaggle's *Denoising Dirty Documents*.

Public: noisy and clean training images (wide CSVs, one row per image, 8-bit intensities 0-255)
and noisy test images. Private: the clean test pixels in long format
(``id = <image>_<row>_<col>``, 1-based, ``value`` = intensity / 255 with 4 decimals).

Deterministic: fixed seeds; raw files checked by sha256.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from mleray.competitions.sources import apt_file

APT_PACKAGE = "dataset-fashion-mnist"
RAW_DIR = Path("/usr/share/datasets/fashion-mnist")
SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
}
N_TRAIN = 2_000
N_TEST = 400
SEED = 31337
SIDE = 28
DECIMALS = 4


def _images(kind: str) -> np.ndarray:
    name = f"{kind}-images-idx3-ubyte.gz"
    data = gzip.decompress(apt_file(APT_PACKAGE, RAW_DIR / name, SHA256[name]).read_bytes())
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, SIDE, SIDE)


def corrupt(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy copies of clean images in [0, 1], shape [n, 28, 28]."""
    n = clean.shape[0]
    coarse = rng.uniform(0.0, 1.0, size=(n, 5, 5)) ** 3 * 0.45  # sparse, strong stains
    stains = np.stack([ndimage.zoom(c, SIDE / 5, order=1, mode="nearest")[:SIDE, :SIDE] for c in coarse])
    noisy = clean * rng.uniform(0.7, 1.0, size=(n, 1, 1)) + stains  # faded ink plus stains
    noisy = noisy + rng.normal(0.0, 0.12, size=clean.shape)
    specks = rng.uniform(size=clean.shape)
    noisy = np.where(specks < 0.03, 1.0, np.where(specks > 0.97, 0.0, noisy))
    return np.clip(noisy, 0.0, 1.0)


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.round(images * 255.0).astype(np.uint8)


def wide(ids: np.ndarray, images: np.ndarray) -> pd.DataFrame:
    """One row per image: `image` and pixel0..pixel783 (row-major) as integers 0-255."""
    flat = to_uint8(images).reshape(len(ids), -1).astype(np.int64)
    frame = pd.DataFrame(flat, columns=[f"pixel{i}" for i in range(SIDE * SIDE)])
    frame.insert(0, "image", ids)
    return frame


def long_ids(ids: np.ndarray) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(1, SIDE + 1), np.arange(1, SIDE + 1), indexing="ij")
    rc = np.char.add(np.char.add(rows.reshape(-1).astype(str), "_"), cols.reshape(-1).astype(str))
    return np.char.add(np.char.add(np.repeat(ids.astype(str), SIDE * SIDE), "_"), np.tile(rc, len(ids)))


def prepare(public: Path, private: Path) -> None:
    public, private = Path(public), Path(private)
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    train_src, test_src = _images("train"), _images("t10k")
    tr = np.sort(rng.choice(len(train_src), N_TRAIN, replace=False))
    te = np.sort(rng.choice(len(test_src), N_TEST, replace=False))
    clean_tr = train_src[tr].astype(np.float64) / 255.0
    clean_te = test_src[te].astype(np.float64) / 255.0
    noisy_tr, noisy_te = corrupt(clean_tr, rng), corrupt(clean_te, rng)
    train_ids = np.arange(1, N_TRAIN + 1)
    test_ids = np.arange(N_TRAIN + 1, N_TRAIN + N_TEST + 1)
    wide(train_ids, noisy_tr).to_csv(public / "train_noisy.csv", index=False)
    wide(train_ids, clean_tr).to_csv(public / "train_clean.csv", index=False)
    wide(test_ids, noisy_te).to_csv(public / "test_noisy.csv", index=False)
    ids = long_ids(test_ids)
    _write_long(public / "sample_submission.csv", ids, np.zeros(len(ids), dtype=np.uint8))
    _write_long(private / "answers.csv", ids, to_uint8(clean_te).reshape(-1))


def _write_long(path: Path, ids: np.ndarray, levels: np.ndarray) -> None:
    """`id,value` rows with value = level / 255 written with DECIMALS decimals (fast, exact text)."""
    text = np.array([f"{k / 255.0:.{DECIMALS}f}" for k in range(256)])
    body = np.char.add(np.char.add(ids, ","), text[levels])
    path.write_text("id,value\n" + "\n".join(body.tolist()) + "\n")
