"""Evaluating a saved model (`scripts/evaluate.py`): an image classifier's top-1/top-5 accuracy and error, or a
language model's perplexity, on a split of a dataset, written as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from accelerate import Accelerator
from transformers import AutoConfig, AutoModelForImageClassification

from ..counting import count_mult_adds, count_parameters
from ..data.images import BatchTransform, make_loader
from ..data.text import batchify, encode_lines, load_lines
from ..models import DartsConfig, DartsRNNConfig, NasBench201Config
from ..models.modeling_darts import evaluation_resize
from .arguments import EvaluateArguments
from .evaluation import evaluate, evaluate_perplexity
from .inputs import open_image_splits
from .sources import load_language_model, load_pretrained


def evaluate_checkpoint(args: EvaluateArguments) -> dict:
    """Evaluate a saved DARTS model on a dataset split and write the results as JSON.

    Image classifiers: top-1/top-5 accuracy and error, loss, number of images, parameters (the original counting)
    and mult-adds; the images are preprocessed as the model's image processor does (ImageNet stem: the shorter side
    resized to 8/7 of the size, then a centre crop, as the original's 256 -> 224). Language models: loss and
    perplexity over the whole split read in order (the state carried from chunk to chunk), number of tokens,
    parameters.
    """
    config = AutoConfig.from_pretrained(args.model_name_or_path)
    if isinstance(config, DartsRNNConfig):
        results = _evaluate_language_model(args)
    elif isinstance(config, (DartsConfig, NasBench201Config)):
        results = _evaluate_image_classifier(args)
    else:
        raise ValueError(
            f"{args.model_name_or_path} is a {type(config).__name__}, not a DARTS or NAS-Bench-201 model."
        )
    output_file = args.output_file
    if output_file is None:
        folder = Path(args.model_name_or_path)
        output_file = (folder if folder.is_dir() else Path(".")) / f"eval_results_{args.split}.json"
    Path(output_file).write_text(json.dumps(results, indent=1) + "\n")
    return results


def _evaluate_image_classifier(args: EvaluateArguments) -> dict:
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    model = load_pretrained(AutoModelForImageClassification, args.model_name_or_path)
    config: DartsConfig = model.config
    image_size, crop_from = args.image_size or config.image_size, evaluation_resize(config)
    images = open_image_splits(accelerator, (args.split,), **args.image_source)
    data = images.decode(args.split, image_size, crop_from=crop_from)
    if len(data.class_names) != config.num_labels:
        raise ValueError(
            f"The {args.split} split has {len(data.class_names)} classes, the model {config.num_labels}: "
            "evaluate it on the data it was trained for."
        )
    transform = BatchTransform(config.image_mean, config.image_std)
    loader = accelerator.prepare(make_loader(data, args.batch_size or 256))
    model = accelerator.prepare(model)
    metrics = evaluate(model, loader, transform, accelerator, description=args.split)
    network = accelerator.unwrap_model(model)
    return {
        "model": args.model_name_or_path,
        "dataset": args.dataset_description,
        "split": args.split,
        "num_images": metrics["num_samples"],
        "preprocessing": (
            f"resize the shorter side to {crop_from}, centre crop {image_size}"
            if crop_from
            else f"resize to {image_size}x{image_size}"
        ),
        "loss": metrics["loss"],
        "top1_accuracy": metrics["accuracy"],
        "top5_accuracy": metrics["top5_accuracy"],
        "top1_error": 1 - metrics["accuracy"],
        "top5_error": 1 - metrics["top5_accuracy"],
        "parameters": count_parameters(network),
        "parameters_with_auxiliary": count_parameters(network, include_auxiliary=True),
        "mult_adds": count_mult_adds(network),
    }


# Other names of the text splits (PTB's files are train/valid/test; `datasets` says validation).
TEXT_SPLIT_NAMES = {"valid": "validation", "val": "validation", "dev": "validation"}


def _evaluate_language_model(args: EvaluateArguments) -> dict:
    model, vocabulary = load_language_model(args.model_name_or_path)
    corpus = load_lines(**args.text_source)
    split = TEXT_SPLIT_NAMES.get(args.split, args.split)
    if split not in corpus:
        raise ValueError(f"--split {args.split!r}: the corpus has the splits {list(corpus)} (or valid).")
    lines = corpus[split]
    columns = batchify(encode_lines(lines, vocabulary), args.batch_size or 1)
    metrics = evaluate_perplexity(model, columns, args.bptt)
    return {
        "model": args.model_name_or_path,
        "dataset": args.dataset_name or "pydoc topics (embedded)",
        "split": args.split,
        "num_tokens": metrics["num_tokens"],
        "loss": metrics["loss"],
        "perplexity": metrics["perplexity"],
        "batch_size": args.batch_size or 1,
        "bptt": args.bptt,
        "parameters": count_parameters(model),
    }


__all__ = ["evaluate_checkpoint"]
