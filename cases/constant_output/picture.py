"""Predicted vs target, one colour per output, train and held-out side by side, rendered with
matplotlib's Agg canvas into an RGB array in [0, 1] for run.image."""

from __future__ import annotations

import numpy as np
import torch


def _limits(*tensors: torch.Tensor) -> tuple[float, float]:
    values = np.concatenate([t.detach().cpu().numpy().ravel() for t in tensors])
    finite = values[np.isfinite(values)]
    return min(-0.1, finite.min(initial=0.0) - 0.05), max(1.1, finite.max(initial=1.0) + 0.05)


def pred_vs_target(
    pred_train: torch.Tensor, y_train: torch.Tensor, pred_heldout: torch.Tensor, y_heldout: torch.Tensor, title: str
) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.0), dpi=80)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    panels = (
        (axes[0], pred_train, y_train, f"train (n={len(y_train)})"),
        (axes[1], pred_heldout, y_heldout, f"held-out (n={len(y_heldout)})"),
    )
    for ax, pred, y, name in panels:
        pred, y = pred.detach().cpu().numpy(), y.detach().cpu().numpy()
        for k in range(y.shape[1]):
            ax.plot(y[:, k], pred[:, k], "o", ms=2.5, alpha=0.7, label=f"output {k + 1}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)  # a perfect predictor lies on the diagonal
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("target", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("prediction", fontsize=8)
    axes[0].legend(fontsize=6, loc="upper left")
    # The targets live in about [0, 1]; a wrong or collapsed prediction must still show, so the
    # view takes in every finite point.
    axes[0].set_xlim(*_limits(y_train, y_heldout))
    axes[0].set_ylim(*_limits(y_train, y_heldout, pred_train, pred_heldout))
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.82, wspace=0.08)  # tight_layout costs ~0.3 s
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3] / 255.0
