"""Synthetic images labelled by a model's own float predictions, made on demand.

Searching a model that has no trained weights (the ImageNet-shaped zoo models) needs data of its
input shape whose accuracy means something. Here every image is drawn from its own generator,
seeded by (seed, split, index), so nothing is held in memory but the labels; a label is the
float model's top-1 class for that image, computed a chunk of images at a time the first time
any image of the chunk is read. Top-1 on this data is then agreement with the float model:
100% for the float model itself, and the drop under a policy is what quantization changed.
"""

from __future__ import annotations

import copy
import hashlib

import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn
from torch.utils.data import Dataset

# Coarse grids of random values, bilinearly upsampled and summed with weights, give images with
# structure at several scales (a random network's prediction depends on more than pixel noise).
_SCALES = ((4, 1.0), (16, 0.5), (64, 0.25))
_NOISE = 0.1


def _image_seed(seed: int, split: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}|{split}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def synthetic_image(shape: tuple[int, int, int], seed: int, split: str, index: int
                    ) -> torch.Tensor:
    """One image of ``shape`` (C, H, W), the same for the same (seed, split, index).

    Roughly zero mean and unit variance per pixel, like normalised photographs.
    """
    channels, height, width = shape
    generator = torch.Generator().manual_seed(_image_seed(seed, split, index))
    image = _NOISE * torch.randn(1, channels, height, width, generator=generator)
    for side, weight in _SCALES:
        grid = torch.randn(1, channels, min(side, height), min(side, width), generator=generator)
        image += weight * F.interpolate(grid, size=(height, width), mode="bilinear",
                                        align_corners=False)
    total = (_NOISE ** 2 + sum(w ** 2 for _, w in _SCALES)) ** 0.5
    return (image / total)[0]


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode without gradients: a teacher later training leaves be."""
    frozen = copy.deepcopy(model).eval()
    for param in frozen.parameters():
        param.requires_grad_(False)
    return frozen


class TeacherLabelled(Dataset):
    """``size`` synthetic images of ``shape``; label = the teacher's top-1 class, made lazily.

    Args:
        teacher: the float model, used as is: it must not change while labels are still to be
            made (``frozen_copy`` makes one copy that several splits can share).
        shape: (C, H, W) of one image.
        size: number of images.
        seed: with ``split``, decides every image.
        split: name mixed into the image seeds, so splits of one seed are disjoint.
        chunk: images labelled per teacher forward pass.
    """

    def __init__(self, teacher: nn.Module, shape: tuple[int, int, int], size: int, seed: int,
                 split: str, chunk: int = 32) -> None:
        self.teacher = teacher
        self.shape, self.size, self.seed, self.split = shape, size, seed, split
        self.chunk = chunk
        self._labels = torch.full((size,), -1, dtype=torch.int64)

    def __len__(self) -> int:
        return self.size

    def image(self, index: int) -> torch.Tensor:
        return synthetic_image(self.shape, self.seed, self.split, index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} images")
        index %= self.size
        if self._labels[index] < 0:
            self._label_chunk(index // self.chunk)
        return self.image(index), self._labels[index]

    def labels(self) -> torch.Tensor:
        """Every label (computing those not yet made)."""
        for start in range(0, self.size, self.chunk):
            if self._labels[start] < 0:
                self._label_chunk(start // self.chunk)
        return self._labels.clone()

    @torch.no_grad()
    def _label_chunk(self, chunk: int) -> None:
        indices = range(chunk * self.chunk, min((chunk + 1) * self.chunk, self.size))
        images = torch.stack([self.image(i) for i in indices])
        self.teacher.eval()
        self._labels[indices.start:indices.stop] = self.teacher(images).argmax(dim=1)
