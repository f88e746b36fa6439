"""Faces in [-1, 1], the post's pixel range, and a fixed train / held-out split.

Default: the 100 faces of `skimage.data.lfw_subset()` (25x25 grey, already in [0, 1]; its other
100 images are not faces). `face_dir` points at a folder of face images instead (any size, colour
or grey): each is turned grey, centre-cropped to a square and resized to `size` x `size`.
"""

from __future__ import annotations

import numpy as np
import torch

from failbench.images import image_paths, square

LFW_FACES = 100  # skimage's docs: the first 100 images of lfw_subset are faces


def load_faces(face_dir: str = "", size: int = 25) -> torch.Tensor:
    """N x 1 x size x size float32 in [-1, 1] (the post: "normalized in the range [-1, 1]")."""
    if face_dir:
        faces = np.stack([square(path, size, grey=True) for path in image_paths(face_dir)])
    else:
        from skimage.data import lfw_subset

        faces = lfw_subset()[:LFW_FACES]
        if faces.shape[1:] != (size, size):
            raise ValueError(f"lfw_subset faces are 25x25; image_size={size} needs a face_dir")
    return torch.tensor(faces, dtype=torch.float32)[:, None] * 2.0 - 1.0


def split(faces: torch.Tensor, n_train: int, n_held_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n_train faces to train on, the last n_held_out to judge; never overlapping."""
    if n_train + n_held_out > len(faces):
        raise ValueError(f"{n_train} train + {n_held_out} held-out faces, but only {len(faces)} found")
    return faces[:n_train], faces[len(faces) - n_held_out :]
