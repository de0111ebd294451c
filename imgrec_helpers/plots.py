"""Every figure of the course: each function draws one figure, saves it as a PNG when given ``save_to`` (the run
report embeds those files) and returns it; notebooks call them as ``fig = plots.something(...)``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .persistence import atomic_path

SaveTo = str | os.PathLike | None  # where a figure's PNG goes; None: not saved


def save_figure(fig: Any, save_to: SaveTo):
    """Save ``fig`` as PNG (atomically) when ``save_to`` is given; return ``fig`` (every figure of the course)."""
    if save_to:
        with atomic_path(Path(save_to), suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    return fig


def _bars(names: Sequence[str], values: Sequence[float], ylabel: str, title: str, fmt: str, colors: Any,
          height: float, save_to: SaveTo, **ticks: Any):
    fig, ax = plt.subplots(figsize=(8, height), layout="constrained")
    ax.bar_label(ax.bar(names, values, color=colors), fmt=fmt, fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.tick_params(axis="x", **ticks)
    return save_figure(fig, save_to)


def class_counts(counts: Sequence[int], class_names: Sequence[str], title: str, save_to: SaveTo = None):
    """Bar chart of images per class (lesson 01)."""
    return _bars(class_names, counts, "images", title, "%d", "#4c72b0", 3.2, save_to, rotation=30)


def comparison_bars(names: Sequence[str], values: Sequence[float], ylabel: str, title: str, fmt: str = "%.3f",
                    save_to: SaveTo = None):
    """One bar per approach (lesson 05)."""
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"][: len(names)]
    return _bars(names, values, ylabel, title, fmt, colors, 3.4, save_to, labelsize=8)


def image_grid_by_class(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], per_class: int = 8,
                        seed: int = 0, save_to: SaveTo = None):
    """A grid with one row per class and ``per_class`` random images of it (lesson 01)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(class_names), per_class, squeeze=False, layout="constrained",
                             figsize=(per_class * 0.9 + 1.2, len(class_names) * 0.9))
    for row, name in enumerate(class_names):
        idx = np.flatnonzero(labels == row)
        picks = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for col, ax in enumerate(axes[row]):
            ax.set(xticks=[], yticks=[])
            if col < len(picks):
                ax.imshow(images[picks[col]], interpolation="nearest")
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    return save_figure(fig, save_to)


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], columns: int = 8,
               colors: Sequence[str] | None = None, size: float = 1.5, save_to: SaveTo = None,
               heatmaps: Sequence[np.ndarray | None] | None = None, aspect: float = 1.0, fontsize: float = 7):
    """Images in a grid of cells ``size`` wide and ``aspect * size`` high, each with a (possibly coloured) title:
    previews and galleries (lessons 02-04), lesson 06's rendered text, and with ``heatmaps`` lesson 07's Grad-CAM
    overlays (``heatmaps[i]``, 2-D in [0, 1] at image ``i``'s size, drawn half-transparent in "jet"; ``None``: none)."""
    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, squeeze=False, layout="constrained",
                             figsize=(columns * size, rows * (size * aspect + 0.35)))
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(images):
            image = np.asarray(images[i])
            ax.imshow(image.astype("uint8") if heatmaps is not None else image,
                      interpolation="nearest" if image.shape[0] <= 64 else "antialiased")
            if heatmaps is not None and heatmaps[i] is not None:
                ax.imshow(heatmaps[i], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            ax.set_title(titles[i], fontsize=fontsize, color=(colors[i] if colors else "black"))
    return save_figure(fig, save_to)


def learning_curves(history: Mapping[str, Sequence[float]] | Any, title: str, save_to: SaveTo = None):
    """Loss and accuracy per epoch, training and validation side by side (lessons 02, 04); ``history`` is a Keras
    ``History`` or its dict, stages joined by ``training.join_histories`` are separated by dashed lines."""
    hist = getattr(history, "history", history)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
            if key in hist and len(hist[key]):
                ax.plot(np.arange(1, len(hist[key]) + 1), hist[key], style, markersize=3, label=key.replace("_", " "))
        for start in hist.get("_stage_starts", [])[1:]:
            ax.axvline(start + 0.5, color="grey", linestyle="--", linewidth=0.8)
        ax.set(xlabel="epoch", title=metric)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, save_to)


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], title: str, save_to: SaveTo = None):
    """Confusion matrix with counts in each cell; rows are the true class (lesson 02)."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    top = matrix.max() if matrix.size else 0
    for (r, c), v in np.ndenumerate(matrix):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=6, color="white" if v > top / 2 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return save_figure(fig, save_to)


def predictions_grid(images: Sequence[np.ndarray], labels: Sequence[Sequence[str]],
                     probabilities: Sequence[Sequence[float]], titles: Sequence[str], title: str,
                     columns: int = 3, save_to: SaveTo = None, *, big: bool = False):
    """Images, each beside the bar chart of its top predictions (best first), ``columns`` pairs a row (lesson 03);
    ``big``: larger pairs, as :func:`predictions_with_bars` draws."""
    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    fontsize = 8 if big else 7
    fig, axes = plt.subplots(rows, 2 * columns, squeeze=False, layout="constrained",
                             figsize=(columns * 8, rows * 2.6) if big else (columns * 4.2, rows * 1.9 + 0.4),
                             width_ratios=[1, 1.6 if big else 1.5] * columns)
    for i, (ax_img, ax_bar) in enumerate(axes.reshape(-1, 2)):  # (image, bars) pairs, row by row
        ax_img.axis("off")
        if i >= len(images):
            ax_bar.axis("off")
            continue
        ax_img.imshow(images[i])
        ax_img.set_title(titles[i], fontsize=7, loc="left")
        y = np.arange(len(labels[i]))[::-1]
        ax_bar.barh(y, np.asarray(probabilities[i]) * 100, color="#55a868")
        ax_bar.set_yticks(y, labels[i], fontsize=fontsize)
        ax_bar.set_xlim(0, 100)
        ax_bar.set_xlabel("likelihood %", fontsize=fontsize)
        ax_bar.tick_params(axis="x", labelsize=fontsize)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, save_to)


def predictions_with_bars(image: np.ndarray, labels: Sequence[str], probabilities: Sequence[float], title: str,
                          save_to: SaveTo = None):
    """An image beside a horizontal bar chart of its top predictions (lesson 02)."""
    return predictions_grid([image], [labels], [probabilities], [""], title, 1, save_to, big=True)


def data_efficiency(curves: Mapping[str, Mapping[int, float]], title: str, save_to: SaveTo = None):
    """Test accuracy versus number of training images, one line per approach, log x-axis (lesson 05)."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for name, points in curves.items():
        sizes = sorted(points)
        ax.plot(sizes, [points[s] for s in sizes], "-o", label=name)
        for s in sizes:
            ax.annotate(f"{points[s]:.2f}", (s, points[s]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7)
    ax.set(xscale="log", xlabel="training images (log scale)", ylabel="test accuracy (same CIFAR-10 test set)",
           ylim=(0, 1), title=title)
    ax.axhline(0.1, color="grey", linestyle=":", linewidth=0.8, label="chance (10 classes)")
    ax.legend(fontsize=8)
    return save_figure(fig, save_to)
