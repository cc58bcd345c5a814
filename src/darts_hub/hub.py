"""Result folders and the Hub: what a search writes, its model card, and pushing a folder.

Everything is written to the local folder first; the Hub repository is created early (so that a bad name or token
fails before hours of work) and the folder is uploaded once at the end. A failed upload leaves the folder as it was
and says how to retry.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from huggingface_hub import CommitOperationAdd, EvalResult, ModelCard, ModelCardData, create_commit, create_repo
from transformers.dynamic_module_utils import custom_object_save, get_relative_import_files

from .models import (
    DartsConfig,
    DartsForImageClassification,
    DartsRNNConfig,
    DartsRNNForCausalLM,
    DartsRNNSearchModel,
    DartsSearchModel,
    NasBench201Config,
    NasBench201ForImageClassification,
    NasBench201SearchModel,
)
from .models.genotypes import EmptyCellError, Genotype, NasBench201Genotype, RecurrentGenotype
from .plots import alpha_columns, plot_search
from .search.derived import derived_config
from .search.early_stopping import EIGENVALUE_KEY, Stop
from .visualize import animate_genotypes, draw_genotype


logger = logging.getLogger(__name__)

CITATION = """@inproceedings{liu2019darts,
  title     = {{DARTS}: Differentiable Architecture Search},
  author    = {Liu, Hanxiao and Simonyan, Karen and Yang, Yiming},
  booktitle = {International Conference on Learning Representations},
  year      = {2019},
  url       = {https://arxiv.org/abs/1806.09055}
}"""


class HubPushError(RuntimeError):
    """Creating or uploading to a Hub repository failed; the local files are untouched."""


def create_hub_repo(repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Create (or reuse) a model repository and return its id."""
    try:
        return create_repo(repo_id, token=token, private=private, exist_ok=True).repo_id
    except Exception as error:
        raise HubPushError(
            f"Could not create the Hub repository {repo_id!r}: {error}\nCheck the name, your token "
            "(`hf auth login`) and the network; nothing has been run yet."
        ) from error


def push_folder(folder: str | Path, repo_id: str, files: list[str], token: str | None = None) -> str:
    """Upload exactly `files` (paths relative to `folder`, the files the run wrote) to `repo_id` in one commit, never
    anything else that lies in the folder; returns the commit URL."""
    folder = Path(folder)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files]
    try:
        commit = create_commit(
            repo_id=repo_id, operations=operations, token=token, commit_message="Upload DARTS result with darts-hub"
        )
    except Exception as error:
        raise HubPushError(
            f"Uploading {folder} to {repo_id!r} failed: {error}\nThe local folder is complete and unchanged; upload "
            f"the same files later with:\n  hf upload {repo_id} {folder} . "
            + " ".join(f"--include '{glob.escape(name)}'" for name in files)
        ) from error
    logger.info("Uploaded %s to %s", folder, commit.commit_url)
    return commit.commit_url


def files_in(folder: Path) -> list[str]:
    """The files below `folder`, as sorted relative paths."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def check_output_dir(output_dir: str | Path, overwrite: bool) -> None:
    """Refuse to write into a folder that already holds files (another run's, or the user's) unless `overwrite`."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir} exists and is not a folder.")
    if not overwrite and output_dir.is_dir() and any(output_dir.iterdir()):
        raise FileExistsError(
            f"{output_dir} already exists and is not empty: choose a new --output_dir, or pass "
            "--overwrite_output_dir to write into it (files of the same names are replaced, others are left)."
        )


