"""Data the cases train on that ships with a package: nothing is downloaded at run time.

scikit-learn's 1,797 handwritten digits (8x8 pixels, 0..16) serve four cases, each shaping and
scaling them as its post did; the split into training and test digits is the data set's, the same
for every case and every run.
"""

from __future__ import annotations

from functools import cache

import torch

DIGITS_TRAIN = 1400  # of the 1,797; the other 397 are the test set
DIGITS_SPLIT_SEED = 0  # the split is part of the data set, not of a run


@cache
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.tensor(digits.images, dtype=torch.float32), torch.tensor(digits.target, dtype=torch.int64)


def digits(device: torch.device) -> tuple[torch.Tensor, ...]:
    """train_x, train_y, test_x, test_y on `device`: raw pixels 0..16 as (N, 8, 8) float32, split
    once into 1,400 training and 397 test digits by a fixed permutation that no run seed changes."""
    x, y = _digits()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    train, test = order[:DIGITS_TRAIN], order[DIGITS_TRAIN:]
    return tuple(t.to(device) for t in (x[train], y[train], x[test], y[test]))
