"""The Accelerate loop of a DARTS architecture search (Alg. 1 of the paper).

Per step: an architecture step on a validation batch (the architect), then a weight step on a training batch. The
training split is divided into a weight-training part and an architecture-validation part (`train_portion`, 50/50
in the paper), a stratified random cut (`--data_seed`). Per epoch: the genotype, the softmax of the alphas and the metrics are recorded and logged, and the
state is checkpointed (`save_state`) so that a search resumes exactly, also from the middle of an epoch.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path

import torch
from accelerate import Accelerator

from ..data.images import ImageTensors, StreamedImages, make_loader, stratified_split
from ..hub import save_search_result
from ..kernels import kernelize
from ..models.genotypes import EmptyCellError
from ..models.modeling_darts_search import DartsSearchConfig, DartsSearchModel
from ..models.modeling_nas_bench_201_search import NasBench201SearchConfig, NasBench201SearchModel
from ..plots import alpha_columns
from ..search.architect import Architect
from ..search.early_stopping import EIGENVALUE_KEY, early_stopping_rule, stop_of
from ..search.hessian import validation_hessian_eigenvalue
from ..search.regularisers import AuxiliarySkipDecay, BetaDecay, RandomSmoothing
from ..search.relaxations import DirichletKL, GumbelTemperature, ZeroOneLoss
from ..search.step import SearchStep, search_optimizers
from .arguments import NAS_BENCH_201, SearchArguments
from .evaluation import evaluate
from .inputs import batch_transform, normalisation, open_image_splits
from .loop import Run, RunState, epoch_scheduler


logger = logging.getLogger(__name__)


class EndlessBatches(RunState):
    """Batches of `loader` without end (the architecture steps' validation batches): one pass after another,
    reshuffled per pass, not per step. Checkpointed: a resumed run draws the batch it would have drawn next."""

    def __init__(self, loader, accelerator: Accelerator):
        super().__init__(drawn=0)
        self._loader, self._accelerator, self._iterator = loader, accelerator, None

    def __iter__(self):
        return self

    def __next__(self):
        if self._iterator is None:
            self._iterator = self._passes()
        return next(self._iterator)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._iterator = None  # the next batch is drawn from the restored position

    def _passes(self):
        batches_per_pass = len(self._loader)
        while True:
            passes, offset = divmod(self.drawn, batches_per_pass)
            self._loader.set_epoch(passes)
            for batch in self._accelerator.skip_first_batches(self._loader, offset) if offset else self._loader:
                self.drawn += 1
                yield batch


def split_for_search(data: ImageTensors | StreamedImages, train_portion: float, seed: int):
    """The weight-training part (`train_portion` of the images) and the architecture-validation part (the rest): a
    stratified random cut, not the first images against the rest, so that both parts hold every class in proportion
    even when the images are stored class by class (an image folder)."""
    num_weight_samples = int(math.floor(train_portion * len(data.labels)))
    if num_weight_samples < 1 or num_weight_samples >= len(data.labels):
        raise ValueError(f"{len(data.labels)} images cannot be split with --train_portion {train_portion}.")
    weight_indices, arch_indices = stratified_split(data.labels, num_weight_samples, seed)
    return data.subset(weight_indices), data.subset(arch_indices)


def run_search(args: SearchArguments) -> DartsSearchModel | NasBench201SearchModel:
    """Run a search as configured by `args` and write the result folder (`args.output_dir`).

    Returns the supernet (on every process), whose `genotype()` is the result.
    """
    # GDAS's processes draw the same samples (the same seed), but the operations not drawn get no gradient.
    run = Run(args, "darts-search", unused_parameters=args.relaxation == "gumbel")
    accelerator = run.accelerator

    # Data: the training split, divided into weight-training and architecture-validation parts.
    data = open_image_splits(accelerator, ("train",), **args.image_source).decode("train", args.image_size)
    weight_data, arch_data = split_for_search(data, args.train_portion, args.data_seed)
    mean, std = normalisation(data, args.image_mean, args.image_std)
    transform = batch_transform(data, mean, std, run.channels_last, **args.augmentation)
    train_loader = make_loader(weight_data, args.batch_size, args.seed, stream=0)
    valid_loader = make_loader(arch_data, args.batch_size, args.seed, stream=1)
    eval_loader = make_loader(arch_data, args.batch_size)

    model = kernelize(
        build_supernet(
            args,
            num_channels=data.num_channels,
            image_size=data.image_size,
            image_mean=transform.mean.flatten().tolist(),
            image_std=transform.std.flatten().tolist(),
            id2label=dict(enumerate(data.class_names)),
            label2id={name: index for index, name in enumerate(data.class_names)},
        )
    )
    if run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()
    weight_optimizer, arch_optimizer = search_optimizers(
        model,
        args.learning_rate,
        args.weight_decay,
        args.arch_learning_rate,
        args.arch_weight_decay,
        momentum=args.momentum,
        arch_betas=(args.arch_beta1, args.arch_beta2),
    )
    scheduler = epoch_scheduler(weight_optimizer, "cosine", args.epochs, minimum=args.learning_rate_min)
    model, weight_optimizer, train_loader, valid_loader, eval_loader = accelerator.prepare(
        model, weight_optimizer, train_loader, valid_loader, eval_loader
    )
    supernet = accelerator.unwrap_model(model)
    # The architect sets the alpha gradients itself; its optimizer is not wrapped (no loss scaling applies to it).
    beta_decay = BetaDecay(args.beta_decay_rate) if args.regulariser == "beta_decay" else None
    relaxation_penalties = {
        "dirichlet": DirichletKL(args.dirichlet_kl_scale),
        "sigmoid": ZeroOneLoss(args.zero_one_loss_weight),
    }
    penalty = relaxation_penalties.get(args.relaxation, beta_decay)
    architect = Architect(
        supernet,
        arch_optimizer,
        order=args.order,
        hessian=args.hessian,
        autocast=accelerator.autocast,
        penalty=penalty,
    )
    valid_batches = EndlessBatches(valid_loader, accelerator)
    run.resume(scheduler, architect, valid_batches)

    smoothing = (
        RandomSmoothing(args.epochs, args.smoothing_epsilon) if args.regulariser == "random_smoothing" else None
    )
    search_step = SearchStep(model, architect, weight_optimizer, accelerator, args.grad_clip, perturb=smoothing)
    skip_decay = AuxiliarySkipDecay(supernet, args.epochs) if args.regulariser == "auxiliary_skip" else None
    temperature = (
        GumbelTemperature(supernet, args.epochs, args.temperature_max, args.temperature_min)
        if args.relaxation == "gumbel"
        else None
    )
    rule = early_stopping_rule(args.early_stopping, args.early_stopping_window, args.early_stopping_factor)
    if args.hessian_eigenvalue_every:  # one fixed, unaugmented batch, so that epochs compare
        images, labels = next(iter(make_loader(arch_data, args.batch_size)))
        monitor_batch = {
            "pixel_values": transform(images.to(accelerator.device), train=False),
            "labels": labels.to(accelerator.device),
        }
    stop = stop_of(run.progress.history)  # a resumed search that had stopped searches no further
    for epoch in run.epochs(args.epochs):
        if stop is not None:
            break
        for schedule in (beta_decay, smoothing, skip_decay, temperature):
            if schedule is not None:
                schedule.set_epoch(epoch)
        model.train()
        for images, labels in run.batches(train_loader, epoch, "search epoch"):
            valid_images, valid_labels = next(valid_batches)
            outputs, _ = search_step(
                {"pixel_values": transform(images, train=True), "labels": labels},
                {"pixel_values": transform(valid_images, train=True), "labels": valid_labels},
            )
            run.record_step(outputs.loss, outputs.logits.argmax(-1), labels)
        if run.stopped_within_epoch:
            break
        train = run.epoch_metrics(scheduler)
        valid = evaluate(model, eval_loader, transform, accelerator, description="arch-validation")
        record = epoch_record(supernet, epoch, run.progress.global_step, train, valid)
        if args.hessian_eigenvalue_every and (
            (epoch + 1) % args.hessian_eigenvalue_every == 0 or epoch + 1 == args.epochs
        ):
            model.train()
            eigenvalue = validation_hessian_eigenvalue(architect, monitor_batch)
            record[EIGENVALUE_KEY] = accelerator.reduce(
                torch.tensor(eigenvalue, device=accelerator.device), "mean"
            ).item()
            logger.info("epoch %d: largest eigenvalue of the alpha Hessian %.4g", epoch + 1, record[EIGENVALUE_KEY])
        stop = rule.stop([*run.progress.history, record]) if rule is not None else None
        if stop is not None:
            record["stopped"] = stop.to_dict()
            logger.warning("Search stopped after epoch %d: %s.", epoch + 1, stop.reason)
        run.end_epoch(record, alpha_columns(supernet))

    # NAS-Bench-201's network is derived at the sizes it was searched at.
    derived_sizes = (
        {}
        if args.search_space == NAS_BENCH_201
        else {"init_channels": args.train_init_channels, "num_cells": args.train_num_cells}
    )

    def write(folder: Path) -> None:
        save_search_result(
            folder,
            supernet,
            run.progress.history,
            derived_sizes=derived_sizes,
            settings=args.tracker_config(),
            dataset=args.dataset_description,
            stop=stop,
        )

    run.finish(write)
    return supernet


def build_supernet(args: SearchArguments, **data_settings) -> DartsSearchModel | NasBench201SearchModel:
    """The supernet of `args.search_space` at the sizes and with the relaxation `args` give, fitted to the data
    (`data_settings`: channels, image size, statistics, labels)."""
    auxiliary_skip = args.regulariser == "auxiliary_skip"
    if args.search_space == NAS_BENCH_201:
        config = NasBench201SearchConfig(
            init_channels=args.init_channels,
            cells_per_stage=args.cells_per_stage,
            relaxation=args.relaxation,
            auxiliary_skip=auxiliary_skip,
            **data_settings,
        )
        return NasBench201SearchModel(config)
    config = DartsSearchConfig(
        init_channels=args.init_channels,
        num_cells=args.num_cells,
        num_nodes=args.num_nodes,
        multiplier=args.multiplier,
        partial_channels=args.partial_channels,
        edge_normalization=args.edge_normalization,
        auxiliary_skip=auxiliary_skip,
        relaxation=args.relaxation,
        operation_threshold=args.operation_threshold,
        search_space=args.search_space,
        **data_settings,
    )
    if len(config.reduction_cells) == config.num_cells:
        logger.warning(
            "With %d cell(s) every cell is a reduction cell: the normal cell of the result is not searched (its "
            "alphas get no gradient). Use --num_cells 3 or more to search both cells.",
            config.num_cells,
        )
    return DartsSearchModel(config)


def epoch_record(supernet, epoch: int, step: int, train: dict, valid: dict) -> dict:
    """An epoch of the search: its training figures (learning rate, loss, accuracy), the validation metrics, the
    genotype and how many of the edges of its first cell (the normal cell; NAS-Bench-201's one cell) are
    parameter-free (both None while FairDARTS's threshold keeps no operation of a cell), each cell's operation
    weights that the genotype reads (the softmax of the alphas, or with `--relaxation sigmoid` their sigmoid;
    logged here) and, with edge normalisation, the edges' weights."""
    try:
        genotype = supernet.genotype()
    except EmptyCellError as error:
        genotype = None
        logger.info("epoch %d: no cell yet: %s", epoch + 1, error)
    sigmoid = supernet.config.relaxation == "sigmoid"
    weigh = torch.sigmoid if sigmoid else functools.partial(torch.softmax, dim=-1)
    cells = list(supernet.alphas)
    parameter_free = genotype.parameter_free_operations() if genotype is not None else None  # of its watched cell
    record = {
        "epoch": epoch + 1,
        "step": step,
        **train,
        "valid_loss": valid["loss"],
        "valid_accuracy": valid["accuracy"],
        "genotype": genotype.to_dict() if genotype is not None else None,
        f"parameter_free_{cells[0]}": parameter_free,
        **{f"alphas_{cell}": weigh(supernet.alphas[cell].detach().float()).cpu().tolist() for cell in cells},
    }
    if getattr(supernet, "betas", None) is not None:  # PC-DARTS's edge normalisation
        for cell in ("normal", "reduce"):
            record[f"edge_weights_{cell}"] = supernet.edge_weights(cell).detach().float().cpu().tolist()
    logger.info(
        "epoch %d: train loss %.4f acc %.4f | arch-valid loss %.4f acc %.4f | genotype %s",
        epoch + 1,
        train["train_loss"],
        train["train_accuracy"],
        valid["loss"],
        valid["accuracy"],
        json.dumps(record["genotype"]),
    )
    for cell in cells:
        rows = "\n".join(" ".join(f"{p:.3f}" for p in row) for row in record[f"alphas_{cell}"])
        columns = supernet.config.column_names(cell)
        logger.info(
            "%s(alphas_%s), one row per edge, columns %s:\n%s",
            "sigmoid" if sigmoid else "softmax",
            cell,
            columns,
            rows,
        )
    return record


__all__ = ["EndlessBatches", "build_supernet", "epoch_record", "run_search", "split_for_search"]
