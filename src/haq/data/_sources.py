"""Where each dataset comes from: Fashion-MNIST IDX files, scikit-learn digits, synthetic data.

Each reader returns raw arrays plus the fixed split; ``haq.data.load`` turns them into tensors.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from haq.data._idx import parse_idx, read_idx_bytes
from haq.data._splits import (
    SPLITS_DIR,
    SplitIndices,
    data_checksum,
    load_split,
    save_split,
    stratified_split,
)
from haq.errors import DatasetError
from haq.runs import atomic_write

DEFAULT_FMNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# SHA-256 of the *decompressed* IDX payloads of the official release: the same whichever gzip
# produced the .gz (the Debian package recompresses them, so .gz hashes differ from upstream).
FMNIST_SHA256 = {
    "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot")
# Pixel mean/std of the 60k training images scaled to [0, 1] (measured, rounded to 4 places).
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
FMNIST_HELDOUT_PER_CLASS = 500  # 5,000 held-out images, the rest (55,000) train
DIGITS_MEAN, DIGITS_STD = 0.3053, 0.3760
DIGITS_TEST_PER_CLASS, DIGITS_HELDOUT_PER_CLASS = 36, 18
SPLIT_SEED = 0

INSTALL_HINT = (
    "Install it with `sudo apt-get install dataset-fashion-mnist` (or `make data`), pass "
    "--data-dir / root= a directory holding the four IDX .gz files, set HAQ_DATA_DIR, or "
    "download the official files with `haq.data.download(DIR)`.")


@dataclass(frozen=True)
class RawData:
    """Raw arrays of one dataset: uint8 images (``max_value`` is white), int labels, a split."""

    images: np.ndarray
    labels: np.ndarray
    split: SplitIndices
    max_value: float
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None


def resolve_fmnist_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` if given, else ``$HAQ_DATA_DIR``, else the Debian package directory.

    A directory that holds a ``fashion-mnist/`` sub-directory with the files is accepted too.

    Raises:
        DatasetError: the directory or any of the four files is missing.
    """
    if root is None:
        root = os.environ.get("HAQ_DATA_DIR") or DEFAULT_FMNIST_ROOT
    base = Path(root).expanduser()
    for candidate in (base, base / "fashion-mnist"):
        if all((candidate / f).is_file() for f in FMNIST_FILES.values()):
            return candidate
    missing = [f for f in FMNIST_FILES.values() if not (base / f).is_file()]
    where = "does not exist" if not base.is_dir() else f"lacks {', '.join(missing)}"
    raise DatasetError(f"Fashion-MNIST not found: {base} {where}. {INSTALL_HINT}")


def _cache_dir() -> Path:
    explicit = os.environ.get("HAQ_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "haq"


def _cache_key(root: Path) -> str:
    digest = hashlib.sha256(str(root.resolve()).encode())
    for name in FMNIST_FILES.values():
        stat = (root / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _decode_fmnist(root: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for key, name in FMNIST_FILES.items():
        arrays[key] = parse_idx(read_idx_bytes(root / name), source=str(root / name))
    if arrays["train_images"].shape[0] != arrays["train_labels"].shape[0] or \
            arrays["test_images"].shape[0] != arrays["test_labels"].shape[0]:
        raise DatasetError(f"image and label counts differ in {root}; reinstall the dataset")
    return arrays


def _read_fmnist_cached(root: Path) -> tuple[dict[str, np.ndarray], str]:
    """Decode the IDX files once; later calls read a uint8 tensor cache (if writable).

    Returns:
        The four arrays and the checksum of the training images + labels.
    """
    cache = _cache_dir() / f"fashion-mnist-{_cache_key(root)}.pt"
    if cache.is_file():
        try:
            stored = torch.load(cache, map_location="cpu", weights_only=True)
            return {key: stored[key].numpy() for key in FMNIST_FILES}, str(stored["sha256"])
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            pass
    arrays = _decode_fmnist(root)
    checksum = data_checksum(arrays["train_images"], arrays["train_labels"])
    payload: dict[str, object] = {k: torch.from_numpy(np.array(a)) for k, a in arrays.items()}
    payload["sha256"] = checksum
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        atomic_write(cache, lambda handle: handle.write(buffer.getvalue()))
    except OSError:
        pass  # read-only home: decode again next time
    return arrays, checksum


def read_fashion_mnist(root: str | os.PathLike[str] | None = None) -> RawData:
    """Fashion-MNIST from IDX files, with the shipped 55k/5k split checked against the data.

    Raises:
        DatasetError: files missing or corrupt, or the data differs from what the split file
            was made for.
    """
    arrays, checksum = _read_fmnist_cached(resolve_fmnist_root(root))
    labels = arrays["train_labels"]
    split = load_split(SPLITS_DIR / "fashion-mnist.json", checksum, len(labels))
    return RawData(images=arrays["train_images"], labels=labels, split=split, max_value=255.0,
                   test_images=arrays["test_images"], test_labels=arrays["test_labels"])


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)


def read_digits() -> RawData:
    """scikit-learn's 8x8 digits (1,797 images, 10 classes) with the shipped 3-way split."""
    images, labels = _digits_arrays()
    split = load_split(SPLITS_DIR / "digits.json", data_checksum(images, labels), len(labels))
    return RawData(images=images, labels=labels, split=split, max_value=16.0)


def write_split_files(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Regenerate the shipped split files from the data (maintainers only; seed ``SPLIT_SEED``).

    Returns:
        The paths written.
    """
    arrays = _decode_fmnist(resolve_fmnist_root(root))
    fm_images, fm_labels = arrays["train_images"], arrays["train_labels"]
    fm_path = SPLITS_DIR / "fashion-mnist.json"
    save_split(fm_path, stratified_split(fm_labels, FMNIST_HELDOUT_PER_CLASS, SPLIT_SEED),
               dataset="fashion-mnist", seed=SPLIT_SEED,
               checksum=data_checksum(fm_images, fm_labels))
    d_images, d_labels = _digits_arrays()
    d_path = SPLITS_DIR / "digits.json"
    save_split(d_path, stratified_split(d_labels, DIGITS_HELDOUT_PER_CLASS, SPLIT_SEED,
                                        test_per_class=DIGITS_TEST_PER_CLASS),
               dataset="digits", seed=SPLIT_SEED, checksum=data_checksum(d_images, d_labels))
    return [fm_path, d_path]


def synthetic_arrays(num_classes: int, input_shape: tuple[int, ...], size: int, seed: int,
                     noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around one random smooth prototype image per class."""
    rng = np.random.default_rng(seed)
    prototypes = rng.standard_normal((num_classes, *input_shape)).astype(np.float32)
    labels = np.arange(size) % num_classes
    rng.shuffle(labels)
    images = prototypes[labels] + noise * rng.standard_normal((size, *input_shape))
    return images.astype(np.float32), labels.astype(np.int64)
