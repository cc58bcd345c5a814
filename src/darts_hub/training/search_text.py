"""The Accelerate loop of a recurrent DARTS search (Sec. 3.1.2 of the paper, the PTB search).

The same step as the convolutional search (`SearchStep`: the architect on a validation chunk, then a weight step on
a training chunk), on text streams: the training text in `batch_size` columns read in chunks of `bptt` tokens (half as
many with probability 0.05, the learning rate scaled by the chunk's length, as the original), the validation text in
chunks of `bptt` for the architecture steps, the recurrent states carried from chunk to chunk (detached) and saved in
checkpoints, so that a search resumes exactly. The weight step's loss adds the original's temporal activation
regularisation (`tar_beta`). Per epoch: validation perplexity, genotype, alphas.

Several processes each read their own columns of the streams (in step); the states of all columns are gathered into
the checkpoints.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..data.text import ChunkLoader, RandomLengthChunks, StreamChunks, batchify, encode_lines, load_lines
from ..hub import save_search_result
from ..kernels import kernelize
from ..models import build_tokenizer, vocabulary_in_order
from ..models.modeling_darts_rnn import activation_slowness
from ..models.modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel
from ..plots import alpha_columns
from ..search.architect import Architect
from ..search.step import SearchStep, search_optimizers
from .arguments import RecurrentSearchArguments
from .evaluation import evaluate_perplexity
from .inputs import own_states, process_streams
from .loop import Run, RunState, scaled_learning_rate
from .search_images import EndlessBatches


logger = logging.getLogger(__name__)


def slowness_regulariser(beta: float):
    """The weight step's temporal activation regularisation, as a `SearchStep` regulariser: beta x the slowness of
    the cell's outputs (the model is called with `output_hidden_states=True`)."""

    def regularise(outputs):
        return beta * activation_slowness(outputs.hidden_states[-1].float())

    return regularise


def run_recurrent_search(args: RecurrentSearchArguments) -> DartsRNNSearchModel:
    """Run a recurrent search and write the result folder (with the word tokenizer); returns the supernet."""
    run = Run(args, "darts-rnn-search")
    accelerator = run.accelerator
    lines = load_lines(**args.text_source)
    vocabulary = vocabulary_in_order([lines["train"], lines["validation"], lines["test"]])
    train_columns = process_streams(encode_lines(lines["train"], vocabulary), args.batch_size, accelerator)
    search_columns = process_streams(encode_lines(lines["validation"], vocabulary), args.batch_size, accelerator)
    eval_columns = batchify(encode_lines(lines["validation"], vocabulary), args.eval_batch_size)

    config = DartsRNNSearchConfig(
        vocab_size=len(vocabulary),
        hidden_size=args.hidden_size,
        num_nodes=args.num_nodes,
        dropout=args.dropout,
        dropout_h=args.dropout_h,
        dropout_x=args.dropout_x,
        dropout_i=args.dropout_i,
        dropout_e=args.dropout_e,
    )
    model = kernelize(DartsRNNSearchModel(config))
    weight_optimizer, arch_optimizer = search_optimizers(
        model, args.learning_rate, args.weight_decay, args.arch_learning_rate, args.arch_weight_decay
    )
    # The original search's chunks: bptt tokens, or half as many with probability 0.05 (the rate scaled to match).
    train_chunks = RandomLengthChunks(train_columns, args.bptt, max_delta=0, seed=args.seed, std=0.0)
    # Not prepared: the processes read their own columns of the same chunks, in step.
    train_loader, valid_loader = ChunkLoader(train_chunks), ChunkLoader(StreamChunks(search_columns, args.bptt))
    model, weight_optimizer = accelerator.prepare(model, weight_optimizer)
    supernet = accelerator.unwrap_model(model)
    architect = Architect(
        supernet,
        arch_optimizer,
        order=args.order,
        hessian=args.hessian,
        unrolled_grad_clip=args.grad_clip,
        autocast=accelerator.autocast,
    )
    valid_batches = EndlessBatches(valid_loader, accelerator)
    # The recurrent states of all streams (of all processes), carried from chunk to chunk.
    states = RunState(train=None, valid=None)
    run.resume(architect, valid_batches, states)

    search_step = SearchStep(
        model, architect, weight_optimizer, accelerator, args.grad_clip, slowness_regulariser(args.tar_beta)
    )
    for epoch in run.epochs(args.epochs):
        model.train()
        if run.progress.step_in_epoch == 0:  # a new pass over the training text starts from a zero state
            states.train = None
        for inputs, targets in run.batches(train_loader, epoch, "search epoch"):
            valid_inputs, valid_targets = next(valid_batches)
            train_batch = {
                "input_ids": inputs,
                "targets": targets,
                "hidden_state": own_states(states.train, accelerator),
                "output_hidden_states": True,
            }
            valid_batch = {
                "input_ids": valid_inputs,
                "targets": valid_targets,
                "hidden_state": own_states(states.valid, accelerator),
            }
            # As the original, the scaled rate also drives the unrolled step of a second-order architecture step.
            with scaled_learning_rate(weight_optimizer, inputs.shape[1] / args.bptt):
                outputs, validation_outputs = search_step(train_batch, valid_batch)
            states.train = accelerator.gather(outputs.hidden_state.detach())
            states.valid = accelerator.gather(validation_outputs.hidden_state.detach())
            run.record_step(outputs.loss, outputs.logits.argmax(-1), targets)
        if run.stopped_within_epoch:
            break
        train_loss = run.epoch_metrics()["train_loss"]
        valid = evaluate_perplexity(supernet, eval_columns, args.bptt)
        record = {
            "epoch": epoch + 1,
            "step": run.progress.global_step,
            "train_loss": train_loss,
            "valid_loss": valid["loss"],
            "valid_perplexity": valid["perplexity"],
            "genotype": supernet.genotype().to_dict(),
            "alphas_recurrent": torch.softmax(supernet.alphas["recurrent"].detach().float(), -1).cpu().tolist(),
        }
        logger.info(
            "epoch %d: train loss %.4f | valid perplexity %.2f | genotype %s",
            epoch + 1,
            train_loss,
            valid["perplexity"],
            json.dumps(record["genotype"]),
        )
        run.end_epoch(record, alpha_columns(supernet))

    def write(folder: Path) -> None:
        build_tokenizer(vocabulary=vocabulary).save_pretrained(folder)  # first: the card lists the files
        save_search_result(
            folder,
            supernet,
            run.progress.history,
            derived_sizes={
                "hidden_size": args.train_hidden_size,
                "eos_token_id": vocabulary["<eos>"],
                "pad_token_id": vocabulary["<eos>"],
            },
            settings=args.tracker_config(),
            dataset=args.dataset_name or args.train_file or "pydoc topics (embedded)",
        )

    run.finish(write)
    return supernet


__all__ = ["run_recurrent_search", "slowness_regulariser"]
