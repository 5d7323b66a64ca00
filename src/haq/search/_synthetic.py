"""Search a zoo model on synthetic data labelled by its own float predictions.

``haq.search("resnet50-imagenet", "synthetic", ...)`` needs no dataset and no trained weights:
the model is built with random weights (or its shipped weights, if it has them) and the data is
``haq.data.synthetic_like`` of its input shape, so held-out top-1 is agreement with the float
model. A random network predicts nearly one class for every input (its pooled features share a
large mean), which would make agreement trivially 100%; so a model without weights is first
fitted to the synthetic images, data-dependent-init style: batch-norm statistics re-estimated
on them and the classifier's bias set so that its mean logit over them is zero. Its weights stay
random.
"""

from __future__ import annotations

import torch
from torch import nn

from haq.data import DataSplits, synthetic_image, synthetic_like
from haq.errors import ConfigError
from haq.search._evaluator import reestimate_batchnorm_

# train (calibration: one batch of haq.search.CALIBRATION_BATCH), heldout, test images
SIZES = (128, 512, 128)
FIT_IMAGES = 64
FIT_BATCH = 32


def zoo_on_synthetic(name: str, seed: int = 0, sizes: tuple[int, int, int] | None = None,
                     fit_images: int | None = None) -> tuple[nn.Module, DataSplits]:
    """(float model, synthetic splits) for zoo model ``name``; see the module docstring.

    Args:
        name: a zoo model (``haq models``).
        seed: seeds the random weights and the images.
        sizes: images in the train (calibration), heldout and test splits (``SIZES``).
        fit_images: images the batch norm and the classifier bias of a model without weights
            are fitted on (``FIT_IMAGES``).

    Raises:
        ConfigError: ``name`` is not a zoo model, or ``fit_images`` < 1.
    """
    from haq.models import create, info

    sizes = sizes or SIZES
    fit_images = FIT_IMAGES if fit_images is None else fit_images
    if fit_images < 1:
        raise ConfigError(f"fit_images must be >= 1, got {fit_images}")
    about = info(name)
    net = create(name, pretrained=about.has_weights, seed=seed)
    if not about.has_weights:
        batches = [torch.stack([synthetic_image(about.input_shape, seed, "fit", i)
                                for i in range(start, min(start + FIT_BATCH, fit_images))])
                   for start in range(0, fit_images, FIT_BATCH)]
        fit_to_images_(net, batches)
    splits = synthetic_like(net, about.input_shape, about.num_classes, sizes, seed,
                            name="synthetic")
    return net, splits


@torch.no_grad()
def fit_to_images_(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Re-estimate batch norm on ``batches``, then centre the output layer's logits on them.

    The output layer is the ``nn.Linear`` whose output the model returns; if there is none,
    only batch norm is re-estimated.
    """
    reestimate_batchnorm_(model, batches)
    head = _output_linear(model, batches[0][:1])
    if head is None:
        return
    model.eval()
    mean = torch.cat([model(batch) for batch in batches]).mean(dim=0)
    if head.bias is None:
        head.bias = nn.Parameter(torch.zeros(head.out_features))
    head.bias.sub_(mean)


def _output_linear(model: nn.Module, example: torch.Tensor) -> nn.Linear | None:
    produced: list[tuple[nn.Module, torch.Tensor]] = []  # outputs kept alive: `is` is exact

    def hook(module: nn.Module, _: object, output: torch.Tensor) -> None:
        produced.append((module, output))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Linear)]
    try:
        model.eval()
        out = model(example)
    finally:
        for handle in handles:
            handle.remove()
    return next((m for m, o in produced if o is out and isinstance(m, nn.Linear)), None)
