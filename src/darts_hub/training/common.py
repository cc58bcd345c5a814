"""What the search and training loops share: run settings, the accelerator, data, checkpoints, the final push."""

from __future__ import annotations

import functools
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from safetensors import SafetensorError
from tqdm.auto import tqdm
from transformers import AutoConfig, PreTrainedConfig

from ..data.images import (
    DIGITS,
    BatchTransform,
    ImageTensors,
    StreamedImages,
    class_names_of,
    decode_images,
    find_columns,
    load_image_dataset,
)
from ..data.text import batchify, load_text_dataset, split_lines
from ..hub import create_hub_repo, write_folder_atomically
from .checkpoints import check_checkpoint, save_checkpoint, select_checkpoint
from .publishing import claim_output_dir, complete_run, plan_run, publish_run, read_run_record


logger = logging.getLogger(__name__)

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
    "steps",
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


def load_pretrained(model_class, name_or_path: str, **kwargs):
    """`model_class.from_pretrained(name_or_path, **kwargs)`; a broken weights file is named in the error."""
    try:
        return model_class.from_pretrained(name_or_path, **kwargs)
    except SafetensorError as error:
        weights = Path(name_or_path) / "model.safetensors"
        raise OSError(
            f"Could not read the weights {weights if weights.is_file() else 'model.safetensors of ' + name_or_path}: "
            f"{error}. The file is truncated or corrupt: save or download it again."
        ) from error


def load_config(name_or_path: str, flag: str, config_class: type[PreTrainedConfig]) -> PreTrainedConfig:
    """The config of a folder or Hub id named by `flag`, which must be a `config_class`."""
    try:
        config = AutoConfig.from_pretrained(name_or_path)
        recorded, _ = PreTrainedConfig.get_config_dict(name_or_path)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"Could not load the config of {flag} {name_or_path!r}: {error}") from error
    if not isinstance(config, config_class):
        raise ValueError(f"{flag} {name_or_path!r} is a {type(config).__name__}, not a {config_class.__name__}.")
    if "genotype" not in recorded:
        raise ValueError(
            f"The config of {flag} {name_or_path!r} names no genotype, so it does not say which cells to train: add "
            'a "genotype" (a zoo name such as "DARTS_V2", or the cells as JSON), or pass --genotype instead.'
        )
    return config


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


def start_run(args: RunArguments, task: str) -> tuple[Accelerator, str | None, dict]:
    """Accelerator, logging and seed; the check that this run may write into the output folder (`publishing.
    plan_run`), and, when pushing, the Hub repository (created first, so that a bad name or token fails before any work). Returns
    the accelerator, the repository id and (on the main process) the run record, not yet written: `resume` writes
    it, once the data and the model are built."""
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("darts_hub").setLevel(logging.INFO if accelerator.is_main_process else logging.WARNING)
    set_seed(args.seed)
    repo_id, record = None, None
    if accelerator.is_main_process:
        record = plan_run(
            output_dir, task, args.result_settings(), bool(args.resume_from_checkpoint), args.overwrite_output_dir
        )
        if args.push_to_hub:
            repo_id = create_hub_repo(args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)
    return accelerator, repo_id, record


def use_channels_last(args: RunArguments, accelerator: Accelerator) -> bool:
    return accelerator.device.type == "cpu" if args.channels_last is None else args.channels_last


def load_image_splits(
    args: ImageDataArguments,
    accelerator: Accelerator,
    splits: tuple[str, ...] = ("train",),
    eval_size: int | None = None,
    eval_crop_from: int | None = None,
) -> dict[str, ImageTensors | StreamedImages]:
    """Decode the requested splits (with --stream_images: prepare them to be decoded while read), all with the
    training split's classes (the training images are decoded only if requested), the main process first so that a
    download or cache build happens once. Splits other than train are decoded at `eval_size` (default:
    --image_size, else the training images' size), resized to `eval_crop_from` and centre-cropped if that is given
    (the ImageNet evaluation)."""
    with accelerator.main_process_first():
        dataset = load_image_dataset(args.dataset_name, args.dataset_config_name, args.train_dir, args.validation_dir)
        missing = [split for split in splits if split not in dataset]
        if missing:
            raise KeyError(f"The dataset has no split {missing}; its splits are {list(dataset)}.")
        train = dataset["train"]
        if args.max_train_samples is not None:
            train = train.select(range(min(args.max_train_samples, len(train))))
        image_column, label_column = find_columns(train, args.image_column_name, args.label_column_name)
        class_names = class_names_of(train, label_column)
        if args.stream_images:
            decode = functools.partial(StreamedImages, num_workers=args.dataloader_num_workers)
        else:
            decode = decode_images
        decoded = {}
        if "train" in splits:
            decoded["train"] = decode(train, image_column, label_column, args.image_size, class_names)
        image_size = eval_size or args.image_size or (decoded["train"].image_size if decoded else None)
        for split in splits:
            if split != "train":
                decoded[split] = decode(
                    dataset[split], image_column, label_column, image_size, class_names, crop_from=eval_crop_from
                )
    return decoded


