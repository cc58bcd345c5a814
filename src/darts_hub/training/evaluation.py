"""Evaluation shared by the search and training loops: loss, top-1 and top-5 accuracy over a whole split."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from ..counting import count_mult_adds, count_parameters
from ..data.images import BatchTransform, make_loader
from ..data.text import StreamChunks, batchify, encode_lines
from ..models.darts import DartsConfig
from ..models.darts.modeling_darts import evaluation_resize
from ..models.darts_rnn import DartsRNNConfig
from .arguments import ImageDataArguments, TextDataArguments, check_positive
from .inputs import open_image_splits
from .sources import load_pretrained


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample 1.0 where the label is among the `k` highest scores."""
    k = min(k, logits.shape[-1])
    return (logits.topk(k, dim=-1).indices == labels[:, None]).any(dim=-1).float()


@torch.no_grad()
def evaluate(model, loader: DataLoader, transform, accelerator: Accelerator, description: str = "eval") -> dict:
    """Mean loss, top-1 and top-5 accuracy of `model` (in eval mode) over every sample of `loader`, gathered over
    all processes (duplicates of an uneven last batch dropped)."""
    was_training = model.training
    model.eval()
    losses, top1, top5 = [], [], []
    for images, labels in tqdm(loader, desc=description, leave=False, disable=not accelerator.is_local_main_process):
        with accelerator.autocast():
            logits = model(pixel_values=transform(images, train=False)).logits.float()
        loss = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
        loss, correct1, correct5 = accelerator.gather_for_metrics(
            (loss, topk_correct(logits, labels, 1), topk_correct(logits, labels, 5))
        )
        losses.append(loss)
        top1.append(correct1)
        top5.append(correct5)
    model.train(was_training)
    losses, top1, top5 = torch.cat(losses), torch.cat(top1), torch.cat(top5)
    return {
        "loss": losses.mean().item(),
        "accuracy": top1.mean().item(),
        "top5_accuracy": top5.mean().item(),
        "num_samples": losses.numel(),
    }


@torch.no_grad()
def evaluate_perplexity(model, columns: torch.Tensor, bptt: int) -> dict:
    """Mean cross-entropy and perplexity of a language model over a whole stream (`[length, batch]`, see
    `batchify`), read in order in chunks of `bptt` steps with the recurrent state carried from chunk to chunk (the
    original evaluation; PTB test: batch 1, bptt 35)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count, hidden = 0.0, 0, None
    for inputs, targets in StreamChunks(columns.to(device), bptt):
        outputs = model(input_ids=inputs, hidden_state=hidden)
        logits = outputs.logits.float()
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
        ).item()
        count += targets.numel()
        hidden = outputs.hidden_state
    model.train(was_training)
    return {"loss": total / count, "perplexity": math.exp(total / count), "num_tokens": count}


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
    elif isinstance(config, DartsConfig):
        results = _evaluate_image_classifier(args)
    else:
        raise ValueError(f"{args.model_name_or_path} is a {type(config).__name__}, not a DARTS model.")
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
    if args.image_size is None:
        args.image_size = config.image_size
    crop_from = evaluation_resize(config)
    images = open_image_splits(args, accelerator, splits=(args.split,))
    data = images.decode(args.split, args.image_size, crop_from=crop_from)
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
            f"resize the shorter side to {crop_from}, centre crop {args.image_size}"
            if crop_from
            else f"resize to {args.image_size}x{args.image_size}"
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


def load_language_model(name_or_path: str, **config_overrides) -> tuple[PreTrainedModel, dict[str, int]]:
    """A saved language model and its vocabulary (from its tokenizer), which must have one word per embedding row."""
    model = load_pretrained(AutoModelForCausalLM, name_or_path, **config_overrides)
    vocabulary = AutoTokenizer.from_pretrained(name_or_path).get_vocab()
    if len(vocabulary) != model.config.vocab_size:
        raise ValueError(
            f"The tokenizer of {name_or_path} has {len(vocabulary)} words but the model {model.config.vocab_size} "
            "embedding rows: save the model with the tokenizer it was trained with."
        )
    return model, vocabulary


# Other names of the text splits (PTB's files are train/valid/test; `datasets` says validation).
TEXT_SPLIT_NAMES = {"valid": "validation", "val": "validation", "dev": "validation"}


def _evaluate_language_model(args: EvaluateArguments) -> dict:
    model, vocabulary = load_language_model(args.model_name_or_path)
    corpus = args.load_lines()
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


__all__ = [
    "EvaluateArguments",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_perplexity",
    "load_language_model",
    "topk_correct",
]
