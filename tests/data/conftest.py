"""An image folder made from scikit-learn's digits (8x8 grayscale PNGs), for the folder tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_digits_folder(root: Path, per_class: tuple[int, int, int] = (12, 6, 6),
                        classes: int = 10, test: bool = True) -> Path:
    """``root/train|val|test/<digit>/<i>.png`` with the first images of each digit."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    names = ("train", "val", "test") if test else ("train", "val")
    for label in range(classes):
        images = digits.images[digits.target == label]
        start = 0
        for split, count in zip(names, per_class, strict=False):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for i, pixels in enumerate(images[start:start + count]):
                Image.fromarray((pixels * 16).clip(0, 255).astype(np.uint8)).save(
                    folder / f"{i}.png")
            start += count
    return root


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    return write_digits_folder(tmp_path / "digits")


@pytest.fixture
def make_folder():
    """``write_digits_folder`` itself, for tests that need a changed or second folder."""
    return write_digits_folder
