"""Faces in [-1, 1], the post's pixel range, and a fixed train / held-out split.

Default: the 100 faces of `skimage.data.lfw_subset()` (25x25 grey, already in [0, 1]; its other
100 images are not faces). `face_dir` points at a folder of face images instead (any size, colour
or grey): each is turned grey, centre-cropped to a square and resized to `size` x `size`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

LFW_FACES = 100  # skimage's docs: the first 100 images of lfw_subset are faces
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff"}


def _folder(face_dir: str, size: int) -> np.ndarray:
    from skimage import color, io, transform, util

    paths = sorted(p for p in Path(face_dir).expanduser().iterdir() if p.suffix.lower() in SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(SUFFIXES))}) in {face_dir}")
    faces = []
    for path in paths:
        image = util.img_as_float(io.imread(path))
        if image.ndim == 3:
            image = color.rgb2gray(image[..., :3])
        side = min(image.shape)
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        square = image[top:top + side, left:left + side]
        faces.append(transform.resize(square, (size, size), anti_aliasing=True))
    return np.stack(faces)


def load_faces(face_dir: str = "", size: int = 25) -> torch.Tensor:
    """N x 1 x size x size float32 in [-1, 1] (the post: "normalized in the range [-1, 1]")."""
    if face_dir:
        faces = _folder(face_dir, size)
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
    return faces[:n_train], faces[len(faces) - n_held_out:]
