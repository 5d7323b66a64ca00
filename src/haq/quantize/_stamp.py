"""Cache keys for tensors: has this tensor changed since a value was derived from it?"""

from __future__ import annotations

from typing import Any

import torch


def tensor_key(t: torch.Tensor) -> tuple[Any, ...]:
    """Identity of a tensor's current contents, as far as torch tracks it without reading it.

    In-place edits under ``torch.no_grad()`` (optimizers, ``load_state_dict``) bump the version
    counter; edits through ``.data`` do not, so code that edits weights that way must call
    ``clear_cache()``.
    """
    # Tensors made under torch.inference_mode have no version counter (and cannot be edited
    # in place outside it), so they are keyed by address alone.
    version = -1 if t.is_inference() else t._version
    return (t.data_ptr(), version, t.dtype, t.device, tuple(t.shape), t.stride())


class Stamp:
    """Which tensors, at which versions, a cached value was computed from.

    It keeps detached aliases of the tensors alive, so their storage cannot be freed and its
    address handed to a new tensor that would then look identical to ``tensor_key``.
    """

    __slots__ = ("aliases", "keys")

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.aliases = tuple(t.detach() for t in tensors)
        self.keys = tuple(tensor_key(t) for t in tensors)

    def matches(self, *tensors: torch.Tensor) -> bool:
        return self.keys == tuple(tensor_key(t) for t in tensors)
