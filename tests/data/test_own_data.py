"""The user's own data: image folders, factories, plain Datasets/DataLoaders, label checks."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from haq.data import (
    ImageTransform,
    as_splits,
    check_fits,
    first_batch,
    from_factory,
    head,
    image_folder,
    loader,
)
from haq.errors import ConfigError, DatasetError, LabelError


def _net(classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))


def test_image_folder_reads_classes_splits_and_normalises(digits_folder) -> None:
    data = image_folder(digits_folder, grayscale=True, mean=[0.5], std=[0.25])
    assert data.classes == tuple(str(d) for d in range(10))
    assert (len(data.train), len(data.heldout), len(data.test)) == (120, 60, 60)
    assert data.input_shape == (1, 8, 8) and data.test_source == "test"
    x, y = data.train[13]  # class 1, second file
    assert int(y) == 1 and x.shape == (1, 8, 8) and x.dtype == torch.float32
    import numpy as np
    from PIL import Image
    with Image.open(data.train.files[13]) as image:
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32))
    torch.testing.assert_close(x[0], (pixels / 255 - 0.5) / 0.25)
    assert data.train.targets.tolist() == sorted(data.train.targets.tolist())
    rgb = image_folder(digits_folder, resize=(16, 12))
    assert rgb.input_shape == (3, 16, 12) and rgb.train[0][0].shape == (3, 16, 12)


def test_without_test_folder_heldout_stands_in(tmp_path, make_folder) -> None:
    data = image_folder(make_folder(tmp_path / "d", test=False), grayscale=True)
    assert data.test is data.heldout and data.test_source == "heldout"


def test_image_folder_is_read_lazily_one_batch_at_a_time(digits_folder, monkeypatch) -> None:
    opened: list[str] = []
    real = ImageTransform.__call__

    def counting(self, path):
        opened.append(path.name)
        return real(self, path)

    monkeypatch.setattr(ImageTransform, "__call__", counting)
    data = image_folder(digits_folder, grayscale=True)
    assert len(opened) == 1  # only the first train image, for the input shape
    batches = iter(loader(data.train, 16, shuffle=True, seed=0))
    x, _ = next(batches)
    assert x.shape == (16, 1, 8, 8) and len(opened) == 17  # the batch, and nothing more
    check_fits(_net(), data)  # labels come from the file list, not from decoding images
    assert len(opened) == 18


def test_folder_errors_name_the_problem(tmp_path, digits_folder, make_folder) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        image_folder(tmp_path / "nowhere")
    (digits_folder / "val" / "9").rename(digits_folder / "val" / "nine")
    with pytest.raises(DatasetError, match=r"differ: \['9', 'nine'\]"):
        image_folder(digits_folder)
    (digits_folder / "val" / "nine").rename(digits_folder / "val" / "9")
    for image in (digits_folder / "train" / "3").iterdir():
        image.unlink()
    with pytest.raises(DatasetError, match=r"train/3 has no image"):
        image_folder(digits_folder)
    bad = make_folder(tmp_path / "bad")
    (bad / "train" / "0" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read image .*0\.png"):
        image_folder(bad)
    with pytest.raises(ConfigError, match=r"mean needs 1 or 3 values \(RGB\), got 2"):
        image_folder(bad, mean=[0.1, 0.2])


def _factory_file(tmp_path, body: str) -> str:
    path = tmp_path / "mydata.py"
    path.write_text(textwrap.dedent(body))
    return f"{path}:splits"


FACTORY = """
import torch
from torch.utils.data import DataLoader, TensorDataset

def splits():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 1, 8, 8, generator=g), torch.arange(40) % 10
    train = TensorDataset(x[:24], y[:24])
    return {"train": train, "val": DataLoader(TensorDataset(x[24:], y[24:]), batch_size=5)}
"""


def test_factory_gives_map_style_and_loader_splits(tmp_path) -> None:
    data = from_factory(_factory_file(tmp_path, FACTORY))
    assert data.name == "mydata" and data.input_shape == (1, 8, 8)
    assert isinstance(data.heldout, DataLoader) and data.test is data.heldout
    assert [len(y) for _, y in loader(data.heldout, 128)] == [5, 5, 5, 1]  # its own batch size
    assert [len(y) for _, y in head(data.heldout, 12)] == [5, 5, 2]
    assert as_splits(_factory_file(tmp_path, FACTORY)).input_shape == (1, 8, 8)
    check_fits(_net(), data)


@pytest.mark.parametrize(("body", "message"), [
    ("def splits():\n    return 3\n", "returned int"),
    ("def splits():\n    return {'train': [1, 2]}\n", "train split is a list"),
    ("def splits():\n    raise RuntimeError('no disk')\n", "raised RuntimeError: no disk"),
    ("import torch\ndef splits():\n    d = torch.utils.data.TensorDataset(torch.zeros(2, 3))\n"
     "    return {'train': d}\n", "no heldout split"),
    ("def other():\n    pass\n", "has no function 'splits'"),
])
def test_factory_errors_are_config_errors(tmp_path, body, message) -> None:
    with pytest.raises(ConfigError, match=message):
        from_factory(_factory_file(tmp_path, body))


class Stream(IterableDataset):
    """Samples made on the fly, no length: what haq must read in order, batch by batch."""

    def __init__(self, count: int, label_offset: int = 0) -> None:
        self.count, self.offset = count, label_offset

    def __iter__(self):
        g = torch.Generator().manual_seed(1)
        for i in range(self.count):
            yield torch.randn(1, 8, 8, generator=g), torch.tensor((i + self.offset) % 10)


def test_iterable_splits_are_streamed_and_cut_to_the_first_samples() -> None:
    data = as_splits({"train": Stream(50), "heldout": Stream(30)})
    assert data.input_shape == (1, 8, 8)
    assert sum(len(y) for _, y in loader(head(data.heldout, 12), 5)) == 12
    assert [int(v) for v in first_batch(data.heldout, 4)[1]] == [0, 1, 2, 3]
    check_fits(_net(), data)


def test_labels_past_the_outputs_are_a_config_error_naming_the_fix() -> None:
    x = torch.zeros(8, 1, 8, 8)
    inside = TensorDataset(x, torch.arange(8) % 4)
    data = as_splits({"train": inside, "heldout": Stream(20, label_offset=3)})
    with pytest.raises(LabelError, match="heldout split has label 9, but the model has 4 "
                                         r"outputs \(labels 0-3\); give the model one output"):
        check_fits(_net(4), data)
    with pytest.raises(ConfigError):  # LabelError is a ConfigError
        check_fits(_net(4), data)
    check_fits(_net(10), data)


def test_bad_collections_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown split name"):
        as_splits({"train": Stream(2), "heldout": Stream(2), "tests": Stream(2)})
    with pytest.raises(ConfigError, match="data must be a dataset name"):
        as_splits(42)
    with pytest.raises(ConfigError, match="an image folder"):
        as_splits("no-such-dataset")


def test_a_string_is_a_builtin_name_first_then_a_folder(digits_folder, monkeypatch) -> None:
    monkeypatch.chdir(digits_folder.parent)  # a folder named "digits" in the working directory
    assert as_splits("digits").name == "digits" and len(as_splits("digits").train) > 1000
    assert len(as_splits("./digits").train) == 120  # the folder, by its path
