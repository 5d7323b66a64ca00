"""Read IDX files (the MNIST / Fashion-MNIST container format), gzipped or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from haq.errors import DatasetError

# IDX type codes (third byte of the magic number) -> numpy dtype; big-endian on disk.
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx_bytes(path: Path) -> bytes:
    """The decompressed bytes of an IDX file (``.gz`` is decompressed, anything else read)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:
        raise DatasetError(
            f"cannot read {path}: {err}. The file is missing or corrupt; reinstall the dataset "
            "(`sudo apt-get install --reinstall dataset-fashion-mnist`) or pass --data-dir."
        ) from err


def parse_idx(raw: bytes, source: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes into an array of the shape the header declares.

    Raises:
        DatasetError: the header is malformed or the payload is shorter/longer than declared.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DatasetError(f"{source} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{source} is truncated inside its IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"{source} declares shape {shape} ({expected} bytes) but holds "
            f"{len(raw) - header} bytes; the file is corrupt, reinstall the dataset")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (used to build test fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())
