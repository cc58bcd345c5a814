"""Draw and tabulate searches run with different fixes against DARTS's collapse (docs/results.md).

Not part of the package: it reads the folders darts-search and darts-train wrote. Per search, from
`alphas_history.json`: the largest eigenvalue of the alpha Hessian (`--hessian_eigenvalue_every`), the number of
parameter-free operations (skips, pooling) in the normal cell (in a NAS-Bench-201 search: in its one cell), and the
architecture-validation accuracy, per epoch;
per trained cell, from `all_results.json`: the accuracy on the evaluation split.

    python benchmarks/collapse_comparison.py --searches DARTS=darts beta-DARTS=beta ... \
        --trained DARTS=darts-trained beta-DARTS=beta-trained ... --output docs/figures/collapse_comparison.png
"""

import argparse
import json
from pathlib import Path

from darts_hub.models.genotypes import NasBench201Genotype, genotype_from_dict
from darts_hub.plots import MaxNLocator, plt


def named_folders(values: list[str]) -> dict[str, Path]:
    """`NAME=DIR` pairs, in the order given."""
    pairs = [value.split("=", 1) for value in values]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"Give each folder as NAME=DIR, got {values}.")
    return {name: Path(folder) for name, folder in pairs}


def search_curves(folder: Path) -> dict[str, list]:
    """Per epoch of the search in `folder`: its number, the eigenvalue (None where not measured), the normal cell's
    parameter-free operations, the architecture-validation accuracy, and the last genotype."""
    history = json.loads((folder / "alphas_history.json").read_text())
    return {
        "epoch": [record["epoch"] for record in history],
        "eigenvalue": [record.get("hessian_eigenvalue") for record in history],
        "parameter_free": [recorded_parameter_free(record) for record in history],
        "valid_accuracy": [record["valid_accuracy"] for record in history],
        "genotype": genotype_from_dict(history[-1]["genotype"]),
    }


def recorded_parameter_free(record: dict) -> int:
    """Skips and pooling in the searched cell, as the search recorded them: `parameter_free_normal` (a DARTS
    search's normal cell) or `parameter_free_cell` (NAS-Bench-201's one cell)."""
    return next(value for key, value in record.items() if key.startswith("parameter_free_"))


def cell_text(genotype) -> str:
    """The searched cell, as the table shows it: the benchmark's string (its `|` escaped for the table), or a DARTS
    normal cell's edges."""
    if isinstance(genotype, NasBench201Genotype):
        return f"`{genotype}`".replace("|", "\\|")
    return ", ".join(f"{op} <- {source}" for op, source in genotype.normal)


def plot(curves: dict[str, dict], output: Path) -> None:
    figure, panels = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for name, curve in curves.items():
        measured = [(epoch, value) for epoch, value in zip(curve["epoch"], curve["eigenvalue"]) if value is not None]
        panels[0].plot(*zip(*measured), marker="o", label=name)
        panels[1].plot(curve["epoch"], curve["parameter_free"], marker=".", label=name)
        panels[2].plot(curve["epoch"], curve["valid_accuracy"], marker=".", label=name)
    # The watched cell's edges: 8 in a DARTS normal cell of the paper's size, NAS-Bench-201's 6.
    edges = max(len(curve["genotype"].operations()) for curve in curves.values())
    cell = next(iter(curves.values()))["genotype"].watched_cell
    titles = (
        "largest eigenvalue of the alpha Hessian",
        f"parameter-free operations in the {cell} (of {edges})",
        "architecture-validation accuracy",
    )
    for panel, title in zip(panels, titles):
        panel.set(title=title, xlabel="epoch")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.grid(alpha=0.3)
    panels[1].set_ylim(-0.3, edges + 0.3)
    panels[0].legend(fontsize=8)
    figure.savefig(output, dpi=90)
    print(f"Wrote {output}.")


def table(curves: dict[str, dict], trained: dict[str, Path]) -> str:
    """One markdown row per search: the eigenvalue at its first and last measurement and at its highest, the
    parameter-free operations at the end, the accuracies, and the normal cell found."""
    rows = [
        "| method | eigenvalue: first / last (max, epoch) | parameter-free ops, searched cell: at the end (max) "
        "| arch-valid accuracy, last epoch | trained from scratch: accuracy | cell found |",
        "|---|---|---|---:|---:|---|",
    ]
    for name, curve in curves.items():
        measured = [(value, epoch) for epoch, value in zip(curve["epoch"], curve["eigenvalue"]) if value is not None]
        highest, at = max(measured)
        if name in trained:
            results = json.loads((trained[name] / "all_results.json").read_text())
            accuracy = f"{results['eval_accuracy']:.3f} ({results['eval_split']}, {results['epochs']} epochs)"
        else:
            accuracy = "-"
        cell = cell_text(curve["genotype"])
        rows.append(
            f"| {name} | {measured[0][0]:.4f} / {measured[-1][0]:.4f} ({highest:.4f}, {at}) "
            f"| {curve['parameter_free'][-1]} ({max(curve['parameter_free'])}) | {curve['valid_accuracy'][-1]:.3f} "
            f"| {accuracy} | {cell} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--searches", nargs="+", required=True, help="NAME=DIR: darts-search result folders")
    parser.add_argument("--trained", nargs="*", default=[], help="NAME=DIR: darts-train folders of the found cells")
    parser.add_argument("--output", type=Path, required=True, help="the figure (PNG)")
    args = parser.parse_args()
    curves = {name: search_curves(folder) for name, folder in named_folders(args.searches).items()}
    plot(curves, args.output)
    print(table(curves, named_folders(args.trained)))


if __name__ == "__main__":
    main()