def write_folder_atomically(
    output_dir: str | Path, write: Callable[[Path], None], overwrite: bool = False
) -> list[str]:
    """Run `write(folder)` on a temporary sibling folder, then move what it wrote into `output_dir`: a failure midway
    leaves `output_dir` as it was. Returns the files written (relative paths), for `push_folder`."""
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".partial", dir=output_dir.parent))
    try:
        write(staging)
        files = files_in(staging)
        if output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()
        if not output_dir.exists():
            os.replace(staging, output_dir)  # one rename: the folder appears complete
            return files
        for name in files:
            (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, output_dir / name)
        return files
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_search_result(
    output_dir: str | Path,
    supernet,
    history: list[dict],
    derived_sizes: dict,
    settings: dict,
    dataset: str,
    stop: Stop | None = None,
) -> Path:
    """Write a search's result folder (for a search `stop`ped early, the genotype is that of the epoch it names):

    - `config.json`: the config of the derived network (`DartsConfig`, `DartsRNNConfig` or `NasBench201Config`:
      what training needs),
    - `genotype.json`, `alphas_history.json` (every epoch's genotype, softmax alphas and metrics),
    - `supernet/`: the supernet with its alphas (`save_pretrained`),
    - drawings of the cells and `search_progress.gif` (the most likely cells epoch by epoch),
    - `learning_curves.png` (losses, accuracies or perplexity, the alphas' entropy) and `alphas.png` / `alphas.gif`
      (the softmax alphas as heatmaps, last epoch and epoch by epoch),
    - `README.md`: the model card.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    genotype = supernet.genotype()
    if stop is not None:
        recorded = next(r["genotype"] for r in history if r["epoch"] == stop.epoch)
        if recorded is None:
            raise EmptyCellError(
                f"The search stopped at epoch {stop.epoch}, whose alphas encode no cell (no operation reached "
                "--operation_threshold): lower the threshold, or search without early stopping."
            )
        genotype = type(genotype).from_dict(recorded)
    save_config_with_model_code(derived_config(supernet, genotype=genotype, **derived_sizes), output_dir)
    (output_dir / "genotype.json").write_text(json.dumps(genotype.to_dict(), indent=2) + "\n")
    (output_dir / "alphas_history.json").write_text(json.dumps(history, indent=1) + "\n")
    supernet.save_pretrained(output_dir / "supernet")
    # transformers looks for the code of a model in a subfolder at the repository's root (`from_pretrained(repo,
    # subfolder="supernet", trust_remote_code=True)`): the supernet's files go there too.
    custom_object_save(supernet, output_dir)
    drawings = draw_genotype(genotype, output_dir)
    animation = animate_genotypes(
        [(f"epoch {record['epoch']}", record["genotype"]) for record in history if record["genotype"] is not None],
        output_dir / "search_progress.gif",
    )
    plots = plot_search(history, alpha_columns(supernet), output_dir)
    card = search_model_card(genotype, history, settings, dataset, drawings, animation, plots, stop)
    save_card(card, output_dir)
    return output_dir


def save_card(card: ModelCard, folder: Path, published_later: tuple[str, ...] = ("run_record.json",)) -> None:
    """Save `card` as the folder's README.md, ending with the list of the files published with it: those in the
    folder now (the card is written last), the card itself and `published_later` (the run record)."""
    listed = "\n".join(f"- `{name}`" for name in sorted({*files_in(folder), "README.md", *published_later}))
    ModelCard(f"{card.content.rstrip()}\n\n## Files\n\n{listed}\n").save(folder / "README.md")


def _pictures(drawings) -> str:
    return "\n".join(f"![{path.stem}]({path.name})" for path in drawings if path.suffix == ".png")


def _settings_table(settings: dict) -> str:
    rows = "\n".join(f"| {key} | {value} |" for key, value in settings.items() if value is not None)
    return f"| setting | value |\n|---|---|\n{rows}"


def save_config_with_model_code(config, folder: Path) -> None:
    """Save a network's `config` (no weights) with the code of the network too: the `auto_map` entry and the model
    files, so that `AutoModel...from_config(AutoConfig.from_pretrained(folder, trust_remote_code=True),
    trust_remote_code=True)` builds it where darts-hub is not installed. (The network is built on the meta device,
    without memory or initialisation, only to name its class and files.)"""
    model_class = {
        DartsConfig: DartsForImageClassification,
        DartsRNNConfig: DartsRNNForCausalLM,
        NasBench201Config: NasBench201ForImageClassification,
    }[type(config)]
    with torch.device("meta"):
        model = model_class(config)
    custom_object_save(model, folder, config=config)
    config.save_pretrained(folder)


def code_files(model_class) -> list[str]:
    """The files of `darts_hub/models` that a saved `model_class` carries and that run when it is loaded with
    `trust_remote_code=True`: its module and the modules it imports."""
    module_file = sys.modules[model_class.__module__].__file__
    return sorted(Path(path).name for path in [module_file, *get_relative_import_files(module_file)])


def _usage(model_class, code: str) -> str:
    """The card's "Use" section, both ways: with darts-hub installed, and with only transformers, where the model's
    code saved beside the weights runs (`trust_remote_code=True`). `code` has a `{trust}` placeholder in each
    loading call."""
    files = ", ".join(f"`{name}`" for name in code_files(model_class))
    return f"""## Use

