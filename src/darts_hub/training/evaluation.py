"""Evaluation shared by the search and training loops: loss, top-1 and top-5 accuracy over a whole split."""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.text import StreamChunks


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


__all__ = ["evaluate", "evaluate_perplexity", "topk_correct"]
