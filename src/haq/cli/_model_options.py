"""MODEL, ``--input-shape``, ``--allow-reuse`` and ``--device``: one meaning in every command.

MODEL is a zoo name (`haq models`) or ``path/to/file.py:factory`` (a function returning an
``nn.Module``, called with no arguments). The input shape a model is traced at is checked
against the data before any work, so a cost table is never priced at another resolution than
the one the model is scored at.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_HELP = "zoo model name (`haq models`), or path/to/file.py:factory"
INPUT_SHAPE_HELP = ("C,H,W of one input sample (e.g. 3,32,32): traces a file.py model; "
                    "checked against the data")
ALLOW_REUSE_HELP = ("a layer called several times per forward gets one bit setting (a file.py "
                    "model needs --input-shape)")
DEVICE_HELP = "where the model runs: auto (CUDA if available), cpu or cuda"


@dataclass
class ModelChoice:
    """What MODEL names, resolved once.

    Attributes:
        net: the zoo name (built later, with or without weights) or the user's ``nn.Module``.
        name: display name: the zoo name or the model file's stem.
        shape: the (C, H, W) the model is traced at; ``None`` for a file model without
            ``--input-shape`` (then the data decides).
        specs: layers traced at ``shape``, or ``None`` when the default trace will do.
        dataset: the zoo model's own dataset (``None`` for a file model).
    """

    net: Any
    name: str
    shape: tuple[int, ...] | None
    specs: list[Any] | None
    dataset: str | None

    @property
    def is_zoo(self) -> bool:
        return isinstance(self.net, str)

    @property
    def has_weights(self) -> bool:
        """A zoo model that ships trained weights, or the user's model (trained or not)."""
        from haq.models import info

        return not self.is_zoo or info(self.net).has_weights

    def module(self, pretrained: bool = True) -> Any:
        """A fresh ``nn.Module``: the zoo model (``pretrained``: with its shipped weights, an
        error for a cost-only one), or a copy of the user's model."""
        if not self.is_zoo:
            return copy.deepcopy(self.net)
        from haq.models import create

        return create(self.net, pretrained=pretrained)

    def layer_specs(self) -> list[Any]:
        """The layers, traced at ``shape`` (the zoo model's example input for a zoo name)."""
        if self.specs is not None:
            return self.specs
        from haq.errors import ConfigError

        if self.shape is None:
            raise ConfigError(f"{self.name} needs --input-shape C,H,W to be traced")
        return _trace(self.module(pretrained=False), self.shape, allow_reuse=False)


def choose_model(model: str, input_shape: str | None = None, allow_reuse: bool = False, *,
                 needs_shape: bool = False) -> ModelChoice:
    """Resolve MODEL with its options; every mistake is a ``ConfigError`` before any work.

    Args:
        needs_shape: the command has no data to take a file model's shape from (``specs``,
            ``cost table``, ``hw profile``), so ``--input-shape`` is required for one.
    """
    from haq.errors import ConfigError

    shape = parse_shape(input_shape)
    if ".py:" not in model:
        from haq.models import info

        about = info(model)  # an unknown name lists the zoo
        if shape is not None and shape != tuple(about.input_shape):
            raise ConfigError(f"{model} takes inputs of {_text(about.input_shape)} (C,H,W), "
                              f"not --input-shape {_text(shape)}; drop --input-shape, or give "
                              "your own model as file.py:factory")
        specs = None
        if allow_reuse:
            from haq.models import create

            specs = _trace(create(model), tuple(about.input_shape), allow_reuse=True)
        return ModelChoice(model, model, tuple(about.input_shape), specs, about.dataset)
    if shape is None and (allow_reuse or needs_shape):
        why = "--allow-reuse needs" if allow_reuse else "this command has no data, so it needs"
        raise ConfigError(f"{why} --input-shape C,H,W to trace the model {model} (e.g. "
                          "--input-shape 3,32,32)")
    net = _load_factory(model)
    specs = _trace(net, shape, allow_reuse) if shape is not None else None
    return ModelChoice(net, Path(model.rpartition(":")[0]).stem, shape, specs, None)


def dataset_for(choice: ModelChoice, dataset: str | None) -> str:
    """``--dataset``, or the zoo model's own; a file model has none, so it must be given."""
    from haq.errors import ConfigError

    if dataset is not None:
        return dataset
    if choice.dataset is None:
        raise ConfigError("a model given as file.py:factory needs --dataset (fashion-mnist, "
                          "digits or synthetic) or --data (your folder or file.py:factory)")
    return choice.dataset


