"""Figures of a search result. Each function draws one figure into a PNG and returns its path.

matplotlib runs on the Agg backend: no display is needed and nothing is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from haq.policy import BitSpace, Policy  # noqa: E402
from haq.specs import LayerSpec  # noqa: E402

# One colour per layer role, as in the paper's figures: depthwise apart from pointwise/dense.
ROLE_COLOURS = {"depthwise": "#d62728", "pointwise": "#1f77b4", "conv": "#2ca02c",
                "linear": "#9467bd"}


def layer_role(spec: LayerSpec) -> str:
    """depthwise, pointwise (1x1 conv), conv (any other conv) or linear."""
    if spec.kind == "depthwise" or spec.kind == "linear":
        return spec.kind
    return "pointwise" if spec.kernel == (1, 1) else "conv"


def _bars(ax: Any, specs: Sequence[LayerSpec], values: Sequence[float], sign: float) -> None:
    x = np.arange(len(specs))
    colours = [ROLE_COLOURS[layer_role(s)] for s in specs]
    ax.bar(x, sign * np.asarray(values, dtype=float), color=colours, width=0.8)


def plot_policy_bits(specs: Sequence[LayerSpec], policy: Policy, path: Path,
                     title: str = "Per-layer bit widths", space: BitSpace | None = None) -> Path:
    """Weight bits up, activation bits down, one bar per layer, coloured by layer role.

    With ``space`` the axis is ticked at its candidate widths only (and at pinned widths), so a
    {2, 4, 8} search reads 2, 4, 8; without it at every even width.
    """
    w = [policy[s.name].w_bits or 32 for s in specs]
    a = [policy[s.name].a_bits or 32 for s in specs]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(specs) + 2), 4.2))
    _bars(ax, specs, w, 1.0)
    _bars(ax, specs, a, -1.0)
    top = max(max(w), max(a))
    ax.set_ylim(-min(top, 8) - 1, min(top, 8) + 3)  # headroom for the legend
    ax.axhline(0, color="black", linewidth=0.8)
    ticks = _bit_ticks(specs, space)
    ax.set_yticks(ticks, [str(abs(t)) for t in ticks])
    ax.set_ylabel("activation bits  |  weight bits")
    ax.set_xlabel("layer (execution order)")
    ax.set_title(title)
    roles = sorted({layer_role(s) for s in specs})
    handles = [plt.Rectangle((0, 0), 1, 1, color=ROLE_COLOURS[r]) for r in roles]
    ax.legend(handles, roles, loc="upper right", fontsize=8, ncol=len(roles))
    return _save(fig, path)


def _bit_ticks(specs: Sequence[LayerSpec], space: BitSpace | None) -> list[int]:
    """Axis ticks: activation widths negative, weight widths positive, 0 between."""
    if space is None:
        return list(range(-8, 9, 2))
    w: set[int | None] = set()
    a: set[int | None] = set()
    for spec in specs:
        ws, as_ = space.allowed(spec)
        w.update(ws)
        a.update(as_)
    return sorted({0} | {-b for b in a if b is not None} | {b for b in w if b is not None})


def plot_search_curves(history: Sequence[Mapping[str, Any]], metric: str, path: Path) -> Path:
    """Reward, held-out accuracy and the budgeted cost of every episode, with the running best."""
    done = [h for h in history if h.get("state", "complete") == "complete"]
    episodes = [h["episode"] for h in done]
    fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    series = [("reward", [h.get("reward") for h in done]),
              ("accuracy (%)", [h.get("accuracy") for h in done]),
              (f"{metric}", [h.get("costs", {}).get(metric) for h in done])]
    for ax, (label, values) in zip(axes, series, strict=True):
        vals = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(episodes, vals, ".", markersize=3, alpha=0.6)
        if label == "reward" and np.isfinite(vals).any():
            ax.plot(episodes, np.fmax.accumulate(np.nan_to_num(vals, nan=-np.inf)), "-",
                    color="black", linewidth=1, label="best so far")
            ax.legend(fontsize=8)
        ax.set_ylabel(label)
    axes[-1].set_xlabel("episode")
    axes[0].set_title("Search progress")
    return _save(fig, path)


def plot_cost_breakdown(specs: Sequence[LayerSpec], per_layer: np.ndarray,
                        reference: np.ndarray, metric: str, unit: str, path: Path) -> Path:
    """Per-layer cost of the policy beside the W8A8 reference."""
    x = np.arange(len(specs))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(specs) + 2), 3.8))
    ax.bar(x - 0.2, reference, width=0.4, color="#bbbbbb", label="W8A8")
    ax.bar(x + 0.2, per_layer, width=0.4,
           color=[ROLE_COLOURS[layer_role(s)] for s in specs], label="policy")
    ax.set_ylabel(f"{metric} ({unit})")
    ax.set_xlabel("layer (execution order)")
    ax.set_title(f"Per-layer {metric}: policy vs W8A8 "
                 f"(total {per_layer.sum():.4g} vs {reference.sum():.4g} {unit})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