With darts-hub installed (`pip install darts-hub`):

```python
import darts_hub  # registers the DARTS models with transformers
{code.format(trust="")}
```

Without darts-hub (torch and transformers only): the model's code is saved beside it ({files}) and runs when you
pass `trust_remote_code=True`, so read it first:

```python
{code.format(trust=", trust_remote_code=True")}
```"""


IMAGE_CLASSIFIER_USE = """from transformers import AutoModelForImageClassification, pipeline

model = AutoModelForImageClassification.from_pretrained("path/or/repo"{trust})
classifier = pipeline("image-classification", model="path/or/repo"{trust})"""
LANGUAGE_MODEL_USE = """from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

model = AutoModelForCausalLM.from_pretrained("path/or/repo"{trust})
tokenizer = AutoTokenizer.from_pretrained("path/or/repo")
generator = pipeline("text-generation", model="path/or/repo"{trust})"""


# By kind of genotype: the pipeline task, Auto class and config of the derived network, and the supernet's class.
SEARCH_RESULT_CLASSES = {
    Genotype: ("image-classification", "AutoModelForImageClassification", "DartsConfig", DartsSearchModel),
    RecurrentGenotype: ("text-generation", "AutoModelForCausalLM", "DartsRNNConfig", DartsRNNSearchModel),
    NasBench201Genotype: (
        "image-classification",
        "AutoModelForImageClassification",
        "NasBench201Config",
        NasBench201SearchModel,
    ),
}


def search_model_card(genotype, history, settings, dataset, drawings, animation, plots=(), stop=None) -> ModelCard:
    """The README.md of a search result: what was searched, on what data, with which settings, and what came out."""
    last = history[-1] if history else {}
    pictures = _pictures(drawings)
    if animation is not None:
        pictures += f"\n\nMost likely cells after each epoch:\n\n![search progress]({animation.name})"
    if plots:  # plots.plot_search: the learning curves and the alphas, or nothing before the first epoch
        pictures += (
            "\n\nLosses, accuracy (or perplexity) and the entropy of the softmax alphas (1: uniform), per epoch:"
            "\n\n![learning curves](learning_curves.png)"
            "\n\nThe softmax alphas (edges by operations), epoch by epoch:\n\n![alphas](alphas.gif)"
        )
    eigenvalues = [(r["epoch"], r[EIGENVALUE_KEY]) for r in history if EIGENVALUE_KEY in r]
    if eigenvalues:
        listed = ", ".join(f"{value:.4g} (epoch {epoch})" for epoch, value in eigenvalues)
        metrics_note = (
            f"\n\nDominant eigenvalue of the Hessian of the validation loss with respect to the alphas "
            f"([Zela et al., 2020](https://arxiv.org/abs/1909.09656)): {listed}."
        )
    else:
        metrics_note = ""
    if stop is not None:
        metrics_note += f"\n\n**Stopped early** after epoch {history[-1]['epoch']}: {stop.reason}."
    order = "second-order (unrolled)" if settings.get("order") == 2 else "first-order"
    recurrent = isinstance(genotype, RecurrentGenotype)
    space_note = (
        f", in NAS-Bench-201's cell space ([Dong & Yang, 2020](https://arxiv.org/abs/2001.00326)); the cell in the "
        f"benchmark's notation: `{genotype}`"
        if isinstance(genotype, NasBench201Genotype)
        else ""
    )
    if not last:
        metrics = "The search stopped before completing an epoch."
    elif recurrent:
        metrics = (
            f"After {last['epoch']} epochs ({last['step']} steps): training loss {last['train_loss']:.4f}, "
            f"validation perplexity {last['valid_perplexity']:.2f}."
        )
    else:
        metrics = (
            f"After {last['epoch']} epochs ({last['step']} steps): weight-training accuracy "
            f"{last['train_accuracy']:.4f}, architecture-validation accuracy {last['valid_accuracy']:.4f} "
            f"(loss {last['valid_loss']:.4f})."
        )
    task, auto_class, config_class, supernet = SEARCH_RESULT_CLASSES[type(genotype)]
    settings_table = _settings_table(settings)
    supernet_class = "AutoModel" if recurrent else "AutoModelForImageClassification"
    usage = _usage(
        supernet,
        f"""from transformers import AutoConfig, {auto_class}{", AutoModel" if recurrent else ""}

