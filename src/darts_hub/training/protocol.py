"""The paper's protocol (Sec. 3.2) as runs made of runs: the selection of the best of several searches, and repeated
trainings of one cell reported as mean +/- std.

A protocol owns its `--output_dir` as any run does (`run_record.json`; refused in a folder it does not own; continued
with `--resume_from_checkpoint latest`, refused if its settings changed). Its parts are complete run folders of
their own under `runs/` (a search, a training), so that a killed protocol continues where it stopped: a part already
complete is read, not redone, and a part that was interrupted resumes from its latest checkpoint. The protocol's own
files (the best part's files, the table, the model card) are written at the end, atomically, and pushed if asked.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path

from accelerate import PartialState
from huggingface_hub import ModelCard

from ..hub import save_card
from .arguments import (
    ImageDataArguments,
    LanguageModelTrainArguments,
    RecurrentSearchArguments,
    RunArguments,
    SearchArguments,
    SelectionArguments,
    TextDataArguments,
    TrainArguments,
    fill_recipe,
)
from .checkpoints import ResumeError, settings_differences
from .publishing import RUN_RECORD, OwnedFolder, read_run_record


logger = logging.getLogger(__name__)

PARTS_FOLDER = "runs"
# Settings a part takes from the protocol's command line as they are (the rest are the part's own).
_SHARED_RUN_SETTINGS = [
    field.name
    for field in dataclasses.fields(RunArguments)
    if field.name not in {"output_dir", "overwrite_output_dir", "resume_from_checkpoint", "max_steps", "seed"}
    and not field.name.startswith(("push_to_hub", "hub_"))
]


class Protocol:
    """A run made of runs (see the module docstring). `settings` are what the protocol computes from (recorded, and
    checked when it is continued); `args` gives its output folder, resume and Hub flags."""

    def __init__(self, args: RunArguments, task: str, settings: dict):
        self.output_dir = Path(args.output_dir)
        self.state = PartialState()
        self.folder, self.parts = None, []
        if self.state.is_main_process:
            resuming = bool(args.resume_from_checkpoint)
            self.folder = OwnedFolder(self.output_dir, task, settings, resuming, args.overwrite_output_dir)
            differences = settings_differences(self.folder.record["settings"], settings)
            if differences and not args.accept_inexact_resume:
                raise ResumeError(
                    f"{self.output_dir} holds this {task} with other settings:\n  " + "\n  ".join(differences) + "\n"
                    "Nothing was changed: continue it with its own settings, or choose a new --output_dir."
                )
            if args.push_to_hub:
                self.folder.create_repo(args.hub_model_id, args.hub_token, args.hub_private_repo)
            self.folder.claim()
        self.state.wait_for_everyone()

    def part(self, name: str, run: Callable, args) -> dict:
        """Run `run(args)` in `runs/NAME` unless it is complete there (continuing it if it was interrupted); returns
        its `all_results.json` and its folder (`"folder"`, relative to the protocol's)."""
        folder = self.output_dir / PARTS_FOLDER / name
        record = read_run_record(folder)
        if record is not None and record.get("status") == "complete":
            logger.info("%s is complete: its results are read, not computed again.", folder)
        else:
            resume = "latest" if record is not None else None
            run(changed(args, output_dir=str(folder), resume_from_checkpoint=resume, push_to_hub=False))
        self.parts.append(name)
        results_file = folder / "all_results.json"
        results = json.loads(results_file.read_text()) if results_file.is_file() else {}
        return {**results, "folder": f"{PARTS_FOLDER}/{name}"}

    def finish(self, best: str, write_extra: Callable[[Path], None], publish_parts: bool) -> None:
        """Write the protocol's files: those of the best part (its folder `best`, as `part` returns it; its README.md
        and all_results.json are the protocol's own, written by `write_extra(folder)`), then mark it complete and
        push it if asked, with every part's files when `publish_parts`."""
        self.state.wait_for_everyone()
        if not self.state.is_main_process:
            return
        best_folder = self.output_dir / best
        best_files = read_run_record(best_folder)["files"]

        def write(folder: Path) -> None:
            for name in best_files:
                if name not in ("README.md", "all_results.json"):
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(best_folder / name, folder / name)
            write_extra(folder)

        runtime, part_files = 0.0, []
        for name in self.parts:
            record = read_run_record(self.output_dir / PARTS_FOLDER / name)
            runtime += record.get("train_runtime_seconds", 0.0)
            if publish_parts:
                part_files += [f"{PARTS_FOLDER}/{name}/{file}" for file in [*record["files"], RUN_RECORD]]
        self.folder.finish(write, runtime, also_published=part_files)


def changed(args, **values):
    """A copy of `args` with `values` set. Not `dataclasses.replace`, which would build them anew and lose what
    `fill_recipe` recorded (`args.given_settings`)."""
    args = copy.copy(args)
    vars(args).update(values)
    return args


def summary(values: list[float]) -> dict:
    """Mean, sample standard deviation (n - 1; 0 for one value), min and max."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "num_runs": len(values),
    }


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table of `rows`, one column per (title, key, format)."""
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format(row[key], spec) for _, key, spec in columns) + " |")
    return "\n".join(lines)


