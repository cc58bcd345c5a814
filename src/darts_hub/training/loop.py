"""The loop every search and training shares, as one object a task's file drives top to bottom:

```python
run = Run(args, "darts-search")                   # accelerator, seed, the output folder checked, the Hub repo
...                                               # data, model, optimizers (prepared by run.accelerator)
run.resume(scheduler, architect)                  # checkpointed state registered; a checkpoint checked and loaded
for epoch in run.epochs(args.epochs):
    for images, labels in run.batches(train_loader, epoch, "search epoch"):
        outputs = search_step(train, valid)       # search.step.SearchStep: it returns what it computed
        run.record_step(outputs.loss, outputs.logits.argmax(-1), labels)
    if run.stopped_within_epoch:                  # --max_steps
        break
    train = run.epoch_metrics(scheduler)          # the epoch's loss, accuracy and learning rate
    ...                                           # evaluate, log
    run.end_epoch(record, columns)                # the record kept and logged (a search's pictures too), checkpoint
run.finish(write)                                 # the final files, the run record, the push
```

`batches` counts the steps, shows the progress bar, writes a checkpoint every `--checkpointing_steps` and stops at
`--max_steps`; a resumed run skips the batches it already did, also in the middle of an epoch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from .arguments import RunArguments
from .checkpoints import check_checkpoint, save_checkpoint, select_checkpoint
from .layout import use_channels_last
from .publishing import OwnedFolder, read_run_record
from .tracking import (
    PICTURE_TRACKERS,
    log_pictures,
    requested_trackers,
    search_pictures,
    tracker_init_kwargs,
    tracker_settings,
)


logger = logging.getLogger(__name__)


class RunState:
    """Plain values a run carries from step to step (recurrent states, the optimiser phase, ...), saved in every
    checkpoint (Accelerate's `register_for_checkpointing`), so that a resumed run continues exactly."""

    def __init__(self, **values):
        vars(self).update(values)

    def state_dict(self) -> dict:
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


class LoopProgress(RunState):
    """Where a run stands (epoch, step, the running loss and accuracy of the epoch), its per-epoch history, the
    training loss every `--logging_steps` (`step_losses`, with the running sums at the last of them) and its running
    time (summed over resumes)."""

    def __init__(self):
        super().__init__(
            epoch=0,
            step_in_epoch=0,
            global_step=0,
            running=[0.0, 0.0, 0.0],
            history=[],
            step_losses=[],
            logged=[0.0, 0.0],
            runtime_seconds=0.0,
        )
        self._clock = time.perf_counter()

    def state_dict(self) -> dict:
        self.tick()
        return super().state_dict()

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._clock = time.perf_counter()

    def tick(self) -> float:
        """Add the time since the last tick (or start, or resume) to `runtime_seconds`; returns it."""
        now = time.perf_counter()
        self.runtime_seconds += now - self._clock
        self._clock = now
        return self.runtime_seconds


class Run:
    """One search or training: its accelerator, progress, checkpoints and output folder.

    Creating it sets up the accelerator, logging and seed, and on the main process the `OwnedFolder` of
    `--output_dir` (checked, nothing written; the Hub repository created first when pushing). The run record is
    written by `resume`, once the data and the model are built. `unused_parameters`: some weights take no part in
    a step (GDAS runs one operation per edge), which DistributedDataParallel must be told.
    """

    def __init__(self, args: RunArguments, task: str, unused_parameters: bool = False):
        self.args, self.task = args, task
        output_dir = Path(args.output_dir)
        self.accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            log_with=requested_trackers(args.report_to),
            project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
            if unused_parameters
            else None,
        )
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
        logging.getLogger("darts_hub").setLevel(logging.INFO if self.is_main_process else logging.WARNING)
        set_seed(args.seed)
        self.progress = LoopProgress()
        self.num_epochs = 0
        self.stopped_within_epoch = False
        self._last_loss = math.nan
        self.folder, self.record = None, None
        if self.is_main_process:
            resuming = bool(args.resume_from_checkpoint)
            self.folder = OwnedFolder(output_dir, task, args.result_settings(), resuming, args.overwrite_output_dir)
            if args.push_to_hub:
                self.folder.create_repo(args.hub_model_id, args.hub_token, args.hub_private_repo)
            self.record = self.folder.record

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def channels_last(self) -> bool:
        """Whether images and convolution weights use the channels-last layout (`--channels_last`; see
        `use_channels_last`)."""
        return use_channels_last(self.args.channels_last, self.accelerator.device)

    def resume(self, *states) -> None:
        """Register `states` (schedulers, the architect, `RunState`s) and the progress for checkpointing; select and
        check the checkpoint named by `--resume_from_checkpoint` (`checkpoints.check_checkpoint`), then claim the
        output folder (write the run record), load the checkpoint and start the trackers. A refused resume writes
        nothing."""
        accelerator, args = self.accelerator, self.args
        accelerator.register_for_checkpointing(*states, self.progress)
        if self.is_main_process:
            checkpoint = select_checkpoint(args.output_dir, args.resume_from_checkpoint, self.record["run_id"])
            if checkpoint is not None:
                check_checkpoint(
                    checkpoint, args.result_settings(), accelerator.num_processes, args.accept_inexact_resume
                )
            self.folder.claim()
        accelerator.wait_for_everyone()
        if not self.is_main_process:  # the run id is known once the main process has written the record
            self.record = read_run_record(args.output_dir)
            checkpoint = select_checkpoint(args.output_dir, args.resume_from_checkpoint, self.record["run_id"])
        if checkpoint is not None:
            logger.info("Resuming from %s", checkpoint)
            accelerator.load_state(str(checkpoint))
        if self.is_main_process:
            logging_dir = accelerator.logging_dir
            if accelerator.log_with:
                Path(logging_dir).mkdir(parents=True, exist_ok=True)
            accelerator.init_trackers(
                self.task, config=tracker_settings(args.tracker_config()), init_kwargs=tracker_init_kwargs(logging_dir)
            )

    def epochs(self, num_epochs: int) -> Iterator[int]:
        """The epochs still to run (all of them, or from the resumed one on); stops after an epoch that reached
        `--max_steps`."""
        self.num_epochs = num_epochs
        for epoch in range(self.progress.epoch, num_epochs):
            yield epoch
            if self._reached_max_steps():
                return

    def batches(self, loader, epoch: int, description: str) -> Iterator:
        """The epoch's batches of `loader` (reshuffled per epoch; those a resumed run already did skipped), with a
        progress bar. After each batch the step is counted, a checkpoint is written every
        `--checkpointing_steps`, and at `--max_steps` the epoch stops (`stopped_within_epoch` if batches were
        left)."""
        progress = self.progress
        loader.set_epoch(epoch)
        steps_per_epoch = len(loader)  # after set_epoch: random-length text chunks differ per epoch
        skipped = progress.step_in_epoch
        bar = tqdm(
            self.accelerator.skip_first_batches(loader, skipped) if skipped else loader,
            total=steps_per_epoch,
            initial=skipped,
            desc=f"{description} {epoch + 1}/{self.num_epochs}",
            disable=not self.accelerator.is_local_main_process,
        )
        for batch in bar:
            yield batch
            progress.step_in_epoch += 1
            progress.global_step += 1
            bar.set_postfix(loss=f"{self._last_loss:.3f}")
            if self.args.logging_steps and progress.global_step % self.args.logging_steps == 0:
                self.log_step_loss()
            if self.args.checkpointing_steps and progress.global_step % self.args.checkpointing_steps == 0:
                self.save_checkpoint()
            if self._reached_max_steps():
                self.stopped_within_epoch = progress.step_in_epoch < steps_per_epoch
                return

    def record_step(self, loss: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a step's loss and accuracy to the epoch's running figures, per label (an image's class, or every
        next token of a text chunk; `predictions` the predicted ones)."""
        self._last_loss = loss.item()
        running = self.progress.running
        running[0] += self._last_loss * labels.numel()
        running[1] += (predictions == labels).sum().item()
        running[2] += labels.numel()

    def log_step_loss(self) -> None:
        """Log the training loss averaged over the steps since the last such log (per label, this process's)."""
        progress = self.progress
        loss_sum, _, count = progress.running
        loss = (loss_sum - progress.logged[0]) / max(count - progress.logged[1], 1)
        progress.logged = [loss_sum, count]
        progress.step_losses.append({"step": progress.global_step, "epoch": progress.epoch + 1, "train_loss": loss})
        logger.info("step %d: train loss %.4f", progress.global_step, loss)
        self.accelerator.log({"train_loss_steps": loss}, step=progress.global_step)

    def epoch_metrics(self, scheduler=None) -> dict[str, float]:
        """The epoch's `train_loss` and `train_accuracy` over all processes and, given the per-epoch `scheduler`,
        the epoch's `learning_rate` (the scheduler then steps to the next epoch's). A diverged run stops here,
        before the epoch's checkpoint, with everything saved so far kept."""
        loss_sum, correct, count = self.accelerator.reduce(
            torch.tensor(self.progress.running, device=self.accelerator.device), reduction="sum"
        ).tolist()
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"The training loss of epoch {self.progress.epoch + 1} is {loss_sum / count}: the run diverged. "
                "Everything saved so far is kept (the epoch's checkpoint is not written); lower --learning_rate and "
                "start again or --resume_from_checkpoint an earlier checkpoint."
            )
        metrics = {"train_loss": loss_sum / count, "train_accuracy": correct / count}
        if scheduler is not None:
            metrics = {"learning_rate": scheduler.get_last_lr()[0], **metrics}
            scheduler.step()
        return metrics

    def end_epoch(self, record: dict, alpha_columns: dict[str, list[str]] | None = None) -> None:
        """Keep the epoch's `record` in the history, log its numbers to the trackers, move to the next epoch and
        write a checkpoint. A search gives the `alpha_columns` of its records (`plots.alpha_columns`): its pictures
        go to the trackers that show pictures (`tracking.search_pictures`)."""
        progress = self.progress
        progress.history.append(record)
        numbers = {  # the step is the log's own (Trackio would rename a metric of that name)
            key: value
            for key, value in record.items()
            if key not in ("epoch", "step") and isinstance(value, (int, float))
        }
        self.accelerator.log(numbers, step=progress.global_step)
        trackers = [tracker.name for tracker in self.accelerator.trackers]
        if alpha_columns is not None and any(name in PICTURE_TRACKERS for name in trackers):
            try:
                log_pictures(self.accelerator, search_pictures(progress.history, alpha_columns), progress.global_step)
            except Exception as error:  # a dashboard's pictures are not worth the search: it goes on, checkpointed
                logger.warning("The pictures of epoch %d did not reach the trackers: %r", progress.epoch + 1, error)
        progress.epoch, progress.step_in_epoch = progress.epoch + 1, 0
        progress.running, progress.logged = [0.0, 0.0, 0.0], [0.0, 0.0]
        self.save_checkpoint()

    def save_checkpoint(self) -> None:
        args = self.args
        save_checkpoint(
            self.accelerator,
            args.output_dir,
            self.progress.global_step,
            args.checkpoints_total_limit,
            self.record["run_id"],
            args.result_settings(),
        )

    def finish(self, write) -> list[str]:
        """On the main process: `write(folder)` the final files (into a temporary folder, then moved into the
        output folder) with `training_steps.json` (with `--logging_steps`), mark the run complete with their list,
        and push them if asked (a failed push raises `HubPushError`; the folder stays complete). Then end the
        trackers. Returns the files written (on the other processes: none)."""
        self.accelerator.wait_for_everyone()
        files = []
        if self.is_main_process:
            runtime = self.progress.tick()

            def write_with_step_losses(folder: Path) -> None:
                write(folder)
                if self.progress.step_losses:
                    steps = json.dumps(self.progress.step_losses, indent=1) + "\n"
                    (folder / "training_steps.json").write_text(steps)

            files = self.folder.finish(write_with_step_losses, runtime)
        self.accelerator.end_training()
        return files

    def _reached_max_steps(self) -> bool:
        return self.args.max_steps is not None and self.progress.global_step >= self.args.max_steps


def epoch_scheduler(
    optimizer, schedule: str, epochs: int, minimum: float = 0.0, gamma: float = 1.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-epoch learning rate, as the original sets it: it steps its scheduler *before* each epoch, so epoch `e`
    (from 0) trains at the schedule's value for `e + 1`: the first epoch already below the initial rate, the last at
    `minimum`. "cosine": from the initial rate down to `minimum` over `epochs` (CIFAR-10, the search); "exponential":
    times `gamma` per epoch (ImageNet). Step it after each epoch."""
    initial = optimizer.param_groups[0]["lr"]

    def cosine(epoch: int) -> float:
        progress = min(epoch + 1, epochs) / epochs
        return (minimum + (initial - minimum) * (1 + math.cos(math.pi * progress)) / 2) / initial

    def exponential(epoch: int) -> float:
        return gamma ** (epoch + 1)

    if schedule not in ("cosine", "exponential"):
        raise ValueError(f"Unknown learning-rate schedule {schedule!r}: use cosine or exponential.")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine if schedule == "cosine" else exponential)


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


__all__ = ["LoopProgress", "Run", "RunState", "epoch_scheduler", "scaled_learning_rate"]
