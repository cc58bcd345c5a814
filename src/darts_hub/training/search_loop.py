"""The Accelerate loop of a DARTS architecture search (Alg. 1 of the paper).

Per step: an architecture step on a validation batch (the architect), then a weight step on a training batch. The
training split is divided into a weight-training part and an architecture-validation part (`train_portion`, 50/50
in the paper). Per epoch: the genotype, the softmax of the alphas and the metrics are recorded and logged, and the
state is checkpointed (`save_state`) so that a search resumes exactly, also from the middle of an epoch.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from ..data.images import DIGITS, BatchTransform, decode_images, find_columns, load_image_dataset, make_loader
from ..hub import HubPushError, create_hub_repo, push_folder, save_search_result
from ..search.architect import HESSIAN_MODES, Architect
from ..search.cnn import DartsSearchConfig, DartsSearchNetwork
from .evaluation import evaluate


logger = logging.getLogger(__name__)

CHECKPOINTS_FOLDER = "checkpoints"


@dataclass
class SearchArguments:
    """Settings of a convolutional architecture search. Defaults are the paper's CIFAR-10 search (Sec. 3.1)."""

    output_dir: str = field(default="darts-search", metadata={"help": "Where the result folder is written."})
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub or local image classification dataset (e.g. uoft-cs/cifar10). Default: the embedded "
            "scikit-learn digits (works offline)."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    train_dir: str | None = field(default=None, metadata={"help": "A local image folder (one sub-folder per class)."})
    image_column_name: str | None = field(default=None, metadata={"help": "Image column (default: detected)."})
    label_column_name: str | None = field(default=None, metadata={"help": "Label column (default: detected)."})
    image_size: int | None = field(default=None, metadata={"help": "Resize images to this square size."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training images (for quick runs)."}
    )
    train_portion: float = field(
        default=0.5, metadata={"help": "Share of the training split that trains the weights; the rest trains alpha."}
    )
    crop_padding: int | None = field(
        default=None, metadata={"help": "Random-crop padding in pixels (default: image size / 8; 4 for CIFAR)."}
    )
    horizontal_flip: bool | None = field(
        default=None, metadata={"help": "Random horizontal flips (default: on, off for the digits)."}
    )
    order: int = field(default=1, metadata={"help": "1: first-order DARTS; 2: second order (unrolled step)."})
    hessian: str = field(
        default="finite_difference",
        metadata={"help": f"Second order only: Hessian-vector product by {' or '.join(HESSIAN_MODES)}."},
    )
    init_channels: int = field(default=16, metadata={"help": "Channels of the supernet's first cells."})
    num_cells: int = field(default=8, metadata={"help": "Cells of the supernet."})
    steps: int = field(default=4, metadata={"help": "Intermediate nodes per cell."})
    multiplier: int = field(default=4, metadata={"help": "Nodes concatenated into the cell output."})
    epochs: int = field(default=50, metadata={"help": "Search epochs."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many steps in all (for tests)."})
    batch_size: int = field(default=64, metadata={"help": "Batch size per process, for both weight and alpha steps."})
    learning_rate: float = field(default=0.025, metadata={"help": "Initial weight learning rate (SGD)."})
    learning_rate_min: float = field(default=0.001, metadata={"help": "Final weight learning rate (cosine)."})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum."})
    weight_decay: float = field(default=3e-4, metadata={"help": "Weight decay of the weights."})
    grad_clip: float = field(default=5.0, metadata={"help": "Gradient norm clipping of the weight step."})
    arch_learning_rate: float = field(default=3e-4, metadata={"help": "Learning rate of the alphas (Adam)."})
    arch_weight_decay: float = field(default=1e-3, metadata={"help": "Weight decay of the alphas."})
    arch_beta1: float = field(default=0.5, metadata={"help": "Adam beta1 of the alphas."})
    arch_beta2: float = field(default=0.999, metadata={"help": "Adam beta2 of the alphas."})
    seed: int = field(default=2, metadata={"help": "Random seed (the original's default)."})
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
        default=None, metadata={"help": "'latest' or a checkpoint folder to resume from."}
    )
    train_init_channels: int = field(
        default=36, metadata={"help": "Channels of the derived network in the result's config.json."}
    )
    train_num_cells: int = field(default=20, metadata={"help": "Cells of the derived network in config.json."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the result folder to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository (user/name) to push to."})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})

    def __post_init__(self):
        if self.order not in (1, 2):
            raise ValueError(f"--order must be 1 or 2, got {self.order}.")
        if self.hessian not in HESSIAN_MODES:
            raise ValueError(f"--hessian must be one of {HESSIAN_MODES}, got {self.hessian!r}.")
        if not 0.0 < self.train_portion < 1.0:
            raise ValueError(f"--train_portion must be between 0 and 1, got {self.train_portion}.")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id (user/name).")


class SearchProgress:
    """Where the search stands, and the per-epoch history; saved in every checkpoint."""

    def __init__(self):
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.valid_batches = 0
        self.running = {"loss": 0.0, "correct": 0.0, "count": 0.0}
        self.history: list[dict] = []

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def _valid_batches(loader, progress: SearchProgress, accelerator: Accelerator):
    """Validation batches without end, one persistent iterator per pass (reshuffled per pass, not per step)."""
    batches_per_pass = len(loader)
    while True:
        passes, offset = divmod(progress.valid_batches, batches_per_pass)
        loader.set_epoch(passes)
        for batch in accelerator.skip_first_batches(loader, offset) if offset else loader:
            progress.valid_batches += 1
            yield batch


def _checkpoint_folders(output_dir: Path) -> list[Path]:
    folders = (output_dir / CHECKPOINTS_FOLDER).glob("checkpoint-*")
    return sorted(folders, key=lambda path: int(path.name.split("-")[1]))


def _save_checkpoint(accelerator: Accelerator, output_dir: Path, progress: SearchProgress, limit: int) -> None:
    folder = output_dir / CHECKPOINTS_FOLDER / f"checkpoint-{progress.global_step}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        for old in _checkpoint_folders(output_dir)[:-limit]:
            shutil.rmtree(old, ignore_errors=True)


def _resolve_checkpoint(resume_from_checkpoint: str, output_dir: Path) -> Path | None:
    if resume_from_checkpoint != "latest":
        path = Path(resume_from_checkpoint)
        if not path.is_dir():
            raise FileNotFoundError(f"No checkpoint folder at {path}.")
        return path
    folders = _checkpoint_folders(output_dir)
    if not folders:
        logger.warning("No checkpoint in %s: starting a new search.", output_dir / CHECKPOINTS_FOLDER)
        return None
    return folders[-1]


def make_search_optimizers(supernet: DartsSearchNetwork, args: SearchArguments):
    """The weight optimizer (SGD with momentum), the architecture optimizer (Adam) and the per-epoch cosine schedule
    of the weight learning rate."""
    weight_optimizer = torch.optim.SGD(
        supernet.weight_parameters(), args.learning_rate, momentum=args.momentum, weight_decay=args.weight_decay
    )
    arch_optimizer = torch.optim.Adam(
        supernet.arch_parameters(),
        lr=args.arch_learning_rate,
        betas=(args.arch_beta1, args.arch_beta2),
        weight_decay=args.arch_weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        weight_optimizer, T_max=args.epochs, eta_min=args.learning_rate_min
    )
    return weight_optimizer, arch_optimizer, scheduler


def search_step(
    model,
    architect: Architect,
    weight_optimizer,
    weight_parameters,
    train_batch,
    valid_batch,
    accelerator,
    grad_clip: float,
):
    """One step of Alg. 1: the architecture step on a validation batch, then the weight step on a training batch.
    Returns the weight step's model outputs."""
    architect.step(train_batch, valid_batch, weight_optimizer)
    # The weight step takes the architecture as given: no alpha gradients are computed (nor their inputs kept).
    alphas = architect.model.arch_parameters()
    for alpha in alphas:
        alpha.requires_grad_(False)
    try:
        with accelerator.autocast():
            outputs = model(**train_batch)
        accelerator.backward(outputs.loss)
    finally:
        for alpha in alphas:
            alpha.requires_grad_(True)
    accelerator.clip_grad_norm_(weight_parameters, grad_clip)
    weight_optimizer.step()
    weight_optimizer.zero_grad(set_to_none=True)
    return outputs


def run_search(args: SearchArguments) -> DartsSearchNetwork:
    """Run a search as configured by `args` and write the result folder (`args.output_dir`).

    Returns the supernet (on every process), whose `genotype()` is the result.
    """
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("darts_hub").setLevel(logging.INFO if accelerator.is_main_process else logging.WARNING)
    set_seed(args.seed)
    repo_id = None
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if args.push_to_hub:
            # Created first, so that a bad name or token fails now rather than after the search.
            repo_id = create_hub_repo(args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)

    # Data: the training split, divided into weight-training and architecture-validation parts.
    with accelerator.main_process_first():
        dataset = load_image_dataset(args.dataset_name, args.dataset_config_name, args.train_dir)
        train_split = dataset["train"]
        if args.max_train_samples is not None:
            train_split = train_split.select(range(min(args.max_train_samples, len(train_split))))
        image_column, label_column = find_columns(train_split, args.image_column_name, args.label_column_name)
        data = decode_images(train_split, image_column, label_column, args.image_size)
    num_weight_samples = int(math.floor(args.train_portion * len(data.labels)))
    if num_weight_samples < 1 or num_weight_samples >= len(data.labels):
        raise ValueError(f"{len(data.labels)} images cannot be split with --train_portion {args.train_portion}.")
    mean, std = data.statistics()
    channels_last = accelerator.device.type == "cpu" if args.channels_last is None else args.channels_last
    is_digits = args.train_dir is None and args.dataset_name in (None, DIGITS)
    transform = BatchTransform(
        mean,
        std,
        crop_padding=data.image_size // 8 if args.crop_padding is None else args.crop_padding,
        horizontal_flip=(not is_digits) if args.horizontal_flip is None else args.horizontal_flip,
        channels_last=channels_last,
    )
    indices = torch.arange(len(data.labels))
    train_loader = make_loader(data.subset(indices[:num_weight_samples]), args.batch_size, args.seed, stream=0)
    valid_loader = make_loader(data.subset(indices[num_weight_samples:]), args.batch_size, args.seed, stream=1)
    eval_loader = make_loader(data.subset(indices[num_weight_samples:]), args.batch_size)

    config = DartsSearchConfig(
        init_channels=args.init_channels,
        num_cells=args.num_cells,
        steps=args.steps,
        multiplier=args.multiplier,
        num_channels=data.num_channels,
        image_size=data.image_size,
        image_mean=mean,
        image_std=std,
        id2label=dict(enumerate(data.class_names)),
        label2id={name: index for index, name in enumerate(data.class_names)},
    )
    model = DartsSearchNetwork(config)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    weight_optimizer, arch_optimizer, scheduler = make_search_optimizers(model, args)
    model, weight_optimizer, train_loader, valid_loader, eval_loader = accelerator.prepare(
        model, weight_optimizer, train_loader, valid_loader, eval_loader
    )
    supernet = accelerator.unwrap_model(model)
    # The architect sets the alpha gradients itself; its optimizer is not wrapped (no loss scaling applies to it).
    architect = Architect(
        supernet, arch_optimizer, order=args.order, hessian=args.hessian, autocast=accelerator.autocast
    )
    progress = SearchProgress()
    accelerator.register_for_checkpointing(scheduler, architect, progress)

    if args.resume_from_checkpoint:
        checkpoint = _resolve_checkpoint(args.resume_from_checkpoint, output_dir)
        if checkpoint is not None:
            logger.info("Resuming from %s", checkpoint)
            accelerator.load_state(str(checkpoint))
    if accelerator.is_main_process:
        accelerator.init_trackers("darts-search", config=_tracker_config(args))

    valid_batches = _valid_batches(valid_loader, progress, accelerator)
    weight_parameters = supernet.weight_parameters()
    steps_per_epoch = len(train_loader)
    stop = False
    for epoch in range(progress.epoch, args.epochs):
        train_loader.set_epoch(epoch)
        model.train()
        skipped = progress.step_in_epoch
        batches = accelerator.skip_first_batches(train_loader, skipped) if skipped else train_loader
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            initial=skipped,
            desc=f"search epoch {epoch + 1}/{args.epochs}",
            disable=not accelerator.is_local_main_process,
        )
        for images, labels in bar:
            valid_images, valid_labels = next(valid_batches)
            train_batch = {"pixel_values": transform(images, train=True), "labels": labels}
            valid_batch = {"pixel_values": transform(valid_images, train=True), "labels": valid_labels}
            outputs = search_step(
                model,
                architect,
                weight_optimizer,
                weight_parameters,
                train_batch,
                valid_batch,
                accelerator,
                args.grad_clip,
            )

            progress.running["loss"] += outputs.loss.item() * len(labels)
            progress.running["correct"] += (outputs.logits.argmax(-1) == labels).sum().item()
            progress.running["count"] += len(labels)
            progress.step_in_epoch += 1
            progress.global_step += 1
            bar.set_postfix(loss=f"{outputs.loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.4g}")
            if args.checkpointing_steps and progress.global_step % args.checkpointing_steps == 0:
                _save_checkpoint(accelerator, output_dir, progress, args.checkpoints_total_limit)
            if args.max_steps is not None and progress.global_step >= args.max_steps:
                stop = True
                break
        if stop and progress.step_in_epoch < steps_per_epoch:
            break

        scheduler.step()
        _end_epoch(accelerator, supernet, model, eval_loader, transform, progress, epoch)
        _save_checkpoint(accelerator, output_dir, progress, args.checkpoints_total_limit)
        if stop:
            break

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        dataset_description = args.dataset_name or args.train_dir or "scikit-learn digits (embedded)"
        save_search_result(
            output_dir,
            supernet,
            progress.history,
            derived_sizes={"init_channels": args.train_init_channels, "num_cells": args.train_num_cells},
            settings=_tracker_config(args),
            dataset=dataset_description,
        )
        if repo_id is not None:
            try:
                push_folder(output_dir, repo_id, token=args.hub_token, ignore_patterns=[f"{CHECKPOINTS_FOLDER}/*"])
            except HubPushError as error:
                logger.error("%s", error)
    accelerator.end_training()
    return supernet


def _end_epoch(accelerator, supernet, model, eval_loader, transform, progress: SearchProgress, epoch: int) -> None:
    """Evaluate on the architecture-validation part, record the genotype and alphas, log."""
    totals = accelerator.reduce(
        torch.tensor([progress.running[k] for k in ("loss", "correct", "count")], device=accelerator.device),
        reduction="sum",
    )
    train_loss, train_accuracy = (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()
    valid = evaluate(model, eval_loader, transform, accelerator, description="arch-validation")
    genotype = supernet.genotype()
    record = {
        "epoch": epoch + 1,
        "step": progress.global_step,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "valid_loss": valid["loss"],
        "valid_accuracy": valid["accuracy"],
        "genotype": genotype.to_dict(),
        "alphas_normal": torch.softmax(supernet.alphas_normal.detach().float(), -1).cpu().tolist(),
        "alphas_reduce": torch.softmax(supernet.alphas_reduce.detach().float(), -1).cpu().tolist(),
    }
    progress.history.append(record)
    progress.epoch = epoch + 1
    progress.step_in_epoch = 0
    progress.running = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    logger.info(
        "epoch %d: train loss %.4f acc %.4f | arch-valid loss %.4f acc %.4f | genotype %s",
        epoch + 1,
        train_loss,
        train_accuracy,
        valid["loss"],
        valid["accuracy"],
        json.dumps(record["genotype"]),
    )
    for cell in ("normal", "reduce"):
        rows = "\n".join(" ".join(f"{p:.3f}" for p in row) for row in record[f"alphas_{cell}"])
        logger.info("softmax(alphas_%s), one row per edge, columns %s:\n%s", cell, supernet.config.primitives, rows)
    accelerator.log(
        {key: record[key] for key in ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy")},
        step=progress.global_step,
    )


def _tracker_config(args: SearchArguments) -> dict:
    return {key: value for key, value in asdict(args).items() if key != "hub_token"}


__all__ = ["SearchArguments", "SearchProgress", "make_search_optimizers", "run_search", "search_step"]
