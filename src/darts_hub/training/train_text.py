"""The Accelerate loop that trains a recurrent DARTS language model from scratch (Sec. 3.3 and A.2.2 of the paper).

The original recipe (from AWD-LSTM): the training text in `batch_size` parallel streams read in chunks of random
length around `bptt`, the learning rate scaled by each chunk's length, the recurrent state carried from chunk to chunk;
SGD at lr 20 until the validation loss is worse than the best of all but the last `asgd_patience` evaluations, then
averaged SGD, whose running average of the weights is what is evaluated and kept; gradient norm clipped at 0.25;
temporal activation regularisation (beta * mean squared change of the cell's outputs between steps). The model kept
is the one with the best validation loss, saved to the output folder whenever it improves, so an interrupted run
leaves its best model behind.

Several processes each read their own columns of the streams (in step: every process cuts the same chunk lengths);
the states of all columns are gathered into the checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from ..counting import count_parameters
from ..data.text import ChunkLoader, RandomLengthChunks, batchify, encode_lines, load_lines
from ..export import export_onnx
from ..hub import save_card, trained_language_model_card, write_folder_atomically
from ..kernels import kernelize
from ..models import DartsRNNConfig, DartsRNNForCausalLM, build_tokenizer, vocabulary_in_order
from ..models.genotypes import load_genotype
from ..models.modeling_darts_rnn import activation_slowness
from ..models.tokenization_darts_rnn import EOS
from ..visualize import draw_genotype
from .arguments import LanguageModelTrainArguments
from .evaluation import evaluate_perplexity
from .inputs import own_states, process_streams
from .loop import Run, RunState, scaled_learning_rate
from .sources import load_config, load_language_model


logger = logging.getLogger(__name__)

# What differs between the original's Penn Treebank and WikiText-2 trainings (the rest are the defaults below).
ARCHITECTURE_SETTINGS = ("hidden_size",)
DROPOUTS = ("dropout", "dropout_h", "dropout_x", "dropout_i", "dropout_e")


def build_language_model(
    lines: dict[str, list[str]],
    dropouts: dict[str, float],
    *,
    genotype: str | None = None,
    config_name: str | None = None,
    model_name_or_path: str | None = None,
    architecture: dict,
):
    """The model to train and its vocabulary, from one of: a saved model with its own tokenizer
    (`model_name_or_path`), a config (`config_name`, with the sizes in `architecture` replacing its own) or a
    genotype (at the `architecture` sizes), these two over the corpus's vocabulary in the original order. The
    `dropouts` are the run's."""
    if model_name_or_path is not None:
        load_config(model_name_or_path, "--model_name_or_path", DartsRNNConfig)
        return load_language_model(model_name_or_path, **dropouts)
    vocabulary = vocabulary_in_order([lines["train"], lines["validation"], lines["test"]])
    settings = {
        "vocab_size": len(vocabulary),
        "eos_token_id": vocabulary[EOS],
        "pad_token_id": vocabulary[EOS],
        **dropouts,
    }
    if config_name is not None:
        config = load_config(config_name, "--config_name", DartsRNNConfig)
        config = DartsRNNConfig(**{**config.to_dict(), **architecture, **settings})
    else:
        config = DartsRNNConfig(genotype=load_genotype(genotype, recurrent=True), **architecture, **settings)
    return kernelize(DartsRNNForCausalLM(config)), vocabulary


@dataclass
class LanguageModelStep:
    """What `language_model_step` computed: the mean cross-entropy, the predicted next tokens [batch, steps] and the
    streams' new states [batch, hidden] (detached)."""

    loss: torch.Tensor
    predictions: torch.Tensor
    hidden_state: torch.Tensor


