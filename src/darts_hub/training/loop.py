"""The loop every search and training shares: a run's start (accelerator, seed, output folder), resume, the epochs
of steps with progress, checkpoints and `--max_steps`, and the end (final files, record, push)."""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from ..hub import create_hub_repo, write_folder_atomically
from .arguments import RunArguments
from .checkpoints import check_checkpoint, save_checkpoint, select_checkpoint
from .publishing import claim_output_dir, complete_run, plan_run, publish_run, read_run_record


logger = logging.getLogger(__name__)


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
    if not accelerator.is_main_process:  # the run id is known once the main process has written the record
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
    "finish_run",
    "resume",
    "run_epochs",
    "scaled_learning_rate",
    "start_run",
    "use_channels_last",
]
