"""A vision transformer (Dosovitskiy et al. 2021) whose every weight layer is an ``nn.Linear``.

The patch embedding is a Linear on flattened ``patch x patch x C`` patches (the same arithmetic
as the usual stride-``patch`` convolution), so a policy quantizes Linear layers only, each
applied to every token: ``LayerSpec.tokens`` is 196 for the patch embedding at 224x224, 197
(patches + class token) inside the blocks and 1 for the head. The two attention matrix products
(queries x keys, weights x values) have no weights and stay in float.

Layer names: ``embed``, then per block i = 0..depth-1 ``blocks.<i>.attn.qkv``,
``blocks.<i>.attn.proj``, ``blocks.<i>.mlp.fc1``, ``blocks.<i>.mlp.fc2``; last ``head``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head self-attention: one Linear makes queries, keys and values, one projects back."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, tokens, head_dim)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """``fc1`` (to ``hidden``) -> GELU -> ``fc2`` (back to ``dim``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT with a class token, learned position embeddings and a linear head on the class token.

    Args:
        num_classes: classifier outputs.
        image_size: side of the square input image.
        patch: side of a square patch; ``image_size`` must be a multiple of it.
        in_channels: image channels.
        dim: token width.
        depth: transformer blocks.
        heads: attention heads (``dim`` must be a multiple of it).
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
    """

    def __init__(self, num_classes: int = 1000, image_size: int = 224, patch: int = 16,
                 in_channels: int = 3, dim: int = 192, depth: int = 12, heads: int = 3,
                 mlp_ratio: int = 4) -> None:
        super().__init__()
        if image_size % patch or dim % heads:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch ({patch}) "
                             f"and dim ({dim}) a multiple of heads ({heads})")
        self.patch = patch
        self.num_patches = (image_size // patch) ** 2
        self.embed = nn.Linear(in_channels * patch * patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def init_extra_(self, generator: torch.Generator) -> None:
        """ViT's init from ``generator``: every Linear weight, the class token and the position
        embeddings normal with std 0.02, biases zero (``haq.models`` calls this after its
        generic init, whose 0.01 std suits a lone classifier head, not 50 stacked Linears)."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
                    module.weight.mul_(0.02)
                    if module.bias is not None:
                        module.bias.zero_()
            for param in (self.cls_token, self.pos_embed):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)

    def patches(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, patches, C * patch * patch), patches in row-major order."""
        batch, channels, height, width = x.shape
        p = self.patch
        x = x.reshape(batch, channels, height // p, p, width // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(batch, -1, channels * p * p)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embed(self.patches(x))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        tokens = self.norm(self.blocks(tokens))
        return self.head(tokens[:, 0])