class ConsumedLogitsCrossEntropy(torch.autograd.Function):
    """The mean cross-entropy of `logits` [rows, vocabulary] against `targets` [rows] (rows with `ignore_index` left
    out), whose backward pass turns the logits themselves into their gradient, softmax minus one-hot, in place.

    PyTorch's cross-entropy keeps the log-softmax, as large as the logits, and its backward pass makes two more
    tensors of that size (2,240 x 10,000 floats, 90 MB each, at PTB's sizes) at the start of the backward pass, the
    language model step's memory peak: the DARTS_V2 PTB step peaks at 1.48 GB with this, 1.56 GB without. Only for
    a caller that keeps no other reference to the logits (`language_model_step`, which lets them go before the
    backward pass): they are overwritten."""

    ROWS = 256  # the log-normalisers are computed over this many rows at a time: small temporaries

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
        log_normalizers = torch.cat([rows.logsumexp(-1) for rows in logits.split(ConsumedLogitsCrossEntropy.ROWS)])
        kept = targets != ignore_index
        targets = targets.where(kept, 0)
        count = kept.sum()
        losses = log_normalizers - logits.gather(1, targets[:, None]).squeeze(1)
        ctx.save_for_backward(logits, targets, kept, log_normalizers, count)
        ctx.consumed = False
        return losses.where(kept, 0).sum() / count

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        if ctx.consumed:
            raise RuntimeError("ConsumedLogitsCrossEntropy's backward pass ran before: the logits are gone.")
        ctx.consumed = True
        logits, targets, kept, log_normalizers, count = ctx.saved_tensors
        gradient = logits.sub_(log_normalizers[:, None]).exp_()  # the softmax
        gradient.scatter_add_(1, targets[:, None], torch.full_like(targets[:, None], -1, dtype=gradient.dtype))
        # Divided by the count, as PyTorch's nll_loss does: multiplying by a float32 reciprocal made a two-process
        # training drift 6x further from the one-process one (tests/training/test_train_text.py).
        return gradient.mul_(kept.to(gradient.dtype)[:, None] * grad).div_(count), None, None


def language_model_step(
    model,
    optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    hidden: torch.Tensor,
    accelerator: Accelerator,
    bptt: int,
    grad_clip: float,
    tar_beta: float,
    num_groups: int = 1,
) -> LanguageModelStep:
    """One optimisation step on a chunk `[batch, steps]` starting from the states `hidden` `[batch, hidden]`: the
    streams in `num_groups` groups (each group's loss weighted by its share, gradients synchronised once: less
    memory, the same step), cross-entropy plus `tar_beta` x activation slowness, clipping at `grad_clip`, and a step
    at the learning rate scaled by steps / bptt. Returns the mean cross-entropy, the predicted next tokens and the new
    states (detached). The vocabulary-sized logits are let go before the backward pass, which turns them into their
    own gradient (`ConsumedLogitsCrossEntropy`): a chunk's logits are 90 MB at PTB's sizes (300 MB at WikiText-2's),
    and the peak of the step is at the start of that backward pass."""
    batch = inputs.shape[0]
    group_size = batch // num_groups
    losses, predictions, states = [], [], []
    for start in range(0, batch, group_size):
        streams = slice(start, start + group_size)
        last_group = start + group_size == batch
        with nullcontext() if last_group else accelerator.no_sync(model):
            with accelerator.autocast():
                outputs = model(input_ids=inputs[streams], hidden_state=hidden[streams], output_hidden_states=True)
            group_logits = outputs.logits.float()
            loss = ConsumedLogitsCrossEntropy.apply(group_logits.flatten(0, 1), targets[streams].flatten(), -100)
            regularised = loss + tar_beta * activation_slowness(outputs.hidden_states[-1].float())
            predictions.append(group_logits.detach().argmax(-1))
            states.append(outputs.hidden_state.detach())
            del outputs, group_logits
            accelerator.backward(regularised * group_size / batch)
        losses.append(loss.detach())
    accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    with scaled_learning_rate(optimizer, inputs.shape[1] / bptt):
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return LanguageModelStep(torch.stack(losses).mean(), torch.cat(predictions), torch.cat(states))


