"""Weight clips chosen by the layer's *output* error on calibration data (``weight_clip="output"``).

A layer computes, per output channel r, ``y_r = w_r . p`` over its input patches p (a conv's
im2col columns, a Linear's input rows). Quantizing w_r to ``w_r + e_r`` changes the output by
``e_r . p``, whose mean square over the calibration data is ``e_r^T H e_r`` with ``H =
E[p p^T]``; after bias correction (which removes the mean error) it is ``e_r^T C e_r`` with C
the covariance of p. Plain weight MSE is the case H = identity. The two differ most where a
row has few, strongly correlated inputs (a 3x3 stem on an image, a depthwise channel): there the
errors that cancel over the kernel cost nothing and the ones that add up cost most.

``PatchMoments`` accumulates E[p] and E[p p^T] per group while calibrating (patches are thinned
to ``MAX_PATCHES`` per batch); layers whose matrices would exceed ``MAX_ELEMENTS`` numbers keep
the diagonal only (a per-input weighted MSE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn

from haq.quantize._clip import search_clip
from haq.quantize._grid import fake_quant

MAX_PATCHES = 1024  # patches per calibration batch that enter the moments
MAX_ELEMENTS = 1 << 22  # numbers of the per-group second-moment matrices of one layer
FULL_COST = 1 << 26  # rows * d * d above which the clip search uses the diagonal only


class PatchMoments:
    """E[p] and E[p p^T] (or its diagonal) of a layer's input patches, per group."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        rows, d = layer.weight.shape[0], layer.weight[0].numel()
        groups = getattr(layer, "groups", 1)
        # the full matrices only where output_clip will use them
        self.full = groups * d * d <= MAX_ELEMENTS and rows * d * d <= FULL_COST
        self.count = 0
        self.total: torch.Tensor | None = None  # [groups, d]
        self.outer: torch.Tensor | None = None  # [groups, d, d] or [groups, d] (diagonal)

    def update(self, x: torch.Tensor) -> None:
        p = _patches(self.layer, x.detach())  # [n, groups, d]
        if p.shape[0] > MAX_PATCHES:
            keep = torch.linspace(0, p.shape[0] - 1, MAX_PATCHES).round().long()
            p = p[keep.to(p.device)]
        p = p.float()
        # float32 products of at most MAX_PATCHES terms, summed over batches in float64
        outer = torch.einsum("ngi,ngj->gij", p, p) if self.full else p.pow(2).sum(0)
        outer, total = outer.double(), p.double().sum(0)
        self.total = total if self.total is None else self.total + total
        self.outer = outer if self.outer is None else self.outer + outer
        self.count += p.shape[0]

    def metric(self, centred: bool) -> torch.Tensor | None:
        """H = E[p p^T] (or C, the covariance, if ``centred``): [groups, d, d] or [groups, d].

        None if no patch was recorded.
        """
        if self.total is None or self.outer is None or self.count == 0:
            return None
        mean = self.total / self.count
        second = self.outer / self.count
        if second.dim() == 3:
            return second - mean.unsqueeze(2) * mean.unsqueeze(1) if centred else second
        return second - mean.pow(2) if centred else second


def _patches(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Input patches [n, groups, d] in the order of the weight's flattened rows."""
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, 1, x.shape[-1])
    if isinstance(layer, nn.Conv1d):
        x = x.unsqueeze(2)
        kernel, dilation = (1, layer.kernel_size[0]), (1, layer.dilation[0])
        padding, stride = (0, layer.padding[0]), (1, layer.stride[0])
    else:
        kernel, dilation = layer.kernel_size, layer.dilation
        padding, stride = layer.padding, layer.stride
    if isinstance(padding, str):  # 'same' / 'valid'
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True)) \
            if padding == "same" else (0, 0)
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    groups = layer.groups
    n, dk, positions = cols.shape
    return cols.permute(0, 2, 1).reshape(n * positions, groups, dk // groups)


def output_clip(weight: torch.Tensor, bits: int, metric: torch.Tensor,
                per_channel: bool) -> torch.Tensor:
    """Clip per output channel (or one per tensor) with least ``sum_r e_r^T H e_r``.

    ``metric`` is ``PatchMoments.metric``: one d x d matrix (or diagonal) per group; row r of
    the weight belongs to group ``r // (rows / groups)``.
    """
    w = weight.detach().float().reshape(weight.shape[0], -1)
    rows, d = w.shape
    groups = metric.shape[0]
    h = metric.float().to(w.device)
    if h.dim() == 3 and rows * d * d > FULL_COST:
        h = torch.diagonal(h, dim1=1, dim2=2)
    amax = w.abs().amax(1) if per_channel else w.abs().amax().reshape(1)
    per_group = rows // groups

    def errors(fractions: torch.Tensor) -> torch.Tensor:
        clip = fractions * amax.unsqueeze(1)  # [units, k]
        clip = clip if per_channel else clip.expand(rows, -1)
        e = fake_quant(w.unsqueeze(1), clip.unsqueeze(2), bits, True) - w.unsqueeze(1)
        e = e.reshape(groups, per_group, -1, d)  # [groups, rows per group, k, d]
        if h.dim() == 3:
            per_row = (torch.einsum("gmki,gij->gmkj", e, h) * e).sum(3)
        else:
            per_row = (e.pow(2) * h.reshape(groups, 1, 1, d)).sum(3)
        per_row = per_row.reshape(rows, -1)
        return per_row if per_channel else per_row.sum(0, keepdim=True)

    clip = search_clip(amax, errors, w.dtype, w.numel() * (d if h.dim() == 3 else 1))
    return torch.where(amax > 0, clip, torch.ones_like(clip))
