"""Plots of a search, written into its result folder next to the cell drawings and logged to the trackers each
epoch (matplotlib, no display needed): the learning curves with the entropy of the architecture, and the softmax
alphas as heatmaps, epoch by epoch."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib


matplotlib.use("Agg")  # files only: no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from .models.genotypes import RECURRENT_PRIMITIVES  # noqa: E402
from .search.early_stopping import EIGENVALUE_KEY  # noqa: E402


def alpha_columns(supernet) -> dict[str, list[str]]:
    """The candidate operations that name the columns of a supernet's alphas, by cell, as its epoch records hold
    them: the recurrent search's one cell, the convolutional search's normal and reduction cells, or NAS-Bench-201's
    one cell."""
    if supernet.config.model_type == "darts_rnn_search":
        return {"recurrent": list(RECURRENT_PRIMITIVES)}
    return {cell: supernet.config.column_names(cell) for cell in supernet.alphas}


def alphas_of(record: dict) -> dict[str, list[list[float]]]:
    """The operation weights of an epoch record (the softmax of the alphas, or FairDARTS's sigmoid), by cell
    (`normal`, `reduce` or `recurrent`)."""
    return {key.removeprefix("alphas_"): value for key, value in record.items() if key.startswith("alphas_")}


def normalised_entropy(weights: list[list[float]]) -> float:
    """The mean entropy of the rows (edges) of operation weights, each row normalised to sum 1 (FairDARTS's sigmoid
    weights do not), divided by its maximum: 1 while the architecture is uniform (the start of a search), towards 0
    as each edge settles on one operation."""
    maximum = math.log(len(weights[0]))
    rows = [[p / sum(row) for p in row] for row in weights]
    return sum(-sum(p * math.log(p) for p in row if p > 0) for row in rows) / (len(weights) * maximum)


def figure_image(figure, dpi: int) -> Image.Image:
    """`figure` as an RGB picture (for the GIF and the trackers), closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return Image.open(buffer).convert("RGB")


def learning_curves_figure(history: list[dict]):
    """Per epoch: training and validation loss; accuracies (images) or validation perplexity (text); each cell's
    normalised alpha entropy; and the largest eigenvalue of the alpha Hessian where the search measured it."""
    epochs = [record["epoch"] for record in history]
    measured = [(r["epoch"], r[EIGENVALUE_KEY]) for r in history if EIGENVALUE_KEY in r]
    panels = 4 if measured else 3
    figure, axes = plt.subplots(1, panels, figsize=(4.4 * panels, 3.6), constrained_layout=True)
    loss, quality, entropy = axes[:3]
    loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="weight training")
    loss.plot(epochs, [r["valid_loss"] for r in history], "o-", label="validation")
    loss.set(title="loss", xlabel="epoch")
    if "valid_accuracy" in history[0]:
        quality.plot(epochs, [r["train_accuracy"] for r in history], "o-", label="weight training")
        quality.plot(epochs, [r["valid_accuracy"] for r in history], "o-", label="architecture validation")
        quality.set(title="accuracy", xlabel="epoch")
    else:
        quality.plot(epochs, [r["valid_perplexity"] for r in history], "o-", label="validation")
        quality.set(title="perplexity", xlabel="epoch", yscale="log")
    for cell in alphas_of(history[0]):
        entropy.plot(epochs, [normalised_entropy(alphas_of(r)[cell]) for r in history], "o-", label=cell)
    entropy.set(title="alpha entropy (1 = uniform)", xlabel="epoch")
    if measured:
        axes[3].plot(*zip(*measured), "o-", color="tab:red", label="largest eigenvalue")
        axes[3].set(title="Hessian of the validation loss (alphas)", xlabel="epoch")
    for panel in axes:
        panel.legend()
        panel.grid(alpha=0.3)
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure


def plot_learning_curves(history: list[dict], path: Path) -> Path:
    """`learning_curves_figure` written to `path`."""
    figure = learning_curves_figure(history)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def alphas_picture(
    record: dict, primitives: dict[str, list[str]], scale: tuple[float, float] | None = None
) -> Image.Image:
    """An epoch's operation weights, one heatmap per cell (edges by operations), on the colour `scale` (default:
    from the epoch's smallest weight to its largest)."""
    cells = alphas_of(record)
    if scale is None:
        values = [p for weights in cells.values() for row in weights for p in row]
        scale = (min(values), max(values))
    figure, axes = plt.subplots(1, len(cells), figsize=(4.6 * len(cells), 4.2), constrained_layout=True, squeeze=False)
    for plot, (cell, weights) in zip(axes[0], cells.items()):
        image = plot.imshow(weights, vmin=scale[0], vmax=scale[1], cmap="viridis", aspect="auto")
        plot.set_xticks(range(len(primitives[cell])), primitives[cell], rotation=60, ha="right")
        plot.set(title=f"{cell} cell", ylabel="edge")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="operation weight")
    figure.suptitle(f"epoch {record['epoch']}")
    return figure_image(figure, dpi=70)


def plot_alphas(history: list[dict], primitives: dict[str, list[str]], folder: Path) -> list[Path]:
    """`alphas.png` (the last epoch's operation weights, one heatmap per cell: edges by operations) and `alphas.gif`
    (every epoch's, one frame each). One colour scale for all frames, from the smallest weight to the largest: the
    alphas move slowly away from uniform, and a 0-1 scale would show nothing."""
    values = [p for record in history for weights in alphas_of(record).values() for row in weights for p in row]
    frames = [alphas_picture(record, primitives, (min(values), max(values))) for record in history]
    frames[-1].save(folder / "alphas.png")
    frames[0].save(folder / "alphas.gif", save_all=True, append_images=frames[1:], duration=600, loop=0)
    return [folder / "alphas.png", folder / "alphas.gif"]


def plot_search(history: list[dict], primitives: dict[str, list[str]], folder: str | Path) -> list[Path]:
    """The plots of a search's result folder (none before its first epoch): `learning_curves.png`, `alphas.png`,
    `alphas.gif`."""
    folder = Path(folder)
    if not history:
        return []
    return [plot_learning_curves(history, folder / "learning_curves.png"), *plot_alphas(history, primitives, folder)]


__all__ = [
    "alpha_columns",
    "alphas_picture",
    "figure_image",
    "learning_curves_figure",
    "normalised_entropy",
    "plot_alphas",
    "plot_learning_curves",
    "plot_search",
]
