"""Seeded one-dimensional k-means in torch, for Deep-Compression-style weight sharing.

In one dimension every cluster is an interval, so the assignment step is a ``bucketize``
against the midpoints of the sorted centroids (O(n log k)) and the update step is two
``bincount`` calls. The official code runs sklearn's k-means on the CPU without a seed; this
one is deterministic for a given ``torch.Generator``.
"""

from __future__ import annotations

import torch

INIT_SAMPLE = 20_000  # k-means++ seeding looks at a random subset of at most this many weights


def kmeans_1d(values: torch.Tensor, k: int, iters: int,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the entries of ``values`` into at most ``k`` shared values.

    Args:
        values: any shape; clustered as a flat vector on the CPU in float64.
        k: number of centroids (2^bits).
        iters: Lloyd iterations after k-means++ seeding (stops early once labels settle).
        generator: CPU generator; the same state gives the same centroids.

    Returns:
        (centroids [k] ascending, labels shaped like ``values``, dtype int64). When ``values``
        hold ``k`` or fewer distinct numbers they are the centroids, exactly, and any spare
        centroids repeat the largest one.
    """
    x = values.detach().reshape(-1).to("cpu", torch.float64)
    distinct = torch.unique(x)
    if distinct.numel() <= k:
        centroids = torch.cat([distinct, distinct[-1:].expand(k - distinct.numel())])
        return centroids, torch.bucketize(x, distinct).reshape(values.shape)
    centroids = _kmeans_pp(x, k, generator)
    labels = _assign(x, centroids)
    for _ in range(iters):
        centroids = _update(x, labels, centroids)
        new_labels = _assign(x, centroids)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return centroids, labels.reshape(values.shape)


def _kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (each new centre drawn with probability proportional to D^2)."""
    if x.numel() > INIT_SAMPLE:
        x = x[torch.randperm(x.numel(), generator=generator)[:INIT_SAMPLE]]
    first = int(torch.randint(x.numel(), (1,), generator=generator))
    chosen = [x[first]]
    nearest = (x - chosen[0]).pow(2)
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 0:  # every sampled point already is a centre: fill with distinct quantiles
            break
        pick = int(torch.multinomial(nearest / total, 1, generator=generator))
        chosen.append(x[pick])
        nearest = torch.minimum(nearest, (x - x[pick]).pow(2))
    centroids = torch.stack(chosen)
    if centroids.numel() < k:
        extra = torch.quantile(x, torch.linspace(0, 1, k - centroids.numel(), dtype=x.dtype))
        centroids = torch.cat([centroids, extra])
    return centroids.sort().values


def _assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    midpoints = (centroids[1:] + centroids[:-1]) / 2
    return torch.bucketize(x, midpoints)


def _update(x: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    k = centroids.numel()
    sums = torch.bincount(labels, weights=x, minlength=k)
    counts = torch.bincount(labels, minlength=k).to(x.dtype)
    # An empty cluster keeps its centre, so the count never drops below k.
    updated = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
    return updated.sort().values