config = AutoConfig.from_pretrained("path/or/repo"{{trust}})  # the derived {config_class}
model = {auto_class}.from_config(config{{trust}})  # untrained, ready for training
supernet = {supernet_class}.from_pretrained("path/or/repo", subfolder="supernet"{{trust}})  # with its alphas""",
    )
    data = ModelCardData(
        library_name="darts-hub",
        license="apache-2.0",
        tags=["darts", "neural-architecture-search", task],
        datasets=[settings["dataset_name"]] if settings.get("dataset_name") else None,
    )
    content = f"""---
{data.to_yaml()}
---

# DARTS cell searched on {dataset}

Cells found by a {order} DARTS architecture search ([Liu et al., 2019](https://arxiv.org/abs/1806.09055)) with
darts-hub{space_note}. `config.json` describes the derived network (a `{config_class}`), ready to be trained from scratch;
`supernet/` holds the search supernet and its architecture weights.

{metrics}{metrics_note}

## Genotype

```json
{json.dumps(genotype.to_dict())}
```

{pictures}

{usage}

## Search settings

{settings_table}

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(content)


def trained_model_card(
    config, results: dict, settings: dict, dataset: str, dataset_id: str | None, drawings
) -> ModelCard:
    """The README.md of a trained network, with the measured results in its model-index."""
    split = results["eval_split"]
    dataset_type = dataset_id or "digits"
    eval_results = [
        EvalResult(
            task_type="image-classification",
            dataset_type=dataset_type,
            dataset_name=dataset,
            dataset_split=split,
            metric_type=metric,
            metric_name=name,
            metric_value=round(results[key], 4),
        )
        for metric, name, key in (
            ("accuracy", "Top-1 accuracy", "eval_accuracy"),
            ("accuracy", "Top-5 accuracy", "eval_top5_accuracy"),
        )
    ]
    if isinstance(config, NasBench201Config):
        model_class, title = NasBench201ForImageClassification, "NAS-Bench-201 network"
        description = (
            "A network of NAS-Bench-201's space ([Dong & Yang, 2020](https://arxiv.org/abs/2001.00326)) trained from "
            f"scratch with darts-hub: the cell `{config.genotype}`, {config.cells_per_stage} cells per stage, "
            f"{config.init_channels} initial channels, {results['parameters']:,} parameters"
        )
    else:
        model_class, title = DartsForImageClassification, "DARTS network"
        description = (
            "A network of DARTS cells ([Liu et al., 2019](https://arxiv.org/abs/1806.09055)) trained from scratch "
            f"with darts-hub: {config.num_cells} cells, {config.init_channels} initial channels, {config.stem} stem, "
            f"{results['parameters']:,} parameters ({results['parameters_with_auxiliary']:,} with the auxiliary head "
            "used in training)"
        )
    data = ModelCardData(
        library_name="darts-hub",
        license="apache-2.0",
        tags=["darts", "neural-architecture-search", "image-classification"],
        datasets=[dataset_id] if dataset_id else None,
        metrics=["accuracy"],
        pipeline_tag="image-classification",
        model_name=f"{title} trained on {dataset}",
        eval_results=eval_results,
    )
    pictures = _pictures(drawings)
    content = f"""---
{data.to_yaml()}
---

# {title} trained on {dataset}

{description}, {results["mult_adds"]:,} mult-adds per {config.image_size}x{config.image_size} image.

## Results (measured)

