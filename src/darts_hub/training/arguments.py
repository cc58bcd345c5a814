"""The command-line settings shared by the search, training and evaluation scripts (dataclasses for
`HfArgumentParser`), and the checks made when they are parsed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..data.images import DIGITS
from ..data.text import load_text_dataset, split_lines


# Settings that do not change what a run computes: a resume may change them freely.
NOT_RESULT_SETTINGS = {
    "output_dir",
    "overwrite_output_dir",
    "resume_from_checkpoint",
    "accept_inexact_resume",
    "max_steps",
    "report_to",
    "checkpointing_steps",
    "checkpoints_total_limit",
    "push_to_hub",
    "hub_model_id",
    "hub_private_repo",
    "dataloader_num_workers",
}

# Counts and sizes that must be positive when given (checked when the arguments are parsed).
POSITIVE_SETTINGS = (
    "epochs",
    "batch_size",
    "eval_batch_size",
    "test_batch_size",
    "bptt",
    "image_size",
    "max_train_samples",
    "max_steps",
    "checkpointing_steps",
    "checkpoints_total_limit",
    "init_channels",
    "num_cells",
    "num_nodes",
    "multiplier",
    "hidden_size",
    "train_init_channels",
    "train_num_cells",
    "train_hidden_size",
    "gradient_accumulation_steps",
    "learning_rate",
)


def check_positive(args) -> None:
    """Refuse a count or size that is zero or negative (an `--epochs 0` run would save an untrained model)."""
    for name in POSITIVE_SETTINGS:
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise ValueError(f"--{name} must be positive, got {value}.")


@dataclass
class ImageDataArguments:
    """Where the images come from and how they are augmented."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub or local image classification dataset (e.g. uoft-cs/cifar10). Default: the embedded "
            "scikit-learn digits (works offline)."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    train_dir: str | None = field(default=None, metadata={"help": "A local image folder (one sub-folder per class)."})
    validation_dir: str | None = field(default=None, metadata={"help": "A local image folder used as test split."})
    image_column_name: str | None = field(default=None, metadata={"help": "Image column (default: detected)."})
    label_column_name: str | None = field(default=None, metadata={"help": "Label column (default: detected)."})
    image_size: int | None = field(default=None, metadata={"help": "Resize images to this square size."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training images (for quick runs)."}
    )
    crop_padding: int | None = field(
        default=None, metadata={"help": "Random-crop padding in pixels (default: image size / 8; 4 for CIFAR)."}
    )
    horizontal_flip: bool | None = field(
        default=None, metadata={"help": "Random horizontal flips (default: on, off for the digits)."}
    )
    stream_images: bool = field(
        default=False,
        metadata={
            "help": "Decode the images while reading them, in --dataloader_num_workers processes, instead of once "
            "into memory: for datasets larger than memory (ImageNet)."
        },
    )
    dataloader_num_workers: int = field(
        default=4, metadata={"help": "With --stream_images: processes decoding images."}
    )

    @property
    def uses_digits(self) -> bool:
        return self.train_dir is None and self.dataset_name in (None, DIGITS)

    @property
    def dataset_description(self) -> str:
        return self.dataset_name or self.train_dir or "scikit-learn digits (embedded)"


@dataclass
class TextDataArguments:
    """Where a text corpus comes from, besides `dataset_name` / `dataset_config_name` (which the classes using this
    declare with their own defaults and help)."""

    dataset_revision: str | None = field(
        default=None, metadata={"help": "Dataset revision (e.g. refs/convert/parquet for ptb_text_only)."}
    )
    train_file: str | None = field(default=None, metadata={"help": "Local training text (one line per row)."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation text."})
    test_file: str | None = field(default=None, metadata={"help": "Local test text."})
    text_column_name: str | None = field(default=None, metadata={"help": "Text column (default: detected)."})

    def load_lines(self) -> dict[str, list[str]]:
        """The lines of the train, validation and test splits."""
        corpus = load_text_dataset(
            self.dataset_name,
            self.dataset_config_name,
            self.dataset_revision,
            self.train_file,
            self.validation_file,
            self.test_file,
        )
        return split_lines(corpus, self.text_column_name)


@dataclass
class NetworkArguments:
    """Which network a training run starts from: exactly one of a cell, a config, or a saved model."""

    genotype: str | None = field(default=None, metadata={"help": "The cells: a zoo name or a genotype JSON file."})
    config_name: str | None = field(
        default=None, metadata={"help": "A search result folder or saved model (local or Hub) whose config to train."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved model (local or Hub) to continue training or fine-tune."}
    )
    recipe: str | None = field(default=None, metadata={"help": "The paper's hyperparameters to train with."})

    def apply_recipe(self, recipes: dict[str, dict]) -> None:
        """Check the network source; fill the unset (None) hyperparameters from `recipes[self.recipe]`, recording
        in `self.explicit` those the user set."""
        given = sum(x is not None for x in (self.genotype, self.config_name, self.model_name_or_path))
        if given != 1:
            raise ValueError("Name the network with exactly one of --genotype, --config_name, --model_name_or_path.")
        if self.recipe not in recipes:
            raise ValueError(f"--recipe must be one of {sorted(recipes)}, got {self.recipe!r}.")
        recipe = recipes[self.recipe]
        self.explicit = {name for name in recipe if getattr(self, name) is not None}
        for name, value in recipe.items():
            if getattr(self, name) is None:
                setattr(self, name, value)


@dataclass
class RunArguments:
    """Output, reproducibility, precision, trackers, checkpoints and the Hub."""

    output_dir: str = field(default="darts-output", metadata={"help": "Where everything is written."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Write into a non-empty --output_dir that is not this run's (files of the same names are replaced)."
        },
    )
    seed: int = field(default=2, metadata={"help": "Random seed (the original's default)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many steps in all."})
    channels_last: bool | None = field(
        default=None,
        metadata={"help": "Use the channels-last memory format (default: on for the CPU, where it is ~1.8x faster)."},
    )
    mixed_precision: str | None = field(
        default=None, metadata={"help": "no, fp16 or bf16 (default: what `accelerate launch` or its config says)."}
    )
    report_to: str = field(
        default="none", metadata={"help": "Trackers for accelerator.log: none, all, tensorboard, wandb, ..."}
    )
    checkpointing_steps: int | None = field(
        default=None, metadata={"help": "Also checkpoint every N steps (always at the end of each epoch)."}
    )
    checkpoints_total_limit: int = field(default=2, metadata={"help": "How many checkpoints to keep."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' (this run's newest complete checkpoint) or a checkpoint folder."}
    )
    accept_inexact_resume: bool = field(
        default=False,
        metadata={
            "help": "Resume even with settings that differ from the checkpoint's, or without its random states."
        },
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the output folder to the Hub at the end."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository (user/name) to push to."})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})

    def __post_init__(self):
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id (user/name).")
        if self.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise ValueError("--mixed_precision fp16 needs a GPU; on the CPU use bf16 or no.")
        check_positive(self)  # the values given; a recipe fills the others with positive ones

    def tracker_config(self) -> dict:
        """The settings as logged to trackers and model cards (never the token)."""
        return {key: value for key, value in asdict(self).items() if key != "hub_token"}

    def result_settings(self) -> dict:
        """The settings that determine what the run computes: recorded in checkpoints, checked when resuming."""
        return {key: value for key, value in self.tracker_config().items() if key not in NOT_RESULT_SETTINGS}


__all__ = [
    "ImageDataArguments",
    "NOT_RESULT_SETTINGS",
    "NetworkArguments",
    "POSITIVE_SETTINGS",
    "RunArguments",
    "TextDataArguments",
    "check_positive",
]
