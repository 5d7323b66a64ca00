"""Fixed, seeded, saved splits: which training examples are held out for search-time scoring.

A split file records the held-out (and, for datasets without an official test set, test)
indices; the train split is every other index. It also records the seed that made them and the
SHA-256 of the data they index, so that a changed dataset is detected rather than re-split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from haq.errors import DatasetError
from haq.runs import atomic_write_text

SPLITS_DIR = Path(__file__).parent / "splits"


@dataclass(frozen=True)
class SplitIndices:
    """Disjoint, sorted index sets into one array of examples.

    ``test`` is empty when the dataset ships its own test set (Fashion-MNIST).
    """

    train: np.ndarray
    heldout: np.ndarray
    test: np.ndarray


def data_checksum(*arrays: np.ndarray) -> str:
    """SHA-256 over the raw bytes (and shapes) of the arrays, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def stratified_split(labels: np.ndarray, heldout_per_class: int, seed: int,
                     test_per_class: int = 0) -> SplitIndices:
    """Set aside ``test_per_class`` then ``heldout_per_class`` examples of every class.

    Each class is shuffled once by a generator seeded with ``seed``; its first examples go to
    test, the next to held-out, the rest to train.

    Raises:
        DatasetError: a class is too small to keep at least one training example.
    """
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        if len(members) <= heldout_per_class + test_per_class:
            raise DatasetError(
                f"class {cls} has {len(members)} examples, too few to set aside "
                f"{test_per_class} test + {heldout_per_class} held-out; use smaller sizes")
        test.append(members[:test_per_class])
        held.append(members[test_per_class:test_per_class + heldout_per_class])
    return _complete(len(labels), np.concatenate(held), np.concatenate(test))


def _complete(num_examples: int, heldout: np.ndarray, test: np.ndarray) -> SplitIndices:
    mask = np.ones(num_examples, dtype=bool)
    mask[heldout] = False
    mask[test] = False
    return SplitIndices(train=np.flatnonzero(mask), heldout=np.sort(heldout).astype(np.int64),
                        test=np.sort(test).astype(np.int64))


def save_split(path: Path, split: SplitIndices, *, dataset: str, seed: int,
               checksum: str) -> None:
    """Write a split file (held-out and test indices, seed, data checksum) atomically."""
    total = len(split.train) + len(split.heldout) + len(split.test)
    payload = {
        "dataset": dataset, "num_examples": int(total), "seed": seed, "sha256": checksum,
        "heldout": [int(i) for i in split.heldout], "test": [int(i) for i in split.test],
    }
    atomic_write_text(path, json.dumps(payload, separators=(",", ":")) + "\n")


def load_split(path: Path, checksum: str, num_examples: int) -> SplitIndices:
    """Read a split file and check that it was made for exactly this data.

    Raises:
        DatasetError: the file is missing or malformed, or the data checksum differs.
    """
    try:
        payload = json.loads(path.read_text())
        heldout = np.asarray(payload["heldout"], dtype=np.int64)
        test = np.asarray(payload.get("test", []), dtype=np.int64)
        recorded, size = str(payload["sha256"]), int(payload["num_examples"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"split file {path} is missing or malformed: {err}") from err
    if recorded != checksum or size != num_examples:
        raise DatasetError(
            f"the data does not match split file {path.name}: it was made for {size} examples "
            f"with sha256 {recorded[:12]}..., found {num_examples} with sha256 {checksum[:12]}.... "
            "The dataset files changed or are not the official release; reinstall them "
            "(`sudo apt-get install --reinstall dataset-fashion-mnist`) or point --data-dir at "
            "the official files")
    return _complete(num_examples, heldout, test)