| split | images | top-1 accuracy | top-5 accuracy | loss |
|---|---:|---:|---:|---:|
| {split} | {results["eval_samples"]} | {results["eval_accuracy"]:.4f} | {results["eval_top5_accuracy"]:.4f} | {results["eval_loss"]:.4f} |

After {results["epochs"]} epochs; `training_log.json` has every epoch.

## Genotype

```json
{json.dumps(config.genotype)}
```

{pictures}

{_usage(model_class, IMAGE_CLASSIFIER_USE)}

Evaluate with `python scripts/evaluate.py --model_name_or_path path/or/repo --dataset_name ...`.

{_training_settings_and_citation(settings)}"""
    return ModelCard(content)


def _training_settings_and_citation(settings: dict) -> str:
    return f"""## Training settings

{_settings_table(settings)}

## Citation

```bibtex
{CITATION}
```
"""


def trained_language_model_card(
    config, results: dict, settings: dict, dataset: str, dataset_id: str | None, drawings
) -> ModelCard:
    """The README.md of a trained recurrent language model, with the measured perplexities in its model-index."""
    eval_results = [
        EvalResult(
            task_type="text-generation",
            dataset_type=dataset_id or "pydoc",
            dataset_name=dataset,
            dataset_split=split,
            metric_type="perplexity",
            metric_name=f"{split.capitalize()} perplexity",
            metric_value=round(results[f"{split}_perplexity"], 2),
        )
        for split in ("valid", "test")
    ]
    data = ModelCardData(
        library_name="darts-hub",
        license="apache-2.0",
        tags=["darts", "neural-architecture-search", "language-modeling"],
        datasets=[dataset_id] if dataset_id else None,
        metrics=["perplexity"],
        pipeline_tag="text-generation",
        model_name=f"DARTS recurrent language model trained on {dataset}",
        eval_results=eval_results,
    )
    optimizer = "SGD, then averaged SGD" if results["switched_to_asgd"] else "SGD (no switch to averaged SGD yet)"
    content = f"""---
{data.to_yaml()}
---

# DARTS recurrent language model trained on {dataset}

