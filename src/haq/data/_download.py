"""Optional download of the official Fashion-MNIST files, for machines without the package.

Never used by tests or the demo. Each file's decompressed payload is checked against a SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

from haq.data._sources import FMNIST_FILES, FMNIST_SHA256
from haq.errors import DatasetError
from haq.runs import atomic_write

FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def download(root: str | os.PathLike[str], base_url: str = FMNIST_URL,
             timeout: float = 60.0) -> Path:
    """Download the four Fashion-MNIST IDX ``.gz`` files into ``root`` and verify them.

    Files already present with the right checksum are kept.

    Args:
        root: target directory (created if needed); pass it later as ``load(root=...)``.
        base_url: mirror holding the four files under their official names.
        timeout: seconds per HTTP request.

    Returns:
        ``root`` as a Path.

    Raises:
        DatasetError: a download failed or a file's checksum is wrong.
    """
    target = Path(root).expanduser()
    for key, name in FMNIST_FILES.items():
        path = target / name
        if path.is_file() and _payload_sha256(path) == FMNIST_SHA256[key]:
            continue
        try:
            with urllib.request.urlopen(base_url + name, timeout=timeout) as response:
                blob = response.read()
        except OSError as err:
            raise DatasetError(
                f"download of {base_url + name} failed: {err}. Check the network or install "
                "the Debian package `dataset-fashion-mnist` instead") from err
        digest = hashlib.sha256(gzip.decompress(blob)).hexdigest()
        if digest != FMNIST_SHA256[key]:
            raise DatasetError(
                f"{name} from {base_url} has sha256 {digest}, expected {FMNIST_SHA256[key]}; "
                "the mirror serves different data, try the official URL")
        atomic_write(path, lambda handle, data=blob: handle.write(data))
    return target


def _payload_sha256(path: Path) -> str:
    with gzip.open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
