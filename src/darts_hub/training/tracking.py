"""The experiment trackers of `--report_to` (Accelerate's) and the pictures a search shows in them.

Every run logs its per-epoch numbers to the trackers (the losses, accuracies or perplexity, the learning rate, the
Hessian eigenvalue where the search measures it). A search also logs, each epoch, the pictures of its result folder
as they stand then: the alpha heatmaps, the cells the alphas encode (graphviz drawings) and the learning curves.
Accelerate's trackers take pictures in different forms (TensorBoard arrays, W&B and Trackio their own image types);
`log_pictures` gives each its own.
"""

from __future__ import annotations

import numpy as np
from accelerate import Accelerator
from accelerate.tracking import get_available_trackers
from accelerate.utils import LoggerType
from PIL import Image

from ..plots import alphas_picture, figure_image, learning_curves_figure
from ..visualize import drawable_cell_pictures


# The pip package of each tracker Accelerate knows (Accelerate leaves a requested tracker that is not installed out
# without a word: `requested_trackers` refuses it instead).
TRACKER_PACKAGES = {
    "aim": "aim",
    "clearml": "clearml",
    "comet_ml": "comet-ml",
    "dvclive": "dvclive",
    "mlflow": "mlflow",
    "swanlab": "swanlab",
    "tensorboard": "tensorboard",
    "trackio": "trackio",
    "wandb": "wandb",
}
# The trackers the pictures go to; the others get the numbers only.
PICTURE_TRACKERS = ("tensorboard", "trackio", "wandb")


def requested_trackers(report_to: str) -> list[str] | None:
    """`--report_to` as Accelerate's `log_with`: None for "none", ["all"] (every installed tracker), or the
    comma-separated tracker names, each checked to be one Accelerate knows and installed."""
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    if names in ([], ["none"]):
        return None
    if names == ["all"]:
        return names
    available = {str(tracker) for tracker in get_available_trackers()}
    for name in names:
        if name not in TRACKER_PACKAGES:
            raise ValueError(
                f"--report_to {report_to}: unknown tracker {name!r}. Choose none, all, or one or more (comma-separated) "
                f"of {', '.join(TRACKER_PACKAGES)}."
            )
        if name not in available:
            raise ValueError(
                f"--report_to {report_to}: the {name} tracker is not installed. Install it with `pip install "
                f'{TRACKER_PACKAGES[name]}` (`pip install "darts-hub[trackers]"` installs tensorboard, trackio '
                "and wandb), or leave it out of --report_to."
            )
    return names


def tracker_settings(settings: dict) -> dict:
    """`settings` as the trackers' configuration takes them: numbers, strings, booleans and None (TensorBoard's
    hyperparameters take nothing else); lists and mappings as their text."""
    return {
        key: value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
        for key, value in settings.items()
    }


def tracker_init_kwargs(logging_dir: str) -> dict:
    """Keyword arguments for each tracker's start: W&B keeps its files (an offline run's, with `WANDB_MODE=offline`)
    in the run's `logs/` folder, beside TensorBoard's, instead of the working directory."""
    return {LoggerType.WANDB.value: {"dir": logging_dir}}


def search_pictures(history: list[dict], columns: dict[str, list[str]]) -> dict[str, Image.Image]:
    """The pictures of a search after its last epoch in `history`: `alphas` (the epoch's operation weights as
    heatmaps; `columns` names their operations, by cell), `learning_curves` (every epoch so far) and `cell/<name>`
    for each cell the alphas encode (none while FairDARTS's threshold keeps no operation, or without graphviz's
    `dot`)."""
    record = history[-1]
    pictures = {
        "alphas": alphas_picture(record, columns),
        "learning_curves": figure_image(learning_curves_figure(history), dpi=70),
    }
    if record["genotype"] is not None:
        cells = drawable_cell_pictures(record["genotype"], "the trackers")
        pictures.update({f"cell/{name}": picture for name, picture in cells.items()})
    return pictures


def log_pictures(accelerator: Accelerator, pictures: dict[str, Image.Image], step: int) -> None:
    """Log `pictures` (by name) at `step` to each started tracker that shows pictures, in the form it takes."""
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images(
                {name: np.asarray(picture)[None] for name, picture in pictures.items()},
                step=step,
                dataformats="NHWC",
            )
        elif tracker.name == "wandb":
            tracker.log_images({name: [picture] for name, picture in pictures.items()}, step=step)
        elif tracker.name == "trackio":
            import trackio

            tracker.log({name: trackio.Image(picture) for name, picture in pictures.items()}, step=step)


__all__ = [
    "PICTURE_TRACKERS",
    "TRACKER_PACKAGES",
    "log_pictures",
    "requested_trackers",
    "search_pictures",
    "tracker_init_kwargs",
    "tracker_settings",
]
