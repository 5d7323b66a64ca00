"""1-D k-means: the optimum on separable data (dynamic-programming oracle), seeds, edge cases."""

from __future__ import annotations

import numpy as np
import torch

from haq.quantize._kmeans import kmeans_1d


def _optimal_sse(values: np.ndarray, k: int) -> float:
    """Exact 1-D k-means optimum: clusters are intervals of the sorted data (O(k n^2) DP)."""
    x = np.sort(values)
    n = len(x)
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])

    def cost(i: int, j: int) -> float:  # SSE of x[i:j] around its mean
        m = j - i
        return s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / m

    best = np.full((k + 1, n + 1), np.inf)
    best[0, 0] = 0.0
    for c in range(1, k + 1):
        for j in range(c, n + 1):
            best[c, j] = min(best[c - 1, i] + cost(i, j) for i in range(c - 1, j))
    return float(best[k, n])


def _sse(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor) -> float:
    return float((x.double() - centroids[labels]).pow(2).sum())


def test_reaches_the_optimum_on_clustered_data() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([-3.0, -1.0, 0.5, 2.0])
    x = (centres.repeat_interleave(15) + 0.1 * torch.randn(60, generator=gen))
    centroids, labels = kmeans_1d(x, 4, 30, torch.Generator().manual_seed(3))
    assert _sse(x, centroids, labels) <= _optimal_sse(x.double().numpy(), 4) * (1 + 1e-9)


def test_close_to_the_optimum_on_gaussian_weights() -> None:
    x = torch.randn(80, generator=torch.Generator().manual_seed(1))
    centroids, labels = kmeans_1d(x, 4, 50, torch.Generator().manual_seed(0))
    assert _sse(x, centroids, labels) <= 1.05 * _optimal_sse(x.double().numpy(), 4)


def test_labels_index_sorted_centroids_and_seeds_repeat() -> None:
    w = torch.randn(32, 16, 3, 3, generator=torch.Generator().manual_seed(2))
    c1, l1 = kmeans_1d(w, 16, 20, torch.Generator().manual_seed(7))
    c2, l2 = kmeans_1d(w, 16, 20, torch.Generator().manual_seed(7))
    assert torch.equal(c1, c2) and torch.equal(l1, l2)
    assert l1.shape == w.shape and l1.max() < 16
    assert (c1[1:] >= c1[:-1]).all()
    assert c1[l1].unique().numel() <= 16
    # Every weight sits at its nearest centroid (Lloyd's fixed point).
    nearest = (w.reshape(-1, 1).double() - c1).abs().argmin(1)
    assert torch.equal(c1[nearest], c1[l1.reshape(-1)])


def test_few_distinct_values_are_kept_exactly() -> None:
    x = torch.tensor([0.5, -1.0, 0.5, 2.0, -1.0])
    centroids, labels = kmeans_1d(x, 8, 5, torch.Generator().manual_seed(0))
    assert torch.equal(centroids[labels].float(), x)
    assert centroids.numel() == 8
