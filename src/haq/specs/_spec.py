"""LayerSpec: the shape facts of one quantizable layer, the unit every later stage works on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

LayerKind = Literal["conv", "depthwise", "linear"]


@dataclass(frozen=True)
class LayerSpec:
    """One Conv1d/Conv2d/Linear layer as seen in one traced forward pass.

    Spatial sizes are (height, width); a Conv1d has height 1, a Linear has (1, 1).
    ``in_size`` is the input feature map the layer reads, ``out_size`` the map it writes.
    ``tokens`` is how many positions a Linear is applied to per sample (1 for a classifier head).
    """

    name: str
    index: int
    kind: LayerKind
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    params: int
    macs: int
    has_bias: bool = False
    tokens: int = 1
    calls: int = 1

    @property
    def weight_params(self) -> int:
        """Number of weights (bias excluded): what weight bits apply to."""
        return self.params - (self.out_channels if self.has_bias else 0)

    @property
    def is_depthwise(self) -> bool:
        return self.kind == "depthwise"

    @property
    def in_elements(self) -> int:
        """Input activation elements per sample (what activation bits apply to)."""
        return self.in_channels * self.in_size[0] * self.in_size[1] * self.tokens

    @property
    def out_elements(self) -> int:
        return self.out_channels * self.out_size[0] * self.out_size[1] * self.tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerSpec:
        fields = dict(data)
        for key in ("kernel", "stride", "padding", "in_size", "out_size"):
            fields[key] = tuple(fields[key])
        return cls(**fields)
