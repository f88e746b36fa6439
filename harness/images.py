"""A folder of the user's own images for a case (`--set face_dir=...`, `--set image_dir=...`):
found in one place, each centre-cropped to a square and resized, so every case reads folders alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff"}


def image_paths(folder: str) -> list[Path]:
    """The images in `folder`, sorted by name; none is an error that names the suffixes looked for."""
    paths = sorted(p for p in Path(folder).expanduser().iterdir() if p.suffix.lower() in SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(SUFFIXES))}) in {folder}")
    return paths


def square(path: Path, size: int, grey: bool) -> np.ndarray:
    """One image as float in [0, 1], centre-cropped to a square and resized to size x size (with
    anti-aliasing): grey (size x size) or RGB (size x size x 3; a grey image copied to 3 channels)."""
    from skimage import color, io, transform, util

    image = util.img_as_float(io.imread(path))
    if grey:
        image = color.rgb2gray(image[..., :3]) if image.ndim == 3 else image
    else:
        image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return transform.resize(image[top : top + side, left : left + side], (size, size), anti_aliasing=True)
