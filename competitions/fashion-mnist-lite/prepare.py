"""Fashion-MNIST lite: 10,000 training and 2,000 test images (28x28 greyscale) from Debian's
``dataset-fashion-mnist`` package, written as pixel-column CSVs.

Deterministic: fixed seed, raw files checked by sha256.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from mleray.competitions.sources import apt_file

APT_PACKAGE = "dataset-fashion-mnist"
RAW_DIR = Path("/usr/share/datasets/fashion-mnist")
SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
N_TRAIN = 10_000
N_TEST = 2_000
SEED = 20240611
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _raw(name: str) -> bytes:
    return gzip.decompress(apt_file(APT_PACKAGE, RAW_DIR / name, SHA256[name]).read_bytes())


def load_split(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 784], labels uint8 [n]) for kind 'train' or 't10k'."""
    images = np.frombuffer(_raw(f"{kind}-images-idx3-ubyte.gz"), dtype=np.uint8, offset=16)
    labels = np.frombuffer(_raw(f"{kind}-labels-idx1-ubyte.gz"), dtype=np.uint8, offset=8)
    return images.reshape(len(labels), 784), labels


def _frame(ids: np.ndarray, images: np.ndarray, labels: np.ndarray | None) -> pd.DataFrame:
    cols = {"id": ids}
    if labels is not None:
        cols["label"] = labels.astype(np.int64)
    frame = pd.DataFrame(cols)
    pixels = pd.DataFrame(images.astype(np.int64), columns=[f"pixel{i}" for i in range(784)])
    return pd.concat([frame, pixels], axis=1)


def prepare(public: Path, private: Path) -> None:
    public, private = Path(public), Path(private)
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    x_tr, y_tr = load_split("train")
    x_te, y_te = load_split("t10k")
    tr = np.sort(rng.choice(len(y_tr), N_TRAIN, replace=False))
    te = np.sort(rng.choice(len(y_te), N_TEST, replace=False))
    train_ids = np.arange(N_TRAIN)
    test_ids = np.arange(N_TRAIN, N_TRAIN + N_TEST)
    _frame(train_ids, x_tr[tr], y_tr[tr]).to_csv(public / "train.csv", index=False)
    _frame(test_ids, x_te[te], None).to_csv(public / "test.csv", index=False)
    pd.DataFrame({"id": test_ids, "label": 0}).to_csv(public / "sample_submission.csv", index=False)
    pd.DataFrame({"id": test_ids, "label": y_te[te].astype(np.int64)}).to_csv(
        private / "answers.csv", index=False)