def _save_card_with_section(part: Path, folder: Path, title: str, section: str, **mean_result) -> None:
    """Save the model card of the `part` folder into `folder` with `section` added after its title and its list of
    files made `folder`'s; with `mean_result` (EvalResult fields), its model-index holds that one result instead of
    the part's own (the dataset named as the part's)."""
    card = ModelCard.load(part / "README.md")
    if mean_result:
        card.data.eval_results = [dataclasses.replace(card.data.eval_results[0], **mean_result)]
    heading, _, rest = card.text.partition("\n## ")
    rest = rest.partition("\n## Files\n")[0]  # the part's files; save_card lists the folder's
    card.text = f"{heading.rstrip()}\n\n## {title}\n\n{section}\n\n## {rest}"
    save_card(card, folder)


# Repeated training -------------------------------------------------------------------------------------------------


def run_repeated_training(args: TrainArguments | LanguageModelTrainArguments, train: Callable) -> dict:
    """Train the same network `--num_runs` times, with seeds `--seed`, `--seed + 1`, ... (each run in
    `runs/seed-S/`), and report the test error (images: on `--eval_split`) or the test perplexity as mean +/- std,
    min and max, in `all_results.json` and the model card. The best run (highest accuracy; lowest validation
    perplexity) is the folder's main model; every run's weights stay in its subfolder and are pushed with it."""
    language_model = isinstance(args, LanguageModelTrainArguments)
    protocol = Protocol(args, "darts-train-repeated", args.result_settings())
    runs = []
    for index in range(args.num_runs):
        seed = args.seed + index
        results = protocol.part(f"seed-{seed}", train, changed(args, seed=seed, num_runs=1))
        runs.append({"seed": seed, **results})
    if language_model:
        metric = key = "test_perplexity"
        best = min(runs, key=lambda run: run["valid_perplexity"])
        columns = [("seed", "seed", "d"), ("valid perplexity", "valid_perplexity", ".2f")]
        columns.append(("test perplexity", "test_perplexity", ".2f"))
    else:
        metric, key = f"{args.eval_split}_error", "error"
        for run in runs:
            run["error"] = 100 * (1 - run["eval_accuracy"])
        best = max(runs, key=lambda run: run["eval_accuracy"])
        columns = [("seed", "seed", "d"), (f"{args.eval_split} error (%)", "error", ".2f")]
        columns.append(("top-1 accuracy", "eval_accuracy", ".4f"))
    columns.append(("epochs", "epochs", "d"))
    columns.append(("folder", "folder", "s"))
    stats = summary([run[key] for run in runs])
    results = {"metric": metric, **stats, "best_run": best["folder"], "runs": runs}
    text = (
        f"{metric.replace('_', ' ')}: **{stats['mean']:.2f} +/- {stats['std']:.2f}** (mean +/- sample standard "
        f"deviation over {stats['num_runs']} trainings of the same cell from scratch, seeds {runs[0]['seed']}-"
        f"{runs[-1]['seed']}; min {stats['min']:.2f}, max {stats['max']:.2f}). The weights of this folder are the "
        f"best run's ({best['folder']}); every run's are in its subfolder.\n\n{_table(runs, columns)}"
    )
    mean_result = {
        "dataset_split": "test" if language_model else args.eval_split,
        "metric_type": "perplexity" if language_model else "error",
        "metric_name": f"Mean {metric.replace('_', ' ')} over {stats['num_runs']} runs",
        "metric_value": round(stats["mean"], 2),
    }

    def write(folder: Path) -> None:
        (folder / "all_results.json").write_text(json.dumps(results, indent=1) + "\n")
        title = f"{stats['num_runs']} trainings (measured)"
        _save_card_with_section(Path(args.output_dir) / best["folder"], folder, title, text, **mean_result)

    protocol.finish(best["folder"], write, publish_parts=True)
    logger.info("%s over %d runs: %.2f +/- %.2f", metric, stats["num_runs"], stats["mean"], stats["std"])
    return results


# Selection ---------------------------------------------------------------------------------------------------------