A word-level language model with one layer of a DARTS recurrent cell
([Liu et al., 2019](https://arxiv.org/abs/1806.09055)), trained from scratch with darts-hub and the original recipe
({optimizer}): embedding = hidden size {config.hidden_size}, vocabulary {config.vocab_size:,}, decoder tied to the
embedding, {results["parameters"]:,} parameters. The weights are those of the best validation loss (the averaged
weights once averaged SGD runs).

## Results (measured)

| split | tokens | perplexity | loss |
|---|---:|---:|---:|
| valid | {results["valid_tokens"]:,} | {results["valid_perplexity"]:.2f} | {results["valid_loss"]:.4f} |
| test (batch {results["test_batch_size"]}) | {results["test_tokens"]:,} | {results["test_perplexity"]:.2f} | {results["test_loss"]:.4f} |

After {results["epochs"]} epochs; `training_log.json` has every epoch.

## Genotype

```json
{json.dumps(config.genotype)}
```

{_pictures(drawings)}

{_usage(DartsRNNForCausalLM, LANGUAGE_MODEL_USE)}

Evaluate with `python scripts/evaluate.py --model_name_or_path path/or/repo --dataset_name ...` (perplexity over a
whole split, batch 1 by default as the original's test).

{_training_settings_and_citation(settings)}"""
    return ModelCard(content)


# What the paper reports for each released checkpoint (Tables 1-3): true of the released DARTS_V2 weights only.
PAPER_RESULTS = {
    "cifar10": {
        "title": "DARTS_V2 on CIFAR-10",
        "dataset": ("CIFAR-10", "uoft-cs/cifar10", "test"),
        "task": "image-classification",
        "metrics": [
            ("accuracy", "Top-1 accuracy (%, reported by the paper)", 97.37),
            ("error", "Test error (%, reported by the paper)", 2.63),
        ],
        "summary": "2.63% test error (97.37% accuracy) for the released checkpoint; 2.76 +/- 0.09% over 10 runs "
        "of training the same cell from scratch",
    },
    "imagenet": {
        "title": "DARTS_V2 on ImageNet (mobile setting)",
        "dataset": ("ImageNet", "ILSVRC/imagenet-1k", "validation"),
        "task": "image-classification",
        "metrics": [
            ("error", "Top-1 error (%, reported by the paper)", 26.7),
            ("error", "Top-5 error (%, reported by the paper)", 8.7),
        ],
        "summary": "26.7% top-1 and 8.7% top-5 error on the validation set",
    },
    "ptb": {
        "title": "DARTS_V2 recurrent cell on Penn Treebank",
        "dataset": ("Penn Treebank", "ptb_text_only", "test"),
        "task": "text-generation",
        "metrics": [("perplexity", "Test perplexity (reported by the paper)", 55.68)],
        "summary": "55.68 test perplexity (58.17 validation)",
    },
}


def converted_model_card(kind: str, config, parameters: int, checkpoint_name: str, drawings: list[Path]) -> ModelCard:
    """The README.md of a converted original checkpoint, written from what was converted: its genotype and sizes,
    its parameter count, and the paper's reported results only if the cells are the released DARTS_V2."""
    from .models.genotypes import get_genotype

    paper = PAPER_RESULTS[kind]
    recurrent = kind == "ptb"
    is_released_cell = config.get_genotype() == get_genotype("DARTS_V2", recurrent=recurrent)
    name, dataset_id, split = paper["dataset"]
    eval_results = [
        EvalResult(
            task_type=paper["task"],
            dataset_type=dataset_id,
            dataset_name=name,
            dataset_split=split,
            metric_type=metric,
            metric_name=metric_name,
            metric_value=value,
        )
        for metric, metric_name, value in paper["metrics"]
    ]
    data = ModelCardData(
        library_name="darts-hub",
        license="apache-2.0",
        tags=["darts", "neural-architecture-search", paper["task"]],
        datasets=[dataset_id],
        pipeline_tag=paper["task"],
        model_name=f"{paper['title']} (original checkpoint, converted)" if is_released_cell else None,
        eval_results=eval_results if is_released_cell else None,
    )
    if is_released_cell:
        reported = f"**Results reported by the paper** (not measured by darts-hub): {paper['summary']}."
        title = paper["title"]
    else:
        reported = "The cells are not the released DARTS_V2 cells, so the paper's results do not apply to it."
        title = f"DARTS network converted from {checkpoint_name}"
    if recurrent:
        architecture = (
            f"One layer of the recurrent cell below, embedding = hidden size {config.hidden_size}, vocabulary "
            f"{config.vocab_size:,}, decoder tied to the embedding: {parameters:,} parameters."
        )
        use, evaluate = LANGUAGE_MODEL_USE, "--dataset_name ptb_text_only --split test"
    else:
        architecture = (
            f"{config.num_cells} cells (reductions at cells {', '.join(map(str, config.reduction_cells))}), "
            f"{config.init_channels} initial channels, {config.stem} stem, {config.image_size}x{config.image_size} "
            f"inputs: {parameters:,} parameters without the auxiliary head (used only in training)."
        )
        use, evaluate = IMAGE_CLASSIFIER_USE, f"--dataset_name {dataset_id} --split {split}"
    pictures = _pictures(drawings)
    content = f"""---
{data.to_yaml()}
---

# {title}

`{checkpoint_name}`, a checkpoint released with DARTS ([Liu et al., 2019](https://arxiv.org/abs/1806.09055)),
converted to a transformers checkpoint (safetensors) by darts-hub's `scripts/convert_original_checkpoint.py`, which
reads the original file without running any of its pickles. The weights are the original authors' (Apache-2.0).

{reported}

## Architecture

{architecture}

```json
{json.dumps(config.genotype)}
```

{pictures}

{_usage(DartsRNNForCausalLM if recurrent else DartsForImageClassification, use)}

Evaluate: `python scripts/evaluate.py --model_name_or_path path/or/repo {evaluate}`.

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(content)


__all__ = [
    "HubPushError",
    "check_output_dir",
    "code_files",
    "converted_model_card",
    "create_hub_repo",
    "files_in",
    "push_folder",
    "save_search_result",
    "save_card",
    "save_config_with_model_code",
    "search_model_card",
    "trained_language_model_card",
    "trained_model_card",
    "write_folder_atomically",
]