def batch_transform(
    args: ImageDataArguments,
    data: ImageTensors | StreamedImages,
    channels_last: bool,
    mean=None,
    std=None,
    **augmentation,
) -> BatchTransform:
    """Augmentation and normalisation (by the data's own statistics unless given); `augmentation` adds the
    training recipe's (cutout, random resized crops, colour jitter)."""
    if mean is None or std is None:
        mean, std = data.statistics()
    return BatchTransform(
        mean,
        std,
        crop_padding=data.image_size // 8 if args.crop_padding is None else args.crop_padding,
        horizontal_flip=(not args.uses_digits) if args.horizontal_flip is None else args.horizontal_flip,
        channels_last=channels_last,
        **augmentation,
    )


def process_streams(stream: torch.Tensor, streams: int, accelerator: Accelerator) -> torch.Tensor:
    """This process's `streams` columns (`[length, streams]`, on its device) of a token stream cut into `streams` per
    process: the processes read their own parts of the text, in step."""
    columns = batchify(stream, streams * accelerator.num_processes)
    rank = accelerator.process_index
    return columns[:, rank * streams : (rank + 1) * streams].to(accelerator.device)


def own_states(states: torch.Tensor | None, accelerator: Accelerator) -> torch.Tensor | None:
    """This process's rows of recurrent states gathered from all processes (`accelerator.gather`, as kept in
    checkpoints); None (a fresh start) stays None."""
    if states is None:
        return None
    return states.chunk(accelerator.num_processes)[accelerator.process_index].to(accelerator.device)


def resume(accelerator: Accelerator, args: RunArguments, record: dict | None) -> dict:
    """Select and check the checkpoint named by `--resume_from_checkpoint` (`checkpoints.check_checkpoint`), then
    claim the output folder (write the run record) and load the checkpoint. A refused resume writes nothing.
    Returns the run record, on every process."""
    if accelerator.is_main_process:
        checkpoint = select_checkpoint(args.output_dir, args.resume_from_checkpoint, record["run_id"])
        if checkpoint is not None:
            check_checkpoint(checkpoint, args.result_settings(), accelerator.num_processes, args.accept_inexact_resume)
        claim_output_dir(args.output_dir, record)
    accelerator.wait_for_everyone()
    record = read_run_record(args.output_dir)
    checkpoint = select_checkpoint(args.output_dir, args.resume_from_checkpoint, record["run_id"])
    if checkpoint is not None:
        logger.info("Resuming from %s", checkpoint)
        accelerator.load_state(str(checkpoint))
    return record


def finish_run(args: RunArguments, record: dict, repo_id: str | None, write, runtime_seconds: float) -> list[str]:
    """Main process only: `write(folder)` the final files (into a temporary folder, then moved into the output
    folder), mark the run complete with their list, and push them if asked. A failed push raises `HubPushError`
    (the folder stays complete); returns the files written."""
    files = write_folder_atomically(args.output_dir, write, overwrite=True)
    complete_run(args.output_dir, record, files, runtime_seconds)
    if repo_id is not None:
        publish_run(args.output_dir, repo_id, token=args.hub_token)
    return files


@contextmanager
def scaled_learning_rate(optimizer, scale: float):
    """The optimizer's learning rates times `scale` inside the block (the recurrent recipes scale each step's rate by
    its chunk's length / bptt), restored after."""
    rates = [group["lr"] for group in optimizer.param_groups]
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate * scale
    try:
        yield
    finally:
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = rate