def selection_training_arguments(search_args, selection: SelectionArguments, search_folder: str):
    """The short training from scratch of a found cell: the search's data and run settings, the cell's derived
    sizes (its `config.json`), the recipe (cifar or ptb) with the selection's budget. Every cell is trained with the
    same seed (`--seed`), so that the trainings of a selection differ in their cell only."""
    recurrent = isinstance(search_args, RecurrentSearchArguments)
    data_fields = TextDataArguments if recurrent else ImageDataArguments
    names = [field.name for field in dataclasses.fields(data_fields)] + _SHARED_RUN_SETTINGS
    if recurrent:
        names += ["dataset_name", "dataset_config_name"]
    settings = {name: getattr(search_args, name) for name in names}
    budget = {
        "epochs": selection.epochs_for(recurrent),
        "batch_size": selection.selection_batch_size,
        "seed": search_args.seed,
    }
    if recurrent:
        return fill_recipe(LanguageModelTrainArguments(config_name=search_folder, recipe="ptb", **settings, **budget))
    return fill_recipe(
        TrainArguments(
            config_name=search_folder, recipe="cifar", eval_split=selection.selection_eval_split, **settings, **budget
        )
    )


def run_selection(search_args: SearchArguments | RecurrentSearchArguments, selection: SelectionArguments) -> dict:
    """The paper's selection: `--num_searches` searches with seeds `--seed`, `--seed + 1`, ..., each found cell
    trained from scratch for a short budget, and the best cell by that training's validation performance (image
    accuracy on `--selection_eval_split`; validation perplexity) written as the result folder, with the selection
    table in `selection.json` and the model card. The parts are in `runs/search-seed-S/` and `runs/train-seed-S/`."""
    from .search_images import run_search
    from .search_text import run_recurrent_search
    from .train_images import run_training
    from .train_text import run_language_model_training

    recurrent = isinstance(search_args, RecurrentSearchArguments)
    search, train = (run_recurrent_search, run_language_model_training) if recurrent else (run_search, run_training)
    settings = {**search_args.result_settings(), **dataclasses.asdict(selection)}
    protocol = Protocol(search_args, "darts-select", settings)
    rows = []
    for index in range(selection.num_searches):
        seed = search_args.seed + index
        found = protocol.part(f"search-seed-{seed}", search, changed(search_args, seed=seed))
        search_folder = protocol.output_dir / found["folder"]
        history = json.loads((search_folder / "alphas_history.json").read_text())
        trained = protocol.part(
            f"train-seed-{seed}", train, selection_training_arguments(search_args, selection, str(search_folder))
        )
        row = {
            "seed": seed,
            "genotype": history[-1]["genotype"],
            "search_valid": history[-1]["valid_loss" if recurrent else "valid_accuracy"],
            "search_seconds": read_run_record(search_folder)["train_runtime_seconds"],
            "selection_seconds": read_run_record(protocol.output_dir / trained["folder"])["train_runtime_seconds"],
            "selection_valid": trained["valid_perplexity" if recurrent else "eval_accuracy"],
            "search_folder": found["folder"],
            "training_folder": trained["folder"],
        }
        rows.append(row)
    best = (min if recurrent else max)(rows, key=lambda row: row["selection_valid"])
    for row in rows:
        row["selected"] = row is best
    measure = "validation perplexity" if recurrent else f"{selection.selection_eval_split} accuracy"
    search_measure = "search validation loss" if recurrent else "search validation accuracy"
    shown = [
        {
            **row,
            "mark": "**selected**" if row["selected"] else "",
            "minutes": (row["search_seconds"] + row["selection_seconds"]) / 60,
            "cell": f"`{json.dumps(row['genotype'])}`",
        }
        for row in rows
    ]
    columns = [
        ("seed", "seed", "d"),
        (search_measure, "search_valid", ".4f"),
        (f"selection training {measure}", "selection_valid", ".4f" if not recurrent else ".2f"),
        ("minutes", "minutes", ".1f"),
        ("", "mark", "s"),
        ("genotype", "cell", "s"),
    ]
    text = (
        f"The cell of seed {best['seed']}, selected among {len(rows)} searches (seeds {rows[0]['seed']}-"
        f"{rows[-1]['seed']}) by the {measure} of a short training from scratch "
        f"({selection.epochs_for(recurrent)} epochs), as in Sec. 3.2 of the paper. "
        f"Every search and training is in `{PARTS_FOLDER}/` of the folder that ran the selection.\n\n"
        f"{_table(shown, columns)}"
    )
    result = {"selected_seed": best["seed"], "runs": rows}

    def write(folder: Path) -> None:
        (folder / "selection.json").write_text(json.dumps(result, indent=1) + "\n")
        _save_card_with_section(protocol.output_dir / best["search_folder"], folder, "Selection (measured)", text)

    protocol.finish(best["search_folder"], write, publish_parts=False)
    return result


__all__ = ["Protocol", "run_repeated_training", "run_selection", "selection_training_arguments", "summary"]
