"""How a LayerSpec maps onto the convolution/GEMM shapes accelerator models understand."""

from __future__ import annotations

from dataclasses import dataclass

from haq.errors import CostModelError
from haq.specs import LayerSpec


@dataclass(frozen=True)
class LayerGeometry:
    """One layer as ``groups`` identical convolutions, each run ``repeats`` times.

    A Linear is a 1x1 convolution on a 1x1 map whose batch is ``batch * tokens``. A grouped or
    depthwise convolution is ``groups`` separate convolutions with ``in/groups`` input and
    ``out/groups`` output channels each (accelerators without grouped support run them one
    after another). ``repeats`` is how often the layer runs per forward pass (``spec.calls``).
    """

    kh: int
    kw: int
    oh: int
    ow: int
    ih: int
    iw: int
    sh: int
    sw: int
    ic: int  # per group
    oc: int  # per group
    groups: int
    batch: int  # per group, tokens folded in
    repeats: int
    depthwise: bool
    first: bool

    @property
    def gemm(self) -> tuple[int, int, int]:
        """(rows M = output channels, columns N = output positions, depth K) of one group."""
        return self.oc, self.batch * self.oh * self.ow, self.ic * self.kh * self.kw


def geometry(spec: LayerSpec, batch: int) -> LayerGeometry:
    """Map ``spec`` at ``batch`` samples onto a :class:`LayerGeometry`.

    Raises:
        CostModelError: the batch is not positive or the channels do not split into groups.
    """
    if batch < 1:
        raise CostModelError(f"batch must be >= 1, got {batch}")
    groups = max(1, spec.groups)
    if spec.in_channels % groups or spec.out_channels % groups:
        raise CostModelError(f"layer {spec.name!r}: {spec.in_channels} -> {spec.out_channels} "
                             f"channels do not split into {groups} groups")
    if spec.kind == "linear":
        return LayerGeometry(1, 1, 1, 1, 1, 1, 1, 1, spec.in_channels, spec.out_channels, 1,
                             batch * max(1, spec.tokens), max(1, spec.calls), False,
                             spec.index == 0)
    return LayerGeometry(
        kh=spec.kernel[0], kw=spec.kernel[1], oh=spec.out_size[0], ow=spec.out_size[1],
        ih=spec.in_size[0], iw=spec.in_size[1], sh=spec.stride[0], sw=spec.stride[1],
        ic=spec.in_channels // groups, oc=spec.out_channels // groups, groups=groups,
        batch=batch, repeats=max(1, spec.calls), depthwise=spec.kind == "depthwise",
        first=spec.index == 0,
    )
