"""Patches of natural photographs, train and held-out from different photographs, no downloads.

Default: the photographs that ship with scikit-image and scikit-learn. Training: four colour photos
(astronaut, coffee, rocket, china) and seven grey ones (camera, coins, clock, moon, grass, gravel,
brick; grey copied to three channels), so the network cannot simply memorise four pictures. Held out:
two other colour photos (chelsea, flower). A photo is rescaled so its short side is twice the patch
size: a patch then shows a large piece of the scene, as a 64x64 MSCOCO thumbnail does, at any patch
size. Training patches are random crops (and mirror images) drawn afresh at every step, from each
photo at that scale and at twice it; the held-out patches are a fixed grid, never trained on.

`image_dir` points at a folder of images instead (the class project used MSCOCO at 64x64): each is
centre-cropped to a square and resized to the patch size; the last `held_out_images` are held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from failbench.images import image_paths, square

TRAIN_PHOTOS = (
    "astronaut",
    "coffee",
    "rocket",
    "china",
    "camera",
    "coins",
    "clock",
    "moon",
    "grass",
    "gravel",
    "brick",
)
HELD_OUT_PHOTOS = ("chelsea", "flower")  # a cat and a flower: neither subject is in the train photos


def photo(name: str) -> np.ndarray:
    """One shipped photograph, H x W x 3 float in [0, 1]."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    return image[..., :3].astype(np.float32) / 255.0


def rescaled(image: np.ndarray, short_side: int) -> np.ndarray:
    from skimage.transform import rescale

    return rescale(image, short_side / min(image.shape[:2]), anti_aliasing=True, channel_axis=-1).astype(np.float32)


def grid_patches(image: np.ndarray, size: int) -> list[np.ndarray]:
    """Crops on a grid of stride size/2 (half-overlapping), the same layout at any patch size."""
    h, w = image.shape[:2]
    step = size // 2
    return [
        image[top : top + size, left : left + size]
        for top in range(0, h - size + 1, step)
        for left in range(0, w - size + 1, step)
    ]


def _folder(image_dir: str, size: int) -> np.ndarray:
    paths = image_paths(image_dir)
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)  # uint8: 80k MSCOCO images fit in 1 GB
    for i, path in enumerate(paths):
        out[i] = np.round(square(path, size, grey=False) * 255)
    return out


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(*range(array.ndim - 3), -1, -3, -2)


@dataclass
class Patches:
    """Where training batches come from, and the fixed held-out patches (N x 3 x size x size)."""

    size: int
    held_out: torch.Tensor
    photos: list[torch.Tensor]  # 3 x H x W training photos to crop from (default data)
    images: torch.Tensor | None = None  # N x 3 x size x size uint8 training images (image_dir)

    def batch(self, n: int, device: torch.device) -> torch.Tensor:
        """n training patches in [0, 1], drawn with torch's global generator (seeded by the runner)."""
        if self.images is not None:
            picked = self.images[torch.randint(len(self.images), (n,))].float() / 255.0
        else:
            which = torch.randint(len(self.photos), (n,)).tolist()
            crops = []
            for i in which:
                source = self.photos[i]
                top = int(torch.randint(source.shape[1] - self.size + 1, ()))
                left = int(torch.randint(source.shape[2] - self.size + 1, ()))
                crops.append(source[:, top : top + self.size, left : left + self.size])
            picked = torch.stack(crops)
        flip = torch.rand(n) < 0.5  # mirror images: a scene read left-to-right is as likely
        picked[flip] = picked[flip].flip(-1)
        return picked.to(device).contiguous(memory_format=torch.channels_last)


@lru_cache(maxsize=1)  # a worker runs many grid points: rescaling the 13 photos costs ~1 s of CPU each time
def load(size: int, image_dir: str = "", held_out_images: int = 1000) -> Patches:
    """The patches, read once per process; nothing downstream writes to them (batches are copies)."""
    if image_dir:
        images = _chw(_folder(image_dir, size))
        if len(images) <= held_out_images:
            raise ValueError(f"{len(images)} images in {image_dir}, need more than {held_out_images} held out")
        return Patches(size, images[-held_out_images:].float() / 255.0, [], images[:-held_out_images])
    train = [_chw(rescaled(photo(n), k * size)) for n in TRAIN_PHOTOS for k in (2, 4)]
    held = [p for n in HELD_OUT_PHOTOS for p in grid_patches(rescaled(photo(n), 2 * size), size)]
    return Patches(size, _chw(np.stack(held)), train)