def check_data_shape(choice: ModelChoice, data_shape: tuple[int, ...], data_name: str) -> None:
    """Refuse data whose samples are not the shape the model was traced (and priced) at."""
    from haq.errors import ConfigError

    if choice.shape is None or tuple(data_shape) == tuple(choice.shape):
        return
    traced = (f"{choice.name} takes inputs of {_text(choice.shape)}" if choice.is_zoo
              and choice.specs is None else f"the model is traced at --input-shape "
              f"{_text(choice.shape)}")
    raise ConfigError(f"{traced} (C,H,W) but {data_name} samples are {_text(data_shape)}; give "
                      f"--input-shape {_text(data_shape)} with a model built for that data, or "
                      "data of the model's shape")


def load_data(choice: ModelChoice, dataset: str | None, data_dir: Path | None = None,
              chosen: Any = None) -> Any:
    """The splits MODEL is scored on, their shape checked against MODEL's: the user's
    ``--data`` (``chosen``, a ``DataChoice``) if given, else the dataset by name. A zoo model
    keeps the name for ``"synthetic"`` (its data is made at the model's own shape) and when it
    ships no weights (the search then says to use synthetic data)."""
    from haq import data as hdata

    if chosen is not None and chosen.data is not None:
        splits = chosen.source()
        check_data_shape(choice, splits.input_shape, splits.name)
        return splits
    name = dataset_for(choice, dataset)
    if choice.is_zoo:
        if name.lower() == "synthetic" or not choice.has_weights:
            return name
    splits = hdata.load(name, root=data_dir)
    check_data_shape(choice, splits.input_shape, splits.name)
    return splits


def calibrated(float_net: Any, policy: Any, splits: Any, config: Any, *, seed: int = 0,
               calib_batches: int = 8, device: Any = "cpu") -> tuple[Any, list[Any]]:
    """(a quantized copy of ``float_net`` on ``device``, its calibration batches): calibrated as
    `haq search --seed` does, on the first ``calib_batches`` batches of 128 of the train split
    shuffled with ``seed``. ``float_net`` itself is left as it is."""
    import copy

    from haq.quantize import apply_policy_
    from haq.search import calibration_batches

    model = copy.deepcopy(float_net).to(device)
    calibration = calibration_batches(splits.train, seed, calib_batches)
    apply_policy_(model, policy, calibration, config)
    return model, calibration


def choose_device(device: str) -> Any:
    """``--device`` as a checked ``torch.device`` (a missing CUDA is refused up front)."""
    from haq.device import resolve_device

    return resolve_device(device)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3,32,32"`` -> ``(3, 32, 32)``; ``None`` stays ``None``."""
    from haq.errors import ConfigError

    if text is None or not text.strip():
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise ConfigError(f"--input-shape {text!r} must be positive integers C,H,W, e.g. "
                          "1,28,28")
    return shape


def example_batch(shape: tuple[int, ...], batch: int = 1) -> Any:
    """A deterministic standard-normal batch of ``shape`` samples (as the zoo's)."""
    import torch

    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))


def _text(shape: Any) -> str:
    return ",".join(str(v) for v in shape)


def _load_factory(target: str) -> Any:
    """``path/to/file.py:factory`` -> the nn.Module the factory returns, in eval mode."""
    from torch import nn

    from haq.errors import ConfigError
    from haq.usercode import call_factory

    model = call_factory(target, "model factory")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{target} returned {type(model).__name__}, not an nn.Module")
    return model.eval()


def _trace(net: Any, shape: tuple[int, ...], allow_reuse: bool) -> list[Any]:
    """Specs of ``net`` on a zero input of ``shape``; a shape the model cannot take is the
    user's mistake, so it is a one-line error."""
    import torch

    from haq.errors import ConfigError, HaqError
    from haq.specs import extract_specs
    from haq.usercode import one_line

    try:
        return list(extract_specs(net, torch.zeros(1, *shape), allow_reuse=allow_reuse))
    except HaqError:
        raise
    except Exception as err:
        raise ConfigError(f"--input-shape {_text(shape)} does not fit the model "
                          f"({one_line(err)}); give the C,H,W of one input sample") from None