@contextmanager
def averaged_weights(optimizer):
    """Swap ASGD's running averages of the weights (its state "ax") into the model, for evaluating and saving; the
    trained weights come back afterwards. Weights ASGD has not stepped yet stay as they are."""
    trained = []
    with torch.no_grad():
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                average = optimizer.state[parameter].get("ax")
                if average is not None:
                    trained.append((parameter, parameter.detach().clone()))
                    parameter.copy_(average)
    try:
        yield
    finally:
        with torch.no_grad():
            for parameter, weights in trained:
                parameter.copy_(weights)


def should_switch_to_asgd(validation_losses: list[float], patience: int) -> bool:
    """The original's (non-monotone) trigger, checked after each SGD evaluation: the newest validation loss is worse
    than the best one from before the last `patience` evaluations."""
    *earlier, newest = validation_losses
    return len(earlier) > patience and newest > min(earlier[: len(earlier) - patience])


def run_language_model_training(args: LanguageModelTrainArguments) -> DartsRNNForCausalLM:
    """Train as configured by `args`; writes the best model with its tokenizer (whenever validation improves), then
    the training log, results (validation and test perplexity of the best model), cell drawing and model card, to
    `args.output_dir` (and pushes them when asked). Returns the trained model (its last weights)."""
    run = Run(args, "darts-rnn-train")
    accelerator = run.accelerator
    output_dir = Path(args.output_dir)
    lines = load_lines(**args.text_source)
    model, vocabulary = build_language_model(
        lines,
        {name: getattr(args, name) for name in DROPOUTS},
        genotype=args.genotype,
        config_name=args.config_name,
        model_name_or_path=args.model_name_or_path,
        architecture=args.architecture(ARCHITECTURE_SETTINGS),
    )
    train_columns = process_streams(encode_lines(lines["train"], vocabulary), args.batch_size, accelerator)
    valid_columns = batchify(encode_lines(lines["validation"], vocabulary), args.eval_batch_size)
    test_columns = batchify(encode_lines(lines["test"], vocabulary), args.test_batch_size)

    sgd = torch.optim.SGD(model.parameters(), args.learning_rate, weight_decay=args.weight_decay)
    asgd = torch.optim.ASGD(model.parameters(), args.learning_rate, t0=0, lambd=0.0, weight_decay=args.weight_decay)
    model, sgd, asgd = accelerator.prepare(model, sgd, asgd)
    network = accelerator.unwrap_model(model)
    # Not prepared: the processes read their own columns of the same chunks, in step.
    loader = ChunkLoader(RandomLengthChunks(train_columns, args.bptt, args.max_seq_len_delta, args.seed))
    # What the recipe carries: the states of all streams (of all processes), the optimiser phase ("sgd", then
    # "asgd"), the SGD phase's validation losses, and the best validation loss.
    state = RunState(hidden=None, phase="sgd", validation_losses=[], best_loss=math.inf)
    run.resume(state)
    tokenizer = build_tokenizer(vocabulary=vocabulary)
    if run.is_main_process:
        write_folder_atomically(output_dir, tokenizer.save_pretrained, overwrite=True)

    def evaluation_weights():
        return averaged_weights(asgd) if state.phase == "asgd" else nullcontext()

    for epoch in run.epochs(args.epochs):
        model.train()
        if run.progress.step_in_epoch == 0:  # a new pass over the training text starts from a zero state
            state.hidden = None
        for inputs, targets in run.batches(loader, epoch, "epoch"):
            hidden = own_states(state.hidden, accelerator)
            if hidden is None:
                hidden = train_columns.new_zeros(args.batch_size, network.config.hidden_size, dtype=torch.float)
            outputs = language_model_step(
                model,
                asgd if state.phase == "asgd" else sgd,
                inputs,
                targets,
                hidden,
                accelerator,
                args.bptt,
                args.grad_clip,
                args.tar_beta,
                args.gradient_accumulation_steps,
            )
            state.hidden = accelerator.gather(outputs.hidden_state)
            run.record_step(outputs.loss, outputs.predictions, targets)
        if run.stopped_within_epoch:
            break
        train_loss = run.epoch_metrics()["train_loss"]
        phase = state.phase
        with evaluation_weights():
            valid = evaluate_perplexity(network, valid_columns, args.bptt)
            improved = valid["loss"] < state.best_loss
            if improved:
                state.best_loss = valid["loss"]
                if run.is_main_process:
                    write_folder_atomically(output_dir, network.save_pretrained, overwrite=True)
        if phase == "sgd":
            state.validation_losses.append(valid["loss"])
            if should_switch_to_asgd(state.validation_losses, args.asgd_patience):
                state.phase = "asgd"
                logger.info("Validation stopped improving: switching to averaged SGD.")
        record = {
            "epoch": epoch + 1,
            "step": run.progress.global_step,
            "optimizer": phase,
            "train_loss": train_loss,
            "train_perplexity": math.exp(train_loss),
            "valid_loss": valid["loss"],
            "valid_perplexity": valid["perplexity"],
            "saved": improved,
        }
        logger.info(
            "epoch %d (%s): train perplexity %.2f | valid perplexity %.2f%s",
            epoch + 1,
            phase,
            record["train_perplexity"],
            valid["perplexity"],
            " (best: saved)" if improved else "",
        )
        run.end_epoch(record)
        if run.is_main_process:
            (output_dir / "training_log.json").write_text(json.dumps(run.progress.history, indent=1) + "\n")

    def write(folder: Path) -> None:
        if math.isinf(state.best_loss):  # stopped by --max_steps before the first evaluation
            with evaluation_weights():
                network.save_pretrained(folder)
        else:  # the best model, saved in the output folder when it was reached
            DartsRNNForCausalLM.from_pretrained(output_dir).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if args.export:  # the graph takes --bptt tokens
            export_onnx(DartsRNNForCausalLM.from_pretrained(folder), folder / "model.onnx", sequence_length=args.bptt)
        save_language_model_results(
            args, folder, run.progress.history, valid_columns, test_columns, run.progress.runtime_seconds
        )

    run.finish(write)
    return network


