"""Image folders: ``DIR/train/<class>/*``, ``DIR/val/<class>/*``, optional ``DIR/test/<class>/*``.

Only the file list is read up front; each image is opened, decoded (Pillow), resized and
normalised when a batch asks for it, so memory holds one batch, not the dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from haq.errors import ConfigError, DatasetError

EXTENSIONS = (".png", ".jpg", ".jpeg")
HELDOUT_DIRS = ("val", "heldout")


@dataclass(frozen=True)
class ImageTransform:
    """How one file becomes a tensor: mode, optional resize, per-channel standardisation.

    Attributes:
        grayscale: one channel (Pillow mode "L") instead of three ("RGB").
        resize: (height, width) every image is resized to (bilinear); ``None`` keeps the size,
            which must then be the same for every image.
        mean, std: per-channel (or one for all channels) values subtracted and divided after
            scaling pixels to [0, 1]; ``None`` leaves [0, 1].
    """

    grayscale: bool = False
    resize: tuple[int, int] | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def __post_init__(self) -> None:
        channels = 1 if self.grayscale else 3
        if self.resize is not None and (len(self.resize) != 2 or min(self.resize) < 1):
            raise ConfigError(f"resize must be (height, width) >= 1, got {self.resize}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and len(values) not in (1, channels):
                wanted = "1 value (grayscale)" if channels == 1 else "1 or 3 values (RGB)"
                raise ConfigError(f"{name} needs {wanted}, got {len(values)}")
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError(f"std values must be > 0, got {list(self.std)}")

    def __call__(self, path: Path) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                image = image.convert("L" if self.grayscale else "RGB")
                if self.resize is not None:
                    image = image.resize((self.resize[1], self.resize[0]),
                                         Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32) / 255.0
        except (OSError, UnidentifiedImageError) as err:
            raise DatasetError(f"cannot read image {path}: {err}; remove or replace the "
                               "file") from None
        x = torch.from_numpy(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
        if self.mean is not None:
            x = x - torch.tensor(list(self.mean), dtype=torch.float32)[:, None, None]
        if self.std is not None:
            x = x / torch.tensor(list(self.std), dtype=torch.float32)[:, None, None]
        return x.contiguous()


class ImageFolder(Dataset):
    """The images of one split folder (``<split>/<class>/<file>``), read lazily.

    Args:
        root: the split folder.
        classes: class folder names, index = label (those of the train folder).
        transform: how each file becomes a tensor.

    Attributes:
        files: every image path, sorted by class then name.
        targets: the label of each file (known without opening any image).
    """

    def __init__(self, root: str | Path, classes: Sequence[str],
                 transform: ImageTransform | None = None) -> None:
        self.root, self.classes = Path(root), tuple(classes)
        self.transform = transform or ImageTransform()
        files: list[Path] = []
        targets: list[int] = []
        for label, name in enumerate(self.classes):
            members = sorted(p for p in (self.root / name).iterdir()
                             if p.is_file() and p.suffix.lower() in EXTENSIONS)
            if not members:
                raise DatasetError(f"class folder {self.root / name} has no image "
                                   f"({', '.join(EXTENSIONS)}); add images or remove the folder")
            files += members
            targets += [label] * len(members)
        self.files = files
        self.targets = torch.tensor(targets, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.files[index]), self.targets[index]


def _class_names(split: Path) -> list[str]:
    return sorted(p.name for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))


def folder_splits(root: str | Path, transform: ImageTransform | None = None
                  ) -> tuple[ImageFolder, ImageFolder, ImageFolder | None, tuple[str, ...]]:
    """(train, held-out, test or ``None``, classes) of an image folder.

    Classes are the train folder's subfolder names, sorted; ``val`` (or ``heldout``) and
    ``test`` must have the same class folders.

    Raises:
        DatasetError: a folder is missing, a class folder is empty, or the splits' classes
            differ.
    """
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(f"data folder {base} does not exist; give a folder holding train/ "
                           "and val/ with one subfolder of images per class")
    train_dir = base / "train"
    heldout_dir = next((base / d for d in HELDOUT_DIRS if (base / d).is_dir()), None)
    if not train_dir.is_dir() or heldout_dir is None:
        raise DatasetError(f"{base} needs train/ and val/ subfolders (one folder of images per "
                           "class in each); val/ scores policies, train/ calibrates and trains")
    classes = _class_names(train_dir)
    if len(classes) < 2:
        raise DatasetError(f"{train_dir} has {len(classes)} class folder(s); a classifier "
                           "needs at least two (train/<class>/<image>)")
    test_dir = base / "test"
    for split in (heldout_dir, test_dir):
        if split.is_dir() and _class_names(split) != classes:
            found = _class_names(split)
            diff = sorted(set(found) ^ set(classes))
            raise DatasetError(f"{split} has class folders {found}, but train/ has {classes} "
                               f"(differ: {diff}); give every split the same class folders")
    transform = transform or ImageTransform()
    test = ImageFolder(test_dir, classes, transform) if test_dir.is_dir() else None
    return (ImageFolder(train_dir, classes, transform),
            ImageFolder(heldout_dir, classes, transform), test, tuple(classes))
