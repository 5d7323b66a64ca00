"""haq.data: fixed saved splits, checksum and install checks, digits, synthetic data, loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import haq.data as hdata
from haq.data._idx import parse_idx, read_idx_bytes, write_idx
from haq.data._sources import (
    DEFAULT_FMNIST_ROOT,
    FMNIST_FILES,
    _read_fmnist_cached,
    read_fashion_mnist,
)
from haq.data._splits import SPLITS_DIR, load_split, stratified_split
from haq.errors import ConfigError, DatasetError

HAVE_FMNIST = all((DEFAULT_FMNIST_ROOT / f).is_file() for f in FMNIST_FILES.values())
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST, reason="Fashion-MNIST is not installed")


def _fake_fmnist(root: Path, n: int = 60, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / FMNIST_FILES["train_images"], rng.integers(0, 256, (n, 28, 28)))
    write_idx(root / FMNIST_FILES["train_labels"], np.arange(n) % 10)
    write_idx(root / FMNIST_FILES["test_images"], rng.integers(0, 256, (20, 28, 28)))
    write_idx(root / FMNIST_FILES["test_labels"], np.arange(20) % 10)


@pytest.fixture(scope="module")
def fmnist_raw():
    if not HAVE_FMNIST:
        pytest.skip("Fashion-MNIST is not installed")
    return read_fashion_mnist()


@needs_fmnist
def test_fmnist_split_is_fixed_disjoint_and_reproducible(fmnist_raw) -> None:
    split = fmnist_raw.split
    assert len(split.heldout) == 5000 and len(split.train) == 55000 and len(split.test) == 0
    assert np.intersect1d(split.train, split.heldout).size == 0
    assert np.array_equal(np.union1d(split.train, split.heldout), np.arange(60000))
    # stratified: exactly 500 held-out images per class
    assert np.bincount(fmnist_raw.labels[split.heldout], minlength=10).tolist() == [500] * 10
    # regenerating from the recorded seed gives the shipped file
    seed = json.loads((SPLITS_DIR / "fashion-mnist.json").read_text())["seed"]
    again = stratified_split(fmnist_raw.labels, 500, seed)
    assert np.array_equal(again.heldout, split.heldout)
    assert not np.array_equal(stratified_split(fmnist_raw.labels, 500, seed + 1).heldout,
                              split.heldout)


@needs_fmnist
def test_fmnist_load_shapes_and_normalisation() -> None:
    splits = hdata.load("fashion-mnist")
    x, y = splits.train.tensors
    assert x.shape == (55000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert splits.heldout.tensors[0].shape == (5000, 1, 28, 28)
    assert splits.test.tensors[0].shape == (10000, 1, 28, 28)
    assert splits.num_classes == 10 and splits.input_shape == (1, 28, 28)
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1.0) < 0.01
    assert int(y.min()) == 0 and int(y.max()) == 9


def test_changed_data_is_detected(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAQ_CACHE_DIR", str(tmp_path / "cache"))
    _fake_fmnist(tmp_path / "fm")
    with pytest.raises(DatasetError, match="does not match split file"):
        hdata.load("fashion-mnist", root=tmp_path / "fm")


def test_split_checksum_mismatch(tmp_path) -> None:
    labels = np.arange(100) % 10
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"sha256": "ab" * 32, "num_examples": 100, "heldout": [1, 2]}))
    assert len(load_split(path, "ab" * 32, 100).train) == 98
    with pytest.raises(DatasetError, match="does not match"):
        load_split(path, "cd" * 32, 100)
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="malformed"):
        load_split(path, "ab" * 32, 100)
    with pytest.raises(DatasetError, match="too few"):
        stratified_split(labels, 10, seed=0)


def test_missing_directory_says_how_to_install(tmp_path, monkeypatch) -> None:
    with pytest.raises(DatasetError) as err:
        hdata.load("fashion-mnist", root=tmp_path / "nowhere")
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message
    assert "make data" in message and str(tmp_path / "nowhere") in message
    monkeypatch.setenv("HAQ_DATA_DIR", str(tmp_path / "from-env"))
    with pytest.raises(DatasetError, match="from-env"):
        hdata.load("fashion-mnist")


def test_missing_file_is_named(tmp_path) -> None:
    _fake_fmnist(tmp_path)
    (tmp_path / FMNIST_FILES["test_labels"]).unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz"):
        hdata.load("fashion-mnist", root=tmp_path)


def test_idx_round_trip_and_corruption(tmp_path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (5, 3, 4)).astype(np.uint8)
    write_idx(tmp_path / "a.gz", array)
    assert np.array_equal(parse_idx(read_idx_bytes(tmp_path / "a.gz")), array)
    raw = read_idx_bytes(tmp_path / "a.gz")
    with pytest.raises(DatasetError, match="corrupt"):
        parse_idx(raw[:-3])
    with pytest.raises(DatasetError, match="magic"):
        parse_idx(b"\x01\x02\x03\x04" + raw[4:])
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="reinstall"):
        read_idx_bytes(tmp_path / "bad.gz")


def test_decoded_files_are_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAQ_CACHE_DIR", str(tmp_path / "cache"))
    _fake_fmnist(tmp_path / "fm")
    first, checksum = _read_fmnist_cached(tmp_path / "fm")
    cached = list((tmp_path / "cache").glob("fashion-mnist-*.pt"))
    assert len(cached) == 1
    second, again = _read_fmnist_cached(tmp_path / "fm")
    assert again == checksum
    for key in FMNIST_FILES:
        assert np.array_equal(first[key], second[key])
    # a cache location that cannot be written is not an error
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("HAQ_CACHE_DIR", str(blocker / "sub"))
    assert _read_fmnist_cached(tmp_path / "fm")[0]["train_images"].shape == (60, 28, 28)


@pytest.mark.slow
def test_digits_loads_with_fixed_split() -> None:
    splits = hdata.load("digits")
    assert (len(splits.train), len(splits.heldout), len(splits.test)) == (1257, 180, 360)
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10
    x_all = torch.cat([s.tensors[0] for s in (splits.train, splits.heldout, splits.test)])
    assert x_all.shape == (1797, 1, 8, 8)
    # disjoint: the 1,797 digits contain duplicates, so check via the saved indices
    payload = json.loads((SPLITS_DIR / "digits.json").read_text())
    assert not set(payload["heldout"]) & set(payload["test"])
    assert abs(float(x_all.mean())) < 0.05 and abs(float(x_all.std()) - 1) < 0.05
    assert torch.bincount(splits.test.tensors[1]).tolist() == [36] * 10


def test_synthetic_is_seeded() -> None:
    a, b, c = hdata.synthetic(seed=1), hdata.synthetic(seed=1), hdata.synthetic(seed=2)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    assert len(a.train) == 512 and len(a.heldout) == 128 and a.input_shape == (1, 8, 8)
    assert hdata.load("synthetic").num_classes == 4
    with pytest.raises(ConfigError):
        hdata.synthetic(num_classes=1)
    with pytest.raises(ConfigError, match="available"):
        hdata.load("cifar-10")


def test_loader_is_seeded_and_covers_every_sample() -> None:
    data = hdata.TensorDataset(torch.arange(50).float(), torch.arange(50))

    def order(seed: int) -> list[int]:
        return torch.cat([y for _, y in hdata.loader(data, 8, shuffle=True, seed=seed)]).tolist()

    assert order(3) == order(3) and order(3) != order(4)
    assert sorted(order(3)) == list(range(50))
    plain = [y for _, y in hdata.loader(data, 8)]
    assert torch.cat(plain).tolist() == list(range(50)) and len(plain) == 7
    assert len(list(hdata.loader(data, 8, drop_last=True))) == 6
    # two epochs of one loader differ, but replay identically
    loader = hdata.loader(data, 50, shuffle=True, seed=0)
    epochs = [next(iter(loader))[1].tolist() for _ in range(2)]
    assert epochs[0] != epochs[1]
    with pytest.raises(ConfigError):
        hdata.loader(data, 0)


class _Squares(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.tensor([float(i * i)]), i


def test_loader_accepts_any_dataset() -> None:
    batches = list(hdata.loader(_Squares(), 4, shuffle=True, seed=1))
    labels = torch.cat([y for _, y in batches])
    assert sorted(labels.tolist()) == list(range(10))
    for x, y in batches:
        assert torch.equal(x[:, 0], (y * y).float())


def test_loaders_leave_the_global_rng_alone() -> None:
    data = hdata.TensorDataset(torch.arange(20).float(), torch.arange(20))
    state = torch.get_rng_state()
    for shuffle in (False, True):
        for _ in hdata.loader(data, 6, shuffle=shuffle, seed=1):
            pass
    for _ in hdata.loader(_Squares(), 3, shuffle=True):
        pass
    assert torch.equal(torch.get_rng_state(), state)


def test_download_verifies_payload_checksums(tmp_path) -> None:
    fake = tmp_path / "mirror"
    _fake_fmnist(fake)
    with pytest.raises(DatasetError, match="expected"):
        hdata.download(tmp_path / "out", base_url=fake.as_uri() + "/")
    with pytest.raises(DatasetError, match="download of"):
        hdata.download(tmp_path / "out", base_url=(tmp_path / "nowhere").as_uri() + "/")


@needs_fmnist
def test_download_from_a_mirror_gives_the_official_files(tmp_path) -> None:
    # a file:// mirror of the installed files stands in for the network
    root = hdata.download(tmp_path / "fm", base_url=DEFAULT_FMNIST_ROOT.as_uri() + "/")
    assert all((root / f).is_file() for f in FMNIST_FILES.values())
    assert hdata.download(root, base_url="http://invalid.invalid/") == root  # all present


def test_check_fits_refuses_wrong_channels_wrong_outputs_and_labels_past_the_classes() -> None:
    from torch import nn

    check_fits = hdata.check_fits
    data = hdata.synthetic(num_classes=4, input_shape=(1, 8, 8))

    def net(channels: int, classes: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(channels, 2, 3, padding=1), nn.Flatten(),
                             nn.Linear(2 * 64, classes))

    fits = net(1, 4).train()
    check_fits(fits, data)
    assert fits.training  # the model is left as it was
    check_fits(net(1, 10), data)  # more outputs than classes is fine
    with pytest.raises(DatasetError, match=r"synthetic samples of shape \(1, 8, 8\) \(C,H,W\) "
                                           r"do not fit the model \(RuntimeError: "):
        check_fits(net(3, 4), data)
    with pytest.raises(DatasetError, match="train split has label 3, but the model has 3 "
                                           r"outputs \(labels 0-2\)"):
        check_fits(net(1, 3), data)
    with pytest.raises(DatasetError, match=r"returns \(1, 2, 8, 8\) for one synthetic sample"):
        check_fits(nn.Conv2d(1, 2, 3, padding=1), data)
    labels = data.test.tensors[1]
    labels[5] = -1
    with pytest.raises(DatasetError, match="test split has label -1"):
        check_fits(net(1, 4), data)
