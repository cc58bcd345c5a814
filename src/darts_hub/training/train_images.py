"""The Accelerate loop that trains a DARTS network from scratch (Sec. 3.3 of the paper) and publishes it.

Two recipes set the paper's hyperparameters (every value can be overridden): `cifar` (600 epochs, batch 96, SGD lr
0.025 cosine, cutout, drop-path 0.2 scheduled linearly, auxiliary head) and `imagenet` (250 epochs, batch 128, lr
0.1 x 0.97 per epoch, label smoothing 0.1, random resized crops and colour jitter). The network is evaluated on the
evaluation split after every epoch, for monitoring only: the final model is the last epoch's, never a selection by
test accuracy.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from ..counting import count_mult_adds, count_parameters
from ..data.images import make_loader
from ..demo import write_demo
from ..export import export_onnx
from ..hub import save_card, trained_model_card
from ..kernels import kernelize
from ..models import DartsConfig, DartsForImageClassification, NasBench201Config, NasBench201ForImageClassification
from ..models.genotypes import NasBench201Genotype, load_genotype
from ..models.modeling_darts import evaluation_resize
from ..visualize import draw_genotype
from .arguments import NOT_IN_NAS_BENCH_201, TrainArguments
from .evaluation import evaluate
from .inputs import batch_transform, normalisation, open_image_splits
from .loop import Run, epoch_scheduler
from .sources import load_config, load_pretrained


logger = logging.getLogger(__name__)

# The network's sizes: DARTS's, then NAS-Bench-201's (`fill_recipe` leaves only those of the source's kind set).
ARCHITECTURE_SETTINGS = ("init_channels", "num_cells", "stem", "cells_per_stage")
# The recipe's settings that a DARTS network's config holds (train.py and train_imagenet.py of the DARTS release):
# those NAS-Bench-201's networks lack.
TRAINING_SETTINGS = tuple(NOT_IN_NAS_BENCH_201)
# What darts-train trains: DARTS networks, and NAS-Bench-201's (a search's in that space, or any cell's).
TRAINABLE_CONFIGS = (DartsConfig, NasBench201Config)


def build_model(
    class_names: list[str],
    image_size: int,
    mean: list[float],
    std: list[float],
    *,
    genotype: str | None = None,
    config_name: str | None = None,
    model_name_or_path: str | None = None,
    architecture: dict,
    training: dict,
    ignore_mismatched_sizes: bool = False,
):
    """The network to train, from one of: a checkpoint (`model_name_or_path`), a config (`config_name`, a search
    result, with the sizes in `architecture` replacing its own), or a genotype (a zoo name, a JSON file or a
    NAS-Bench-201 cell string, at the `architecture` sizes); fitted to the data, with the `training` settings
    (auxiliary weight, drop-path, label smoothing) for a DARTS network."""
    data_settings = {
        "num_labels": len(class_names),
        "id2label": dict(enumerate(class_names)),
        "label2id": {name: index for index, name in enumerate(class_names)},
        "num_channels": 3,
        "image_size": image_size,
        "image_mean": mean,
        "image_std": std,
    }
    if model_name_or_path is not None:
        config = load_config(model_name_or_path, "--model_name_or_path", TRAINABLE_CONFIGS)
        if config.num_labels != len(class_names) and not ignore_mismatched_sizes:
            raise ValueError(
                f"{model_name_or_path} classifies {config.num_labels} classes but the data has "
                f"{len(class_names)}: pass --ignore_mismatched_sizes to train a new classifier."
            )
        nas_bench_201 = isinstance(config, NasBench201Config)  # no auxiliary head, drop-path or label smoothing
        return load_pretrained(
            NasBench201ForImageClassification if nas_bench_201 else DartsForImageClassification,
            model_name_or_path,
            ignore_mismatched_sizes=ignore_mismatched_sizes,
            **data_settings,
            **({} if nas_bench_201 else training),
        )
    if config_name is not None:
        config = load_config(config_name, "--config_name", TRAINABLE_CONFIGS)
        if isinstance(config, NasBench201Config):  # its sizes are init_channels and cells_per_stage
            config = NasBench201Config(**{**config.to_dict(), **architecture, **data_settings})
            return kernelize(NasBench201ForImageClassification(config))
        config = DartsConfig(**{**config.to_dict(), **architecture, **data_settings, **training})
    else:
        cell = load_genotype(genotype)
        if isinstance(cell, NasBench201Genotype):
            return kernelize(
                NasBench201ForImageClassification(NasBench201Config(genotype=cell, **architecture, **data_settings))
            )
        config = DartsConfig(genotype=cell, **architecture, **data_settings, **training)
    auxiliary_weight = training["auxiliary_weight"]
    config.use_auxiliary_head = auxiliary_weight > 0 and config.auxiliary_head_fits
    if auxiliary_weight > 0 and not config.use_auxiliary_head:
        logger.warning("No auxiliary head: its geometry needs 32x32 images (CIFAR stem) or 224x224 (ImageNet stem).")
    return kernelize(DartsForImageClassification(config))


def train_step(model, optimizer, pixel_values, labels, accelerator, grad_clip: float):
    """One SGD step on a batch (the loss includes the weighted auxiliary loss in training); returns the outputs."""
    with accelerator.autocast():
        outputs = model(pixel_values=pixel_values, labels=labels)
    accelerator.backward(outputs.loss)
    accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return outputs


def run_training(args: TrainArguments) -> DartsForImageClassification:
    """Train as configured by `args`; writes the model, its image processor, logs, metrics, drawings and model card
    to `args.output_dir` (and pushes them when asked). Returns the trained model."""
    run = Run(args, "darts-train")
    accelerator = run.accelerator
    images = open_image_splits(accelerator, ("train", args.eval_split), **args.image_source)
    train_data = images.decode("train", args.image_size)
    mean, std = normalisation(train_data, args.image_mean, args.image_std)
    model = build_model(
        train_data.class_names,
        train_data.image_size,
        mean,
        std,
        genotype=args.genotype,
        config_name=args.config_name,
        model_name_or_path=args.model_name_or_path,
        architecture=args.architecture(ARCHITECTURE_SETTINGS),
        training={name: getattr(args, name) for name in TRAINING_SETTINGS},
        ignore_mismatched_sizes=args.ignore_mismatched_sizes,
    )
    eval_data = images.decode(args.eval_split, train_data.image_size, crop_from=evaluation_resize(model.config))
    # The recipe's cutout (16 pixels) is meant for 32x32 images: other sizes get the same fraction of the image.
    cutout = args.cutout if "cutout" in args.given_settings else args.cutout * train_data.image_size // 32
    transform = batch_transform(
        train_data,
        mean,
        std,
        run.channels_last,
        **args.augmentation,
        cutout=cutout,
        random_resized_crop=args.random_resized_crop,
        color_jitter=args.color_jitter,
    )
    if run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), args.learning_rate, momentum=args.momentum, weight_decay=args.weight_decay
    )
    scheduler = epoch_scheduler(optimizer, args.lr_schedule, args.epochs, gamma=args.lr_gamma)
    train_loader = make_loader(train_data, args.batch_size, args.seed)
    eval_loader = make_loader(eval_data, args.batch_size)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)
    network = accelerator.unwrap_model(model)
    run.resume(scheduler)

    for epoch in run.epochs(args.epochs):
        model.train()
        # The drop-path probability grows linearly with the epoch (the original schedule).
        drop_path_prob = args.drop_path_prob * epoch / args.epochs
        network.set_drop_path_prob(drop_path_prob)
        seconds = {"augmentation": 0.0, "model": 0.0}
        for images, labels in run.batches(train_loader, epoch, "epoch"):
            began = time.perf_counter()
            pixel_values = transform(images, train=True)
            augmented = time.perf_counter()
            outputs = train_step(model, optimizer, pixel_values, labels, accelerator, args.grad_clip)
            seconds["augmentation"] += augmented - began
            seconds["model"] += time.perf_counter() - augmented
            run.record_step(outputs.loss, outputs.logits.argmax(-1), labels)
        if run.stopped_within_epoch:
            break
        train = run.epoch_metrics(scheduler)
        metrics = evaluate(model, eval_loader, transform, accelerator, description=args.eval_split)
        record = {
            "epoch": epoch + 1,
            "step": run.progress.global_step,
            "drop_path_prob": drop_path_prob,
            **train,
            f"{args.eval_split}_loss": metrics["loss"],
            f"{args.eval_split}_accuracy": metrics["accuracy"],
            f"{args.eval_split}_top5_accuracy": metrics["top5_accuracy"],
            "augmentation_seconds": seconds["augmentation"],
            "model_seconds": seconds["model"],
        }
        logger.info(
            "epoch %d: train loss %.4f acc %.4f | %s loss %.4f acc %.4f | augmentation %.1fs, model %.1fs",
            epoch + 1,
            train["train_loss"],
            train["train_accuracy"],
            args.eval_split,
            metrics["loss"],
            metrics["accuracy"],
            seconds["augmentation"],
            seconds["model"],
        )
        run.end_epoch(record)

    history = run.progress.history
    if history and run.progress.step_in_epoch == 0:
        final = {key: history[-1][f"{args.eval_split}_{key}"] for key in ("loss", "accuracy", "top5_accuracy")}
        final["num_samples"] = len(eval_data.labels)
    else:  # stopped by --max_steps within an epoch
        final = evaluate(model, eval_loader, transform, accelerator, description=args.eval_split)
    run.finish(lambda folder: save_trained_model(args, folder, network, history, final, run.progress.runtime_seconds))
    return network


def save_trained_model(
    args: TrainArguments, output_dir: Path, network, history: list[dict], final: dict, seconds: float
) -> None:
    """The model and image processor (`save_pretrained`), `training_log.json` (every epoch), `all_results.json`
    (the final evaluation, `train_runtime_seconds` summed over resumes), with `--export onnx` `model.onnx`, drawings
    of the cells, with `--demo` the demo page (`demo/`), and the model card."""
    network.save_pretrained(output_dir)
    (output_dir / "training_log.json").write_text(json.dumps(history, indent=1) + "\n")
    results = {
        "eval_split": args.eval_split,
        "eval_accuracy": final["accuracy"],
        "eval_top5_accuracy": final["top5_accuracy"],
        "eval_loss": final["loss"],
        "eval_samples": final["num_samples"],
        "epochs": history[-1]["epoch"] if history else 0,
        "train_runtime_seconds": seconds,
        "parameters": count_parameters(network),
        "parameters_with_auxiliary": count_parameters(network, include_auxiliary=True),
        "mult_adds": count_mult_adds(network),
    }
    (output_dir / "all_results.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.export:  # the plain network as saved (not the kernelized one trained here), before the card lists it
        export_onnx(type(network).from_pretrained(output_dir), output_dir / "model.onnx")
    drawings = draw_genotype(network.config.get_genotype(), output_dir)
    if args.demo:
        write_demo(output_dir, model_id=args.hub_model_id, name=Path(args.output_dir).name)
    card = trained_model_card(
        network.config, results, args.tracker_config(), args.dataset_description, args.dataset_name, drawings
    )
    save_card(card, output_dir)


__all__ = ["build_model", "run_training", "train_step"]
