"""Every figure of the course. Each function draws one figure, returns it, and saves it as a PNG
when given ``save_to`` (the run report embeds those files).

Notebooks call these as ``fig = plots.something(...)`` so the figure shows once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .persistence import atomic_path


def _figure(width: float, height: float):
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Any, save_to: str | os.PathLike | None) -> None:
    """Save ``fig`` as PNG (atomically) when ``save_to`` is given."""
    if save_to:
        with atomic_path(Path(save_to), suffix=".png") as tmp:
            fig.savefig(tmp, format="png")


def class_counts(counts: Sequence[int], class_names: Sequence[str], title: str,
                 save_to: str | os.PathLike | None = None):
    """Bar chart of images per class (lesson 01)."""
    fig = _figure(8, 3.2)
    ax = fig.add_subplot()
    bars = ax.bar(class_names, counts, color="#4c72b0")
    ax.bar_label(bars, fmt="%d", fontsize=8)
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    save_figure(fig, save_to)
    return fig


def image_grid_by_class(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                        per_class: int = 8, seed: int = 0, save_to: str | os.PathLike | None = None):
    """A grid with one row per class and ``per_class`` random images of it (lesson 01)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    fig = _figure(per_class * 0.9 + 1.2, len(class_names) * 0.9)
    axes = fig.subplots(len(class_names), per_class, squeeze=False)
    for row, name in enumerate(class_names):
        idx = np.flatnonzero(labels == row)
        picks = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(picks):
                ax.imshow(images[picks[col]], interpolation="nearest")
            if col == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    save_figure(fig, save_to)
    return fig


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], columns: int = 8,
               colors: Sequence[str] | None = None, size: float = 1.5,
               save_to: str | os.PathLike | None = None, heatmaps: Sequence[np.ndarray | None] | None = None):
    """Images in a grid, each with a (possibly coloured) title: previews and galleries (lessons 02-04), and with
    ``heatmaps`` lesson 07's Grad-CAM overlays: ``heatmaps[i]``, a 2-D array in [0, 1] at the image's height and
    width, drawn half-transparent in the "jet" colour map (red: hot) over image ``i`` (``None``: the image alone)."""
    n = len(images)
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    fig = _figure(columns * size, rows * (size + 0.35))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < n:
            image = np.asarray(images[i])
            ax.imshow(image.astype("uint8") if heatmaps is not None else image,
                      interpolation="nearest" if image.shape[0] <= 64 else "antialiased")
            if heatmaps is not None and heatmaps[i] is not None:
                ax.imshow(heatmaps[i], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            ax.set_title(titles[i], fontsize=7, color=(colors[i] if colors else "black"))
    save_figure(fig, save_to)
    return fig


def learning_curves(history: Mapping[str, Sequence[float]] | Any, title: str,
                    save_to: str | os.PathLike | None = None):
    """Loss and accuracy per epoch, training and validation side by side (lessons 02, 04).

    ``history`` is a Keras ``History`` or its ``.history`` dict; several stages can be joined with
    :func:`imgrec_helpers.training.join_histories` and are then separated by dashed lines.
    """
    hist = getattr(history, "history", history)
    stages = hist.get("_stage_starts", [])
    fig = _figure(9, 3.2)
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
            if key in hist and len(hist[key]):
                epochs = np.arange(1, len(hist[key]) + 1)
                ax.plot(epochs, hist[key], style, markersize=3, label=key.replace("_", " "))
        for start in stages[1:]:
            ax.axvline(start + 0.5, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, save_to)
    return fig


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], title: str,
                     save_to: str | os.PathLike | None = None):
    """Confusion matrix with counts in each cell; rows are the true class (lesson 02)."""
    fig = _figure(6.5, 5.5)
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() if matrix.size else 0
    for (r, c), v in np.ndenumerate(matrix):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=6,
                color="white" if v > top / 2 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title)
    save_figure(fig, save_to)
    return fig


def _image_and_bars(ax_img: Any, ax_bar: Any, image: np.ndarray, labels: Sequence[str],
                    probabilities: Sequence[float], fontsize: float) -> None:
    ax_img.imshow(image)
    ax_img.axis("off")
    y = np.arange(len(labels))[::-1]
    ax_bar.barh(y, np.asarray(probabilities) * 100, color="#55a868")
    ax_bar.set_yticks(y, labels, fontsize=fontsize)
    ax_bar.set_xlim(0, 100)
    ax_bar.set_xlabel("likelihood %", fontsize=fontsize)
    ax_bar.tick_params(axis="x", labelsize=fontsize)


def predictions_with_bars(image: np.ndarray, labels: Sequence[str], probabilities: Sequence[float],
                          title: str, save_to: str | os.PathLike | None = None):
    """An image beside a horizontal bar chart of its top predictions (lesson 02)."""
    fig = _figure(8, 2.6)
    ax_img, ax_bar = fig.subplots(1, 2, width_ratios=[1, 1.6])
    _image_and_bars(ax_img, ax_bar, image, labels, probabilities, fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, save_to)
    return fig


def predictions_grid(images: Sequence[np.ndarray], labels: Sequence[Sequence[str]],
                     probabilities: Sequence[Sequence[float]], titles: Sequence[str], title: str,
                     columns: int = 3, save_to: str | os.PathLike | None = None):
    """Many images in one figure, each beside the bar chart of its top predictions (lesson 03).

    ``labels[i]`` and ``probabilities[i]`` are image ``i``'s top classes, best first; ``columns``
    image-and-bars pairs per row.
    """
    n = len(images)
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    fig = _figure(columns * 4.2, rows * 1.9 + 0.4)
    axes = fig.subplots(rows, 2 * columns, squeeze=False, width_ratios=[1, 1.5] * columns)
    for i in range(rows * columns):
        ax_img, ax_bar = axes[i // columns, 2 * (i % columns)], axes[i // columns, 2 * (i % columns) + 1]
        if i >= n:
            ax_img.axis("off")
            ax_bar.axis("off")
            continue
        _image_and_bars(ax_img, ax_bar, images[i], labels[i], probabilities[i], fontsize=7)
        ax_img.set_title(titles[i], fontsize=7, loc="left")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, save_to)
    return fig


def comparison_bars(names: Sequence[str], values: Sequence[float], ylabel: str, title: str,
                    fmt: str = "%.3f", save_to: str | os.PathLike | None = None):
    """One bar per approach (lesson 05)."""
    fig = _figure(8, 3.4)
    ax = fig.add_subplot()
    bars = ax.bar(names, values, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"][: len(names)])
    ax.bar_label(bars, fmt=fmt, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelsize=8)
    save_figure(fig, save_to)
    return fig


def data_efficiency(curves: Mapping[str, Mapping[int, float]], title: str,
                    save_to: str | os.PathLike | None = None):
    """Test accuracy versus number of training images, one line per approach, log x-axis (lesson 05)."""
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    for name, points in curves.items():
        sizes = sorted(points)
        ax.plot(sizes, [points[s] for s in sizes], "-o", label=name)
        for s in sizes:
            ax.annotate(f"{points[s]:.2f}", (s, points[s]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("test accuracy (same CIFAR-10 test set)")
    ax.set_ylim(0, 1)
    ax.axhline(0.1, color="grey", linestyle=":", linewidth=0.8, label="chance (10 classes)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    save_figure(fig, save_to)
    return fig