class LoopProgress:
    """Where a run stands (epoch, step, the running loss and accuracy of the epoch) and its per-epoch history;
    registered for checkpointing, so that a run resumes exactly, also in the middle of an epoch."""

    def __init__(self):
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.running = [0.0, 0.0, 0.0]  # loss sum, correct, count (this process)
        self.history: list[dict] = []
        self.runtime_seconds = 0.0  # summed over resumes
        self._clock = time.perf_counter()

    def state_dict(self) -> dict:
        self.tick()
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)
        self._clock = time.perf_counter()

    def tick(self) -> float:
        """Add the time since the last tick (or start, or resume) to `runtime_seconds`; returns it."""
        now = time.perf_counter()
        self.runtime_seconds += now - self._clock
        self._clock = now
        return self.runtime_seconds


def run_epochs(
    accelerator: Accelerator,
    args: RunArguments,
    model,
    loader,
    epochs: int,
    progress: LoopProgress,
    step,
    end_of_epoch,
    description: str,
    start_of_epoch=None,
    record: dict | None = None,
) -> None:
    """The skeleton of both loops: epochs of steps over `loader` (skipping what a resumed run already did), a
    progress bar, the epoch's running loss and accuracy, checkpoints every `--checkpointing_steps` and after every
    epoch, and `--max_steps`.

    `step(images, labels, epoch)` does one optimisation step and returns the model outputs (with `loss`, `logits`);
    `end_of_epoch(epoch, train_loss, train_accuracy)` evaluates and records the epoch; `start_of_epoch(epoch)`, if
    given, runs before the epoch's (remaining) steps. Checkpoints carry the run id and settings of `record`.
    """

    def checkpoint():
        save_checkpoint(
            accelerator,
            args.output_dir,
            progress.global_step,
            args.checkpoints_total_limit,
            record["run_id"],
            args.result_settings(),
        )

    for epoch in range(progress.epoch, epochs):
        loader.set_epoch(epoch)
        steps_per_epoch = len(loader)  # after set_epoch: random-length text chunks differ per epoch
        model.train()
        if start_of_epoch is not None:
            start_of_epoch(epoch)
        skipped = progress.step_in_epoch
        batches = accelerator.skip_first_batches(loader, skipped) if skipped else loader
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            initial=skipped,
            desc=f"{description} {epoch + 1}/{epochs}",
            disable=not accelerator.is_local_main_process,
        )
        stop = False
        for images, labels in bar:
            outputs = step(images, labels, epoch)
            loss = outputs.loss.item()
            # Per label: an image's class, or every next token of a text chunk.
            progress.running[0] += loss * labels.numel()
            progress.running[1] += (outputs.logits.argmax(-1) == labels).sum().item()
            progress.running[2] += labels.numel()
            progress.step_in_epoch += 1
            progress.global_step += 1
            bar.set_postfix(loss=f"{loss:.3f}")
            if args.checkpointing_steps and progress.global_step % args.checkpointing_steps == 0:
                checkpoint()
            stop = args.max_steps is not None and progress.global_step >= args.max_steps
            if stop:
                break
        if stop and progress.step_in_epoch < steps_per_epoch:
            return
        loss_sum, correct, count = accelerator.reduce(
            torch.tensor(progress.running, device=accelerator.device), reduction="sum"
        ).tolist()
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"The training loss of {description} {epoch + 1} is {loss_sum / count}: the run diverged. Everything "
                "saved so far is kept (the epoch's checkpoint is not written); lower --learning_rate and start again "
                "or --resume_from_checkpoint an earlier checkpoint."
            )
        end_of_epoch(epoch, loss_sum / count, correct / count)
        progress.epoch, progress.step_in_epoch, progress.running = epoch + 1, 0, [0.0, 0.0, 0.0]
        checkpoint()
        if stop:
            return


__all__ = [
    "LoopProgress",
    "ImageDataArguments",
    "NetworkArguments",
    "RunArguments",
    "TextDataArguments",
    "batch_transform",
    "check_positive",
    "load_config",
    "load_pretrained",
    "load_image_splits",
    "own_states",
    "process_streams",
    "finish_run",
    "run_epochs",
    "resume",
    "scaled_learning_rate",
    "start_run",
    "use_channels_last",
]