def save_language_model_results(
    args: LanguageModelTrainArguments,
    output_dir: Path,
    history: list[dict],
    valid_columns: torch.Tensor,
    test_columns: torch.Tensor,
    seconds: float,
) -> None:
    """`all_results.json` (validation and test perplexity of the best model, saved in `output_dir`),
    `training_log.json`, the cell drawing and the model card."""
    best = kernelize(DartsRNNForCausalLM.from_pretrained(output_dir))
    valid = evaluate_perplexity(best, valid_columns, args.bptt)
    test = evaluate_perplexity(best, test_columns, args.bptt)
    results = {
        "valid_loss": valid["loss"],
        "valid_perplexity": valid["perplexity"],
        "valid_tokens": valid["num_tokens"],
        "test_loss": test["loss"],
        "test_perplexity": test["perplexity"],
        "test_tokens": test["num_tokens"],
        "test_batch_size": args.test_batch_size,
        "bptt": args.bptt,
        "epochs": history[-1]["epoch"] if history else 0,
        "switched_to_asgd": any(record["optimizer"] == "asgd" for record in history),
        "train_runtime_seconds": seconds,
        "parameters": count_parameters(best),
        "vocab_size": best.config.vocab_size,
    }
    (output_dir / "all_results.json").write_text(json.dumps(results, indent=1) + "\n")
    (output_dir / "training_log.json").write_text(json.dumps(history, indent=1) + "\n")
    drawings = draw_genotype(best.config.get_genotype(), output_dir)
    dataset = args.dataset_name or args.train_file or "pydoc topics (embedded)"
    card = trained_language_model_card(
        best.config, results, args.tracker_config(), dataset, args.dataset_name, drawings
    )
    save_card(card, output_dir)


__all__ = [
    "LanguageModelStep",
    "averaged_weights",
    "build_language_model",
    "language_model_step",
    "run_language_model_training",
    "should_switch_to_asgd",
]
