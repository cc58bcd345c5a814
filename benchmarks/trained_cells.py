"""Tabulate and draw cells trained from scratch by darts-train, several seeds per cell (docs/results.md).

Not part of the package: it reads the folders darts-train wrote. Per folder, from `config.json` the cell, from
`all_results.json` the accuracy on the evaluation split and the parameters, from `training_log.json` the accuracy
after every epoch. A name given several times (one folder per seed) is one row, its accuracies listed and averaged.

    python benchmarks/trained_cells.py --trained DARTS=darts-seed2 DARTS=darts-seed3 DARTS-=minus-seed2 ... \
        --output docs/figures/trained_cells.png
"""

import argparse
import json
import statistics
from pathlib import Path

from darts_hub.plots import MaxNLocator, plt


def grouped_folders(values: list[str]) -> dict[str, list[Path]]:
    """`NAME=DIR` pairs grouped by name, names in the order first given."""
    groups = {}
    for value in values:
        name, separator, folder = value.partition("=")
        if not separator:
            raise SystemExit(f"Give each folder as NAME=DIR, got {value!r}.")
        groups.setdefault(name, []).append(Path(folder))
    return groups


def read_training(folder: Path) -> dict:
    """The trained cell of `folder`: its genotype, parameters, final accuracy and per-epoch accuracy."""
    results = json.loads((folder / "all_results.json").read_text())
    log = json.loads((folder / "training_log.json").read_text())
    split = results["eval_split"]
    return {
        "genotype": json.loads((folder / "config.json").read_text())["genotype"],
        "parameters": results["parameters"],
        "accuracy": results["eval_accuracy"],
        "split": split,
        "epochs": [record["epoch"] for record in log],
        "curve": [record[f"{split}_accuracy"] for record in log],
    }


def table(trainings: dict[str, list[dict]]) -> str:
    """One markdown row per cell: its parameters, the accuracy of every seed and their mean, the cell."""
    first = next(iter(trainings.values()))[0]
    rows = [
        f"| cell | parameters | {first['split']} accuracy after {first['epochs'][-1]} epochs, per seed | mean | cell |",
        "|---|---:|---|---:|---|",
    ]
    for name, runs in trainings.items():
        accuracies = [run["accuracy"] for run in runs]
        genotype = runs[0]["genotype"]
        cell = f"`{genotype if isinstance(genotype, str) else json.dumps(genotype)}`".replace("|", "\\|")
        rows.append(
            f"| {name} | {runs[0]['parameters']:,} | {', '.join(f'{value:.3f}' for value in accuracies)} "
            f"| {statistics.mean(accuracies):.3f} | {cell} |"
        )
    return "\n".join(rows)


def plot(trainings: dict[str, list[dict]], output: Path) -> None:
    figure, panel = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for index, (name, runs) in enumerate(trainings.items()):
        for number, run in enumerate(runs):
            label = name if number == 0 else None
            panel.plot(run["epochs"], run["curve"], color=f"C{index}", marker=".", alpha=0.8, label=label)
    first = next(iter(trainings.values()))[0]
    panel.set(title="trained from scratch", xlabel="epoch", ylabel=f"{first['split']} accuracy")
    panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    panel.grid(alpha=0.3)
    panel.legend(fontsize=8)
    figure.savefig(output, dpi=90)
    print(f"Wrote {output}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", nargs="+", required=True, help="NAME=DIR: darts-train folders, one per seed")
    parser.add_argument("--output", type=Path, required=True, help="the figure (PNG)")
    args = parser.parse_args()
    trainings = {
        name: [read_training(folder) for folder in folders] for name, folders in grouped_folders(args.trained).items()
    }
    plot(trainings, args.output)
    print(table(trainings))


if __name__ == "__main__":
    main()
