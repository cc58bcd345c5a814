"""The command-line settings of the search, training and evaluation scripts (dataclasses for `HfArgumentParser`;
defaults from `recipes`), and the checks made when they are parsed. Only settings live here: the tasks that read
them are in `search_images.py`, `search_text.py`, `train_images.py`, `train_text.py` and `evaluate_checkpoint.py`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from transformers import PreTrainedConfig

from ..data.images import DIGITS
from ..export import require_export
from ..models.configuration_nas_bench_201 import NasBench201Config
from ..models.genotypes import SEARCH_SPACES, NasBench201Genotype, load_genotype
from ..models.modeling_darts_search import RELAXATIONS, DartsSearchConfig
from ..models.modeling_nas_bench_201_search import NAS_BENCH_201_RELAXATIONS, NasBench201SearchConfig
from ..recipes import (
    BETA_DECAY,
    CIFAR10_SEARCH,
    DRNAS,
    EIGENVALUE_EARLY_STOPPING,
    FAIRDARTS,
    GDAS,
    IMAGE_TRAINING,
    LANGUAGE_MODEL_TRAINING,
    LANGUAGE_MODEL_TRAINING_COMMON,
    PTB_SEARCH,
    RANDOM_SMOOTHING,
)
from ..search.architect import HESSIAN_MODES
from ..search.early_stopping import EigenvalueRule, early_stopping_rule
from ..search.regularisers import REGULARISERS
from .tracking import requested_trackers


# Settings that do not change what a run computes: a resume may change them freely.
NOT_RESULT_SETTINGS = {
    "output_dir",
    "overwrite_output_dir",
    "resume_from_checkpoint",
    "accept_inexact_resume",
    "max_steps",
    "report_to",
    "logging_steps",
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
    "logging_steps",
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
    "num_searches",
    "selection_epochs",
    "selection_batch_size",
    "num_runs",
    "hessian_eigenvalue_every",
    "early_stopping_window",
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
    train_arrays: str | None = field(
        default=None,
        metadata={"help": "A NumPy .npz file of training images: x, uint8 [N, H, W, C], and y, labels 0..K-1."},
    )
    validation_arrays: str | None = field(
        default=None, metadata={"help": "A .npz file like --train_arrays, used as test split."}
    )
    class_names: str | None = field(
        default=None, metadata={"help": "With --train_arrays: the class names, comma-separated (default: 0, 1, ...)."}
    )
    image_column_name: str | None = field(default=None, metadata={"help": "Image column (default: detected)."})
    label_column_name: str | None = field(default=None, metadata={"help": "Label column (default: detected)."})
    image_size: int | None = field(default=None, metadata={"help": "Resize images to this square size."})
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Use only N training images, a random choice with every class in proportion (quick runs)."},
    )
    data_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the choice of --max_train_samples images and of a search's weight/architecture split "
            "(fixed, so that runs of different --seed see the same data, as with the original's fixed split)."
        },
    )
    image_mean: list[float] | None = field(
        default=None,
        metadata={
            "help": "Per-channel mean for normalisation, e.g. the original's CIFAR-10 0.4914 0.4822 0.4465 (default: "
            "the training images' own)."
        },
    )
    image_std: list[float] | None = field(
        default=None,
        metadata={
            "help": "Per-channel standard deviation, e.g. the original's CIFAR-10 0.2470 0.2435 0.2616 (default: the "
            "training images' own)."
        },
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
        return self.train_dir is None and self.train_arrays is None and self.dataset_name in (None, DIGITS)

    @property
    def image_source(self) -> dict:
        """Where the images are, as `inputs.open_image_splits` takes it."""
        return {
            "dataset_name": self.dataset_name,
            "dataset_config_name": self.dataset_config_name,
            "train_dir": self.train_dir,
            "validation_dir": self.validation_dir,
            "train_arrays": self.train_arrays,
            "validation_arrays": self.validation_arrays,
            "class_names": self.class_names.split(",") if self.class_names else None,
            "image_column": self.image_column_name,
            "label_column": self.label_column_name,
            "max_train_samples": self.max_train_samples,
            "data_seed": self.data_seed,
            "stream_workers": self.dataloader_num_workers if self.stream_images else None,
        }

    @property
    def augmentation(self) -> dict:
        """The padded crop and flips of `--crop_padding` / `--horizontal_flip` (None: the size's default; flips off
        for the digits, whose orientation is their meaning)."""
        flips = (not self.uses_digits) if self.horizontal_flip is None else self.horizontal_flip
        return {"crop_padding": self.crop_padding, "horizontal_flip": flips}

    @property
    def dataset_description(self) -> str:
        return self.dataset_name or self.train_dir or self.train_arrays or "scikit-learn digits (embedded)"


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

    @property
    def text_source(self) -> dict:
        """Where the text is, as `data.text.load_lines` takes it."""
        names = ("dataset_name", "dataset_config_name", "dataset_revision", "train_file", "validation_file")
        return {name: getattr(self, name) for name in (*names, "test_file", "text_column_name")}


@dataclass
class NetworkArguments:
    """Which network a training run starts from (exactly one of a cell, a config, or a saved model), and how many
    times it is trained."""

    genotype: str | None = field(
        default=None,
        metadata={
            "help": "The cells: a zoo name, a genotype JSON file, or a NAS-Bench-201 cell as the benchmark writes it "
            "('|nor_conv_3x3~0|+|...|', trained in the benchmark's network)."
        },
    )
    config_name: str | None = field(
        default=None, metadata={"help": "A search result folder or saved model (local or Hub) whose config to train."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved model (local or Hub) to continue training or fine-tune."}
    )
    recipe: str | None = field(default=None, metadata={"help": "The paper's hyperparameters to train with."})
    num_runs: int = field(
        default=1,
        metadata={
            "help": "Train N times, with seeds --seed, --seed + 1, ..., and report the test figure as mean +/- std "
            "(each run in runs/seed-S/; the best is the folder's model)."
        },
    )

    export: str | None = field(
        default=None,
        metadata={
            "help": "Also export the trained network into the output folder (listed in the card, pushed with it): "
            "onnx (model.onnx, checked by onnxruntime; pip install 'darts-hub[onnx]')."
        },
    )
    demo: bool = field(
        default=False,
        metadata={
            "help": "Image classifiers: also write a Space-ready Gradio demo page into demo/ (listed in the card, "
            "pushed with it; darts-demo writes one for an existing model)."
        },
    )

    given_settings: list[str] = field(
        default_factory=list,
        init=False,
        metadata={"help": "Set by `fill_recipe`: the recipe's settings the user gave (not a flag)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.export is not None:
            require_export(self.export)  # refused before any training, not after it

    def architecture(self, names: tuple[str, ...]) -> dict:
        """The sizes among `names` to build the network at: all those set for a genotype; for a saved config or
        model, only those the user gave (it keeps its own otherwise)."""
        chosen = (name for name in names if self.genotype or name in self.given_settings)
        return {name: getattr(self, name) for name in chosen if getattr(self, name) is not None}


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
        default="none",
        metadata={
            "help": "Experiment trackers (Accelerate's): none, all (those installed), or comma-separated names: "
            "trackio, tensorboard, wandb (these three also get a search's pictures), aim, mlflow, comet_ml, ..."
        },
    )
    logging_steps: int | None = field(
        default=None,
        metadata={
            "help": "Also log the training loss averaged over every N steps (to the log, the trackers and "
            "training_steps.json), besides each epoch's figures."
        },
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
        requested_trackers(self.report_to)  # a tracker that is not installed is refused now, not left out

    def tracker_config(self) -> dict:
        """The settings as logged to trackers and model cards (never the token)."""
        return {key: value for key, value in asdict(self).items() if key != "hub_token"}

    def result_settings(self) -> dict:
        """The settings that determine what the run computes: recorded in checkpoints, checked when resuming."""
        return {key: value for key, value in self.tracker_config().items() if key not in NOT_RESULT_SETTINGS}


# The spaces `--search_space` names: DARTS's and RobustDARTS's (`DartsSearchConfig`), and NAS-Bench-201's.
NAS_BENCH_201 = "nas-bench-201"
SEARCH_SPACE_NAMES = (*SEARCH_SPACES, NAS_BENCH_201)


@dataclass
class SearchArguments(ImageDataArguments, RunArguments):
    """Settings of a convolutional architecture search. Defaults are the paper's CIFAR-10 search (Sec. 3.1)."""

    output_dir: str = field(default="darts-search", metadata={"help": "Where the result folder is written."})
    train_portion: float = field(
        default=CIFAR10_SEARCH["train_portion"],
        metadata={"help": "Share of the training split that trains the weights; the rest trains alpha."},
    )
    order: int = field(default=1, metadata={"help": "1: first-order DARTS; 2: second order (unrolled step)."})
    hessian: str = field(
        default="finite_difference",
        metadata={"help": f"Second order only: Hessian-vector product by {' or '.join(HESSIAN_MODES)}."},
    )
    init_channels: int = field(
        default=CIFAR10_SEARCH["init_channels"], metadata={"help": "Channels of the supernet's first cells."}
    )
    num_cells: int = field(default=CIFAR10_SEARCH["num_cells"], metadata={"help": "Cells of the supernet."})
    num_nodes: int = field(default=CIFAR10_SEARCH["num_nodes"], metadata={"help": "Intermediate nodes per cell."})
    multiplier: int = field(
        default=CIFAR10_SEARCH["multiplier"], metadata={"help": "Nodes concatenated into the cell output."}
    )
    epochs: int = field(default=CIFAR10_SEARCH["epochs"], metadata={"help": "Search epochs."})
    batch_size: int = field(
        default=CIFAR10_SEARCH["batch_size"],
        metadata={"help": "Batch size per process, for both weight and alpha steps."},
    )
    learning_rate: float = field(
        default=CIFAR10_SEARCH["learning_rate"], metadata={"help": "Initial weight learning rate (SGD)."}
    )
    learning_rate_min: float = field(
        default=CIFAR10_SEARCH["learning_rate_min"], metadata={"help": "Final weight learning rate (cosine)."}
    )
    momentum: float = field(default=CIFAR10_SEARCH["momentum"], metadata={"help": "SGD momentum."})
    weight_decay: float = field(
        default=CIFAR10_SEARCH["weight_decay"], metadata={"help": "Weight decay of the weights."}
    )
    grad_clip: float = field(
        default=CIFAR10_SEARCH["grad_clip"], metadata={"help": "Gradient norm clipping of the weight step."}
    )
    arch_learning_rate: float = field(
        default=CIFAR10_SEARCH["arch_learning_rate"], metadata={"help": "Learning rate of the alphas (Adam)."}
    )
    arch_weight_decay: float = field(
        default=CIFAR10_SEARCH["arch_weight_decay"], metadata={"help": "Weight decay of the alphas."}
    )
    arch_beta1: float = field(default=CIFAR10_SEARCH["arch_beta1"], metadata={"help": "Adam beta1 of the alphas."})
    arch_beta2: float = field(default=CIFAR10_SEARCH["arch_beta2"], metadata={"help": "Adam beta2 of the alphas."})
    partial_channels: int = field(
        default=1,
        metadata={
            "help": "PC-DARTS (Xu et al. 2020): the mixed operations see 1/K of the channels, the rest bypass them "
            "(channel shuffle); the paper's K is 4 on CIFAR-10. 1 (the default) is DARTS."
        },
    )
    edge_normalization: bool | None = field(
        default=None,
        metadata={
            "help": "PC-DARTS's edge normalisation: each node weighs its incoming edges by the softmax of their "
            "betas (architecture weights too, used in choosing the derived cell's inputs). Default: on with "
            "--partial_channels > 1, off otherwise."
        },
    )
    activation_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "Keep only each cell's inputs in the forward pass and recompute the cell in the backward pass: "
            "the same step with a fraction of the memory, at the cost of one more forward pass per cell."
        },
    )
    search_space: str = field(
        default="darts",
        metadata={
            "help": "The candidates of each edge: darts (the paper's eight on every edge), RobustDARTS's s1 (each "
            "edge its own two), s2 (skip_connect, sep_conv_3x3), s3 (s2 and none), s4 (noise, sep_conv_3x3) (s1-s4 "
            "need --num_nodes 4), or nas-bench-201 (NAS-Bench-201's network: one cell of 3 nodes and 6 edges over "
            "none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3, --cells_per_stage cells in each of "
            "its 3 stages; every edge keeps its strongest operation, none included)."
        },
    )
    cells_per_stage: int = field(
        default=NasBench201SearchConfig.cells_per_stage,
        metadata={"help": "--search_space nas-bench-201: cells per stage (the benchmark's N), searched and derived."},
    )
    relaxation: str = field(
        default="softmax",
        metadata={
            "help": "How the alphas weigh the candidates in training: softmax (DARTS), gumbel (GDAS: one operation "
            "per edge sampled by the hard Gumbel-softmax, temperature --temperature_max annealed to "
            "--temperature_min; only it runs), dirichlet (DrNAS: Dirichlet samples of concentration elu(alpha)+1, "
            "with a KL term weighted --dirichlet_kl_scale) or sigmoid (FairDARTS: independent sigmoid weights, no "
            "'none' candidate, a zero-one loss weighted --zero_one_loss_weight, and the genotype keeps the "
            "operations weighing at least --operation_threshold). The samplers search first order."
        },
    )
    zero_one_loss_weight: float = field(
        default=FAIRDARTS["zero_one_weight"],
        metadata={"help": "--relaxation sigmoid: the weight of FairDARTS's zero-one loss on the sigmoid weights."},
    )
    operation_threshold: float = field(
        default=DartsSearchConfig.operation_threshold,
        metadata={"help": "--relaxation sigmoid: the sigmoid weight an operation needs to enter the genotype."},
    )
    temperature_max: float = field(
        default=GDAS["temperature_max"], metadata={"help": "--relaxation gumbel: the first epoch's temperature."}
    )
    temperature_min: float = field(
        default=GDAS["temperature_min"], metadata={"help": "--relaxation gumbel: the last epoch's temperature."}
    )
    dirichlet_kl_scale: float = field(
        default=DRNAS["kl_scale"],
        metadata={"help": "--relaxation dirichlet: the weight of the KL term towards the uniform Dirichlet."},
    )
    regulariser: str | None = field(
        default=None,
        metadata={
            "help": "Against collapse: beta_decay (beta-DARTS: the architecture objective gains the mean log-sum-exp "
            "of each edge's alphas, weighted by --beta_decay_rate x epoch), random_smoothing (SDARTS-RS: the "
            "weight step mixes with noisy softmax weights, radius 0.03 growing to --smoothing_epsilon) or "
            "auxiliary_skip (DARTS-: every edge adds its input, weighted 1 decaying linearly to 0)."
        },
    )
    beta_decay_rate: float = field(
        default=BETA_DECAY["rate"], metadata={"help": "--regulariser beta_decay: its weight's growth per epoch."}
    )
    smoothing_epsilon: float = field(
        default=RANDOM_SMOOTHING["epsilon"],
        metadata={"help": "--regulariser random_smoothing: the noise radius reached at the last epoch."},
    )
    hessian_eigenvalue_every: int | None = field(
        default=None,
        metadata={
            "help": "Every N epochs (and after the last): the largest eigenvalue of the Hessian of the validation "
            "loss with respect to the alphas (RobustDARTS), recorded per epoch, plotted and in the card."
        },
    )
    early_stopping: list[str] | None = field(
        default=None,
        metadata={
            "help": "Stop the search early: `eigenvalue` (RobustDARTS's rule on the local average of the eigenvalue; "
            "needs --hessian_eigenvalue_every; keeps the genotype from before the rise) or `skip_connections K` "
            "(DARTS+: stop once the normal cell holds K skip connections)."
        },
    )
    early_stopping_window: int = field(
        default=EIGENVALUE_EARLY_STOPPING["window"],
        metadata={"help": "--early_stopping eigenvalue: measurements per local average."},
    )
    early_stopping_factor: float = field(
        default=EIGENVALUE_EARLY_STOPPING["factor"],
        metadata={"help": "--early_stopping eigenvalue: the rise of the local average that stops the search."},
    )
    train_init_channels: int = field(
        default=IMAGE_TRAINING["cifar"]["init_channels"],
        metadata={"help": "Channels of the derived network in the result's config.json."},
    )
    train_num_cells: int = field(
        default=IMAGE_TRAINING["cifar"]["num_cells"], metadata={"help": "Cells of the derived network in config.json."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.order not in (1, 2):
            raise ValueError(f"--order must be 1 or 2, got {self.order}.")
        if self.hessian not in HESSIAN_MODES:
            raise ValueError(f"--hessian must be one of {HESSIAN_MODES}, got {self.hessian!r}.")
        if not 0.0 < self.train_portion < 1.0:
            raise ValueError(f"--train_portion must be between 0 and 1, got {self.train_portion}.")
        if self.partial_channels < 1 or self.init_channels % self.partial_channels:
            raise ValueError(
                f"--partial_channels must divide --init_channels ({self.init_channels}), got {self.partial_channels}."
            )
        if self.regulariser not in (None, *REGULARISERS):
            raise ValueError(f"--regulariser must be one of {sorted(REGULARISERS)}, got {self.regulariser!r}.")
        if self.search_space not in SEARCH_SPACE_NAMES:
            raise ValueError(f"--search_space must be one of {list(SEARCH_SPACE_NAMES)}, got {self.search_space!r}.")
        if self.search_space == NAS_BENCH_201:
            self._check_nas_bench_201()
        elif self.cells_per_stage != NasBench201SearchConfig.cells_per_stage:
            raise ValueError(
                f"--cells_per_stage sizes NAS-Bench-201's network; --search_space {self.search_space} stacks "
                "--num_cells cells. Leave out --cells_per_stage, or pass --search_space nas-bench-201."
            )
        elif self.search_space != "darts" and self.num_nodes != 4:
            raise ValueError(
                f"--search_space {self.search_space} lists the candidates of a 4-node cell: --num_nodes must be 4, "
                f"got {self.num_nodes}."
            )
        if self.relaxation not in RELAXATIONS:
            raise ValueError(f"--relaxation must be one of {list(RELAXATIONS)}, got {self.relaxation!r}.")
        if self.relaxation != "softmax":
            self._check_relaxation()
        rule = early_stopping_rule(self.early_stopping, self.early_stopping_window, self.early_stopping_factor)
        if isinstance(rule, EigenvalueRule) and self.hessian_eigenvalue_every is None:
            raise ValueError(
                "--early_stopping eigenvalue reads the eigenvalue the monitor measures: give --hessian_eigenvalue_every "
                "N too (RobustDARTS: 1)."
            )
        if self.early_stopping_factor <= 1:
            raise ValueError(f"--early_stopping_factor must be above 1, got {self.early_stopping_factor}.")

    def _check_nas_bench_201(self) -> None:
        """What NAS-Bench-201's space does not go with, refused before anything runs: the sizes of the DARTS cells
        and networks, PC-DARTS and FairDARTS's parse."""
        given = f"--search_space {NAS_BENCH_201}"
        darts_sizes = {
            "num_cells": "--cells_per_stage",
            "num_nodes": None,
            "multiplier": None,
            "train_init_channels": "--init_channels",
            "train_num_cells": "--cells_per_stage",
        }
        for name, instead in darts_sizes.items():
            if getattr(self, name) != type(self).__dataclass_fields__[name].default:
                hint = f"use {instead}" if instead else "its cell has 3 nodes, and its output is the last"
                raise ValueError(
                    f"--{name} sizes DARTS's cells and networks; {given} has the benchmark's network, searched and "
                    f"derived at the same sizes: leave out --{name} ({hint})."
                )
        if self.cells_per_stage < 1:
            raise ValueError(f"--cells_per_stage must be positive, got {self.cells_per_stage}.")
        if self.relaxation not in NAS_BENCH_201_RELAXATIONS:
            raise ValueError(
                f"--relaxation {self.relaxation} parses DARTS's two strongest edges per node, while {given} keeps "
                f"every edge: use --relaxation {' or '.join(NAS_BENCH_201_RELAXATIONS)} with it."
            )
        if self.partial_channels != 1 or self.edge_normalization:
            raise ValueError(
                f"--partial_channels and --edge_normalization are PC-DARTS's, for DARTS's space; {given} searches "
                "every channel of every edge. Leave them out."
            )
        if self.activation_checkpointing:
            raise ValueError(
                f"--activation_checkpointing recomputes DARTS's search cells; {given}'s supernet is small enough "
                "without it. Leave it out."
            )

    def _check_relaxation(self) -> None:
        """What a relaxation other than the softmax does not go with, refused before anything runs."""
        given = f"--relaxation {self.relaxation}"
        if self.regulariser in ("beta_decay", "random_smoothing"):
            raise ValueError(
                f"--regulariser {self.regulariser} acts on the softmax of the alphas, which {given} replaces. Use "
                "--relaxation softmax with it, or --regulariser auxiliary_skip."
            )
        if self.relaxation == "sigmoid":
            if not 0 <= self.operation_threshold <= 1:
                raise ValueError(
                    f"--operation_threshold is a sigmoid weight, in [0, 1]; got {self.operation_threshold}."
                )
            return
        if self.order == 2:
            raise ValueError(
                f"{given} searches first order (GDAS and DrNAS as published): the unrolled step's finite differences "
                "would compare the loss under two different samples. Leave out --order 2."
            )
        if self.hessian_eigenvalue_every is not None:
            raise ValueError(
                f"--hessian_eigenvalue_every measures the curvature of DARTS's deterministic objective; with {given} "
                "the objective is sampled anew at every pass. Leave out one of the two."
            )
        if self.temperature_min <= 0 or self.temperature_max < self.temperature_min:
            raise ValueError(
                "--temperature_max and --temperature_min must satisfy 0 < min <= max, got "
                f"{self.temperature_max} and {self.temperature_min}."
            )


@dataclass
class RecurrentSearchArguments(TextDataArguments, RunArguments):
    """Settings of a recurrent cell search. Defaults are the paper's Penn Treebank search."""

    output_dir: str = field(default="darts-rnn-search", metadata={"help": "Where the result folder is written."})
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A Hub text dataset (e.g. Salesforce/wikitext). Default: the embedded pydoc corpus."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    order: int = field(default=1, metadata={"help": "1: first-order DARTS; 2: second order (unrolled step)."})
    hessian: str = field(default="finite_difference", metadata={"help": f"One of {HESSIAN_MODES}."})
    hidden_size: int = field(
        default=PTB_SEARCH["hidden_size"], metadata={"help": "Embedding and hidden size of the supernet."}
    )
    num_nodes: int = field(default=PTB_SEARCH["num_nodes"], metadata={"help": "Nodes of the cell."})
    dropout: float = field(default=PTB_SEARCH["dropout"], metadata={"help": "Output dropout."})
    dropout_h: float = field(
        default=PTB_SEARCH["dropout_h"], metadata={"help": "Hidden-state dropout inside the cell."}
    )
    dropout_x: float = field(default=PTB_SEARCH["dropout_x"], metadata={"help": "Input dropout inside the cell."})
    dropout_i: float = field(default=PTB_SEARCH["dropout_i"], metadata={"help": "Embedding dropout."})
    dropout_e: float = field(default=PTB_SEARCH["dropout_e"], metadata={"help": "Word dropout."})
    epochs: int = field(default=PTB_SEARCH["epochs"], metadata={"help": "Search epochs."})
    batch_size: int = field(
        default=PTB_SEARCH["batch_size"], metadata={"help": "Parallel streams of the training and search text."}
    )
    eval_batch_size: int = field(
        default=PTB_SEARCH["eval_batch_size"], metadata={"help": "Parallel streams for the validation perplexity."}
    )
    bptt: int = field(default=PTB_SEARCH["bptt"], metadata={"help": "Tokens per chunk."})
    learning_rate: float = field(default=PTB_SEARCH["learning_rate"], metadata={"help": "Weight learning rate (SGD)."})
    weight_decay: float = field(default=PTB_SEARCH["weight_decay"], metadata={"help": "Weight decay of the weights."})
    grad_clip: float = field(
        default=PTB_SEARCH["grad_clip"], metadata={"help": "Gradient clipping (weight step and unrolled step)."}
    )
    tar_beta: float = field(
        default=PTB_SEARCH["tar_beta"],
        metadata={"help": "Temporal activation regularisation (slowness) weight beta of the weight step; 0: off."},
    )
    arch_learning_rate: float = field(
        default=PTB_SEARCH["arch_learning_rate"], metadata={"help": "Learning rate of the alphas (Adam)."}
    )
    arch_weight_decay: float = field(
        default=PTB_SEARCH["arch_weight_decay"], metadata={"help": "Weight decay of the alphas."}
    )
    train_hidden_size: int = field(
        default=LANGUAGE_MODEL_TRAINING["ptb"]["hidden_size"],
        metadata={"help": "Sizes of the derived network in config.json."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.order not in (1, 2):
            raise ValueError(f"--order must be 1 or 2, got {self.order}.")
        if self.bptt < 1:
            raise ValueError(f"--bptt (the sequence length) must be at least 1, got {self.bptt}.")


@dataclass
class TrainArguments(NetworkArguments, ImageDataArguments, RunArguments):
    """Settings of training a DARTS network. Unset hyperparameters come from the `--recipe`."""

    output_dir: str = field(default="darts-trained", metadata={"help": "Where the trained model is written."})
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "With --model_name_or_path: new classifier if the classes differ."}
    )
    recipe: str = field(
        default="cifar",
        metadata={"help": "cifar or imagenet: the paper's hyperparameters (ptb, wikitext2: language models)."},
    )
    eval_split: str = field(default="test", metadata={"help": "Split evaluated after every epoch (monitoring only)."})
    epochs: int | None = field(default=None, metadata={"help": "Training epochs (cifar 600, imagenet 250)."})
    batch_size: int | None = field(default=None, metadata={"help": "Batch size per process (cifar 96, imagenet 128)."})
    learning_rate: float | None = field(default=None, metadata={"help": "Initial learning rate (0.025, 0.1)."})
    lr_schedule: str | None = field(default=None, metadata={"help": "cosine (to 0) or exponential (x lr_gamma)."})
    lr_gamma: float | None = field(default=None, metadata={"help": "Per-epoch decay of the exponential schedule."})
    momentum: float | None = field(default=None, metadata={"help": "SGD momentum (0.9)."})
    weight_decay: float | None = field(default=None, metadata={"help": "Weight decay (3e-4, 3e-5)."})
    init_channels: int | None = field(default=None, metadata={"help": "Channels of the first cells (36, 48)."})
    num_cells: int | None = field(default=None, metadata={"help": "Number of cells (20, 14)."})
    cells_per_stage: int | None = field(
        default=None,
        metadata={
            "help": "NAS-Bench-201 networks only: cells in each of the three stages (default: the source config's; "
            "for a cell string, the benchmark's 5)."
        },
    )
    stem: str | None = field(default=None, metadata={"help": "cifar or imagenet stem."})
    auxiliary_weight: float | None = field(
        default=None, metadata={"help": "Weight of the auxiliary loss (0.4; 0 removes the head)."}
    )
    cutout: int | None = field(default=None, metadata={"help": "Cutout square side in pixels (cifar 16, 0: off)."})
    drop_path_prob: float | None = field(
        default=None, metadata={"help": "Final drop-path probability, reached linearly over the epochs (0.2)."}
    )
    grad_clip: float | None = field(default=None, metadata={"help": "Gradient norm clipping (5)."})
    label_smoothing: float | None = field(default=None, metadata={"help": "Label smoothing (imagenet 0.1)."})
    random_resized_crop: bool | None = field(
        default=None, metadata={"help": "Random resized crops instead of padded crops (imagenet)."}
    )
    color_jitter: float | None = field(
        default=None, metadata={"help": "Colour jitter strength: brightness, contrast, saturation (imagenet 0.4)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.lr_schedule not in (None, "cosine", "exponential"):
            raise ValueError(f"--lr_schedule must be cosine or exponential, got {self.lr_schedule!r}.")


@dataclass
class LanguageModelTrainArguments(NetworkArguments, TextDataArguments, RunArguments):
    """Settings of training a recurrent DARTS language model. Defaults are the original's; `--recipe` sets the
    sizes, hidden dropout and weight decay of its PTB or WikiText-2 training unless given."""

    output_dir: str = field(default="darts-rnn-trained", metadata={"help": "Where the trained model is written."})
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A Hub text dataset (e.g. Salesforce/wikitext). Default: the embedded pydoc corpus."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    recipe: str = field(default="ptb", metadata={"help": "ptb or wikitext2: the original's hyperparameters."})
    epochs: int = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["epochs"],
        metadata={"help": "Epochs (the original trains until convergence: 8000)."},
    )
    batch_size: int = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["batch_size"],
        metadata={"help": "Parallel streams of the training text (per process)."},
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={
            "help": "Run each batch as this many groups of streams, one forward and backward each, before the "
            "step (the original's small_batch_size = batch_size / this): less memory, the same step."
        },
    )
    eval_batch_size: int = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["eval_batch_size"],
        metadata={"help": "Parallel streams of the validation perplexity."},
    )
    test_batch_size: int = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["test_batch_size"],
        metadata={"help": "Parallel streams of the final test perplexity."},
    )
    bptt: int = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["bptt"],
        metadata={"help": "Mean tokens per training chunk (evaluation: exactly)."},
    )
    max_seq_len_delta: int = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["max_seq_len_delta"],
        metadata={"help": "Training chunks hold at most bptt + this."},
    )
    learning_rate: float = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["learning_rate"],
        metadata={"help": "SGD and ASGD learning rate (per bptt tokens)."},
    )
    weight_decay: float | None = field(default=None, metadata={"help": "Weight decay (ptb 8e-7, wikitext2 5e-7)."})
    grad_clip: float = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["grad_clip"], metadata={"help": "Gradient norm clipping."}
    )
    tar_beta: float = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["tar_beta"],
        metadata={"help": "Temporal activation regularisation (slowness) weight beta; 0: off."},
    )
    asgd_patience: int = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["asgd_patience"],
        metadata={
            "help": "Switch to averaged SGD when the validation loss is worse than the best one from before the "
            "last N evaluations (the original's nonmono)."
        },
    )
    hidden_size: int | None = field(default=None, metadata={"help": "Embedding = hidden size (ptb 850, wt2 700)."})
    dropout: float = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["dropout"], metadata={"help": "Output (locked) dropout."}
    )
    dropout_h: float | None = field(default=None, metadata={"help": "Hidden-state dropout (ptb 0.25, wt2 0.15)."})
    dropout_x: float = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["dropout_x"], metadata={"help": "Input dropout inside the cell."}
    )
    dropout_i: float = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["dropout_i"], metadata={"help": "Embedding (locked) dropout."}
    )
    dropout_e: float = field(
        default=LANGUAGE_MODEL_TRAINING_COMMON["dropout_e"], metadata={"help": "Word dropout (whole embedding rows)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.demo:
            raise ValueError(
                "--demo writes a demo page for image classifiers, not language models: leave it out, and generate "
                'text with transformers\' pipeline("text-generation", model=OUTPUT_DIR, trust_remote_code=True).'
            )
        if self.bptt < 1:
            raise ValueError(f"--bptt (the sequence length) must be at least 1, got {self.bptt}.")
        if self.gradient_accumulation_steps < 1 or self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                f"--batch_size {self.batch_size} must split into --gradient_accumulation_steps "
                f"{self.gradient_accumulation_steps} equal groups of streams."
            )


def fill_recipe(args: TrainArguments | LanguageModelTrainArguments):
    """Check the network source and fill the unset (None) hyperparameters of a training from its `--recipe`,
    recording in `args.given_settings` those the user set. The commands call this once, after parsing; returns
    `args`."""
    recipes = LANGUAGE_MODEL_TRAINING if isinstance(args, LanguageModelTrainArguments) else IMAGE_TRAINING
    given = sum(x is not None for x in (args.genotype, args.config_name, args.model_name_or_path))
    if given != 1:
        raise ValueError("Name the network with exactly one of --genotype, --config_name, --model_name_or_path.")
    if args.recipe not in recipes:
        raise ValueError(f"--recipe must be one of {sorted(recipes)}, got {args.recipe!r}.")
    recipe = recipes[args.recipe]
    args.given_settings = sorted(name for name in recipe if getattr(args, name) is not None)
    for name, value in recipe.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if _source_model_type(args) == NasBench201Config.model_type:
        _fit_nas_bench_201(args)
    elif getattr(args, "cells_per_stage", None) is not None:
        raise ValueError(
            f"--cells_per_stage sizes NAS-Bench-201 networks; {_source_name(args)} is a DARTS network. Leave out "
            "--cells_per_stage (--num_cells sets its depth)."
        )
    return args


# What DARTS networks have and NAS-Bench-201's do not, by training flag.
NOT_IN_NAS_BENCH_201 = {
    "auxiliary_weight": "auxiliary head",
    "drop_path_prob": "drop-path",
    "label_smoothing": "label smoothing",
}


def _source_name(args) -> str:
    """The network source as the user named it, for messages."""
    return args.genotype or args.config_name or args.model_name_or_path


def _source_model_type(args) -> str | None:
    """The `model_type` of the network a training starts from: of the config of its folder or Hub id, or
    NasBench201Config's for a NAS-Bench-201 cell given as --genotype (a bad --genotype is refused here, before the
    data loads). None for a DARTS genotype, or where a config cannot be read here (building the network then says
    why)."""
    if args.genotype is not None:
        if not isinstance(args, TrainArguments):  # a recurrent cell
            return None
        cell = load_genotype(args.genotype)
        return NasBench201Config.model_type if isinstance(cell, NasBench201Genotype) else None
    try:
        return PreTrainedConfig.get_config_dict(_source_name(args))[0].get("model_type")
    except (OSError, ValueError):
        return None


def _fit_nas_bench_201(args) -> None:
    """A NAS-Bench-201 network trains without what only DARTS networks have: given, it is refused naming the flag;
    from the recipe, it is set to 0 (so that the records and the card say what ran)."""
    given = [name for name in NOT_IN_NAS_BENCH_201 if name in args.given_settings and getattr(args, name)]
    given += [name for name in ("num_cells", "stem") if name in args.given_settings]
    if given:
        missing = ", ".join(NOT_IN_NAS_BENCH_201.values())
        raise ValueError(
            f"{_source_name(args)} is a NAS-Bench-201 network: it has no {missing}, its stem is the benchmark's and "
            f"its depth is --cells_per_stage. Leave out {', '.join('--' + name for name in given)}."
        )
    for name in NOT_IN_NAS_BENCH_201:
        setattr(args, name, 0.0)
    # The DARTS recipe's sizes do not apply: a cell string trains at the benchmark's unless the user gave others.
    args.num_cells = args.stem = None
    if "init_channels" not in args.given_settings:
        args.init_channels = None
    if args.cells_per_stage is not None:
        args.given_settings.append("cells_per_stage")


@dataclass
class SelectionArguments:
    """The paper's selection (Sec. 3.2): several searches, each found cell trained briefly from scratch, the best
    kept. The searches take the search script's flags; the trainings the recipe's (cifar, ptb) with this budget."""

    num_searches: int = field(default=4, metadata={"help": "Searches, with seeds --seed, --seed + 1, ... (4)."})
    selection_epochs: int | None = field(
        default=None,
        metadata={"help": "Epochs of each found cell's training from scratch (the paper's 100 CIFAR-10, 300 PTB)."},
    )
    selection_batch_size: int | None = field(
        default=None, metadata={"help": "Batch size of those trainings (default: the recipe's, 96 or 64)."}
    )
    selection_eval_split: str = field(
        default="test",
        metadata={
            "help": "Images: the split whose accuracy selects (the original's CIFAR-10 'valid' is the test set; "
            "name a validation split if the dataset has one). Language models select by validation perplexity."
        },
    )

    def __post_init__(self):
        check_positive(self)

    def epochs_for(self, recurrent: bool) -> int:
        """The selection trainings' epochs: as given, else the paper's (100 on CIFAR-10, 300 on PTB)."""
        return self.selection_epochs or (300 if recurrent else 100)


@dataclass
class EvaluateArguments(ImageDataArguments, TextDataArguments):
    """Which checkpoint to evaluate on which split: an image classifier (accuracy) or a language model
    (perplexity)."""

    model_name_or_path: str = field(default=None, metadata={"help": "A saved model folder or Hub id (required)."})
    split: str = field(default="test", metadata={"help": "The split to evaluate (default: test)."})
    batch_size: int | None = field(
        default=None, metadata={"help": "Images per batch (256), or parallel streams of a language model (1)."}
    )
    bptt: int = field(default=35, metadata={"help": "Language models: tokens per chunk of the stream (35)."})
    output_file: str | None = field(
        default=None,
        metadata={
            "help": "Where to write the JSON (default: eval_results_SPLIT.json in the model folder, "
            "or the current folder for a Hub id)."
        },
    )
    mixed_precision: str | None = field(default=None, metadata={"help": "no, fp16 or bf16."})

    def __post_init__(self):
        if not self.model_name_or_path:
            raise ValueError("--model_name_or_path is required.")
        check_positive(self)


__all__ = [
    "EvaluateArguments",
    "ImageDataArguments",
    "LanguageModelTrainArguments",
    "NAS_BENCH_201",
    "NOT_RESULT_SETTINGS",
    "NetworkArguments",
    "POSITIVE_SETTINGS",
    "RecurrentSearchArguments",
    "RunArguments",
    "SEARCH_SPACE_NAMES",
    "SearchArguments",
    "SelectionArguments",
    "TextDataArguments",
    "TrainArguments",
    "check_positive",
    "fill_recipe",
]
