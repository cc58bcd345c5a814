"""Run the original DARTS code on the same data as darts-hub, and draw the two side by side (docs/results.md).

Not part of the package: it needs a checkout of the original code (quark0/darts, patched only to run on current
PyTorch and the CPU), given with `--original`. The original's scripts run unchanged; this file only hands them data and
records what they print.

    # The original's CIFAR-10 search on the images and the weight/architecture halves a darts-search with the same
    # --max_train_samples and --data_seed uses; the arguments after `--` go to its cnn/train_search.py.
    python benchmarks/original_darts.py search --original ORIGINAL --train_arrays cifar10_train_first4000.npz \
        --max_train_samples 2000 --data_seed 0 --output_dir original-search -- --epochs 4 --init_channels 8 --layers 5

    # Alpha entropy and architecture-validation accuracy per epoch, ours against the original's (several seeds each).
    python benchmarks/original_darts.py plot-search --ours cifar-search-seed2 ... --original original-search ... \
        --output docs/figures/search_vs_original.png

    # Training loss (every N steps) and validation perplexity (every epoch) of a DARTS_V2 language model: our
    # darts-train folder (with --logging_steps) against the log of the original's rnn/train.py.
    python benchmarks/original_darts.py plot-lm --ours ptb-ours --original original.log --output docs/figures/ptb.png
"""

import argparse
import contextlib
import json
import math
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import torch

from darts_hub.data.images import stratified_split
from darts_hub.plots import MaxNLocator, alphas_of, normalised_entropy, plt


def search_order(labels: np.ndarray, max_train_samples: int | None, data_seed: int, train_portion: float):
    """The indices of the images darts-search trains on, weight part first, then architecture part: the original's
    train_search.py takes the first `train_portion` of its dataset for the weights and the rest for the alphas, so
    this order gives it exactly our two parts (the two cuts `inputs.open_image_splits` and
    `search_images.split_for_search` make, with the same `stratified_split`)."""
    labels = torch.as_tensor(labels)
    chosen = torch.arange(len(labels))
    if max_train_samples is not None and max_train_samples < len(labels):
        chosen, _ = stratified_split(labels, max_train_samples, data_seed)
    weight_part, arch_part = stratified_split(labels[chosen], int(math.floor(train_portion * len(chosen))), data_seed)
    return torch.cat([chosen[weight_part], chosen[arch_part]]).numpy()


def run_original_search(args: argparse.Namespace) -> None:
    from PIL import Image

    with np.load(args.train_arrays, allow_pickle=False) as arrays:
        images, labels = arrays["x"], arrays["y"]
    order = search_order(labels, args.max_train_samples, args.data_seed, args.train_portion)

    class SameImages(torch.utils.data.Dataset):
        """Stands in for torchvision's CIFAR10 in the original script: our images, in `order`, through its
        transforms."""

        def __init__(self, root, train=True, download=False, transform=None):
            self.transform = transform

        def __len__(self):
            return len(order)

        def __getitem__(self, index):
            position = order[index]
            return self.transform(Image.fromarray(images[position])), int(labels[position])

    original = Path(args.original).resolve() / "cnn"
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=False)
    sys.path.insert(0, str(original))
    import model_search  # the original's module, found on the path above
    import torchvision.datasets

    torchvision.datasets.CIFAR10 = SameImages
    # The original prints the softmax alphas (rounded) before each epoch and saves no alphas: record them from the
    # genotype() it calls at the start of each epoch, and once more at the end.
    networks, architectures = [], []
    derive = model_search.Network.genotype

    def recording_genotype(network):
        if network not in networks:
            networks.append(network)
        genotype = derive(network)
        architectures.append(softmax_alphas(network) | {"genotype": genotype_dict(genotype)})
        return genotype

    model_search.Network.genotype = recording_genotype
    sys.argv = ["train_search.py", "--train_portion", str(args.train_portion), *args.search_arguments]
    with contextlib.chdir(output_dir):
        runpy.run_path(str(original / "train_search.py"), run_name="__main__")
    architectures.append(softmax_alphas(networks[0]) | {"genotype": genotype_dict(derive(networks[0]))})
    (log,) = output_dir.glob("search-*/log.txt")
    history = original_search_history(log.read_text(), architectures[1:])
    (output_dir / "alphas_history.json").write_text(json.dumps(history, indent=1))
    (output_dir / "data_order.json").write_text(json.dumps(order.tolist()))
    print(f"Wrote {output_dir / 'alphas_history.json'} ({len(history)} epochs).")


def genotype_dict(genotype) -> dict:
    """The original's Genotype (a namedtuple of lists of (operation, input) pairs) as our genotype.json."""
    return {
        key: [list(edge) for edge in value] if "concat" not in key else list(value)
        for key, value in genotype._asdict().items()
    }


def softmax_alphas(network) -> dict[str, list[list[float]]]:
    return {
        f"alphas_{cell}": torch.softmax(getattr(network, f"alphas_{cell}").detach(), dim=-1).tolist()
        for cell in ("normal", "reduce")
    }


def original_search_history(log: str, architectures_after_epochs: list[dict]) -> list[dict]:
    """Per epoch of the original's search log: the learning rate, training and validation accuracy (as fractions,
    like ours), the softmax alphas after the epoch and the genotype they give (the original's own derivation)."""
    rates = [float(value) for value in re.findall(r"epoch \d+ lr (\S+)", log)]
    train = [float(value) / 100 for value in re.findall(r"train_acc (\S+)", log)]
    valid = [float(value) / 100 for value in re.findall(r"valid_acc (\S+)", log)]
    return [
        {"epoch": epoch + 1, "learning_rate": rate, "train_accuracy": train_accuracy, "valid_accuracy": valid_accuracy}
        | architecture
        for epoch, (rate, train_accuracy, valid_accuracy, architecture) in enumerate(
            zip(rates, train, valid, architectures_after_epochs, strict=True)
        )
    ]


def plot_search(args: argparse.Namespace) -> None:
    """Per epoch, how far each cell's alphas have settled (1 - their normalised entropy, log scale) and the
    architecture-validation accuracy: ours solid, the original's dashed, one line per search folder."""
    figure, panels = plt.subplots(1, 3, figsize=(14, 3.8), constrained_layout=True)
    for folders, style, who in ((args.ours, "-", "darts-hub"), (args.original, "--", "original")):
        for folder in folders:
            history = json.loads((Path(folder) / "alphas_history.json").read_text())
            epochs = [record["epoch"] for record in history]
            label = f"{who}: {Path(folder).name}"
            for panel, cell in zip(panels, ("normal", "reduce")):
                settled = [1 - normalised_entropy(alphas_of(record)[cell]) for record in history]
                panel.plot(epochs, settled, style, marker="o", label=label)
            panels[2].plot(epochs, [record["valid_accuracy"] for record in history], style, marker="o", label=label)
    titles = (
        "normal cell: 1 - alpha entropy (0 = uniform)",
        "reduction cell: 1 - alpha entropy",
        "architecture-validation accuracy",
    )
    for panel, title in zip(panels, titles):
        panel.set(title=title, xlabel="epoch")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.grid(alpha=0.3)
    for panel in panels[:2]:  # how far the alphas have moved from uniform: orders of magnitude over a search
        panel.set_yscale("log")
    panels[2].legend(fontsize=8)
    figure.savefig(args.output, dpi=90)
    print(f"Wrote {args.output}.")


def original_lm_log(
    log: str, steps_per_epoch: int
) -> tuple[list[tuple[int, float]], list[tuple[int, float]], float | None]:
    """From the log of the original's rnn/train.py: the training loss every --log-interval batches, the validation
    perplexity per epoch and the test perplexity. The log counts batches within each epoch and prints a nominal epoch
    length (tokens per stream / bptt); the batches are placed at `steps_per_epoch` per epoch, ours, since both draw
    their chunk lengths from the same distribution."""
    steps = [
        ((int(epoch) - 1) * steps_per_epoch + int(batch), float(loss))
        for epoch, batch, loss in re.findall(r"\| epoch +(\d+) \| +(\d+)/ *\d+ batches .*?\| loss +(\S+) \|", log)
    ]
    valid = [(int(epoch), float(ppl)) for epoch, ppl in re.findall(r"end of epoch +(\d+) .*valid ppl +(\S+)", log)]
    test = re.findall(r"End of training \| test loss +\S+ \| test ppl +(\S+)", log)
    return steps, valid, float(test[0]) if test else None


def plot_lm(args: argparse.Namespace) -> None:
    """Training loss every N steps and validation perplexity per epoch, ours against the original's."""
    ours = Path(args.ours)
    our_steps = json.loads((ours / "training_steps.json").read_text())
    our_epochs = json.loads((ours / "training_log.json").read_text())
    steps_per_epoch = our_epochs[0]["step"]
    their_steps, their_valid, their_test = original_lm_log(Path(args.original).read_text(), steps_per_epoch)
    figure, (loss, perplexity) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    loss.plot([r["step"] for r in our_steps], [r["train_loss"] for r in our_steps], "o-", label="darts-hub")
    loss.plot(*zip(*their_steps), "s--", label="original")
    loss.set(title="training loss (mean since the last point)", xlabel=f"step ({steps_per_epoch} per epoch)")
    our_test = json.loads((ours / "all_results.json").read_text()).get("test_perplexity")
    perplexity.plot(
        [r["epoch"] for r in our_epochs],
        [r["valid_perplexity"] for r in our_epochs],
        "o-",
        label="darts-hub" + (f" (test {our_test:.1f})" if our_test else ""),
    )
    perplexity.plot(*zip(*their_valid), "s--", label="original" + (f" (test {their_test:.1f})" if their_test else ""))
    perplexity.set(title="validation perplexity", xlabel="epoch", yscale="log")
    perplexity.xaxis.set_major_locator(MaxNLocator(integer=True))
    for panel in (loss, perplexity):
        panel.legend()
        panel.grid(alpha=0.3)
    figure.savefig(args.output, dpi=90)
    print(f"Wrote {args.output}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="the original's CIFAR-10 search on our images and halves")
    search.add_argument("--original", required=True, help="the original DARTS code (the folder holding cnn/)")
    search.add_argument("--train_arrays", required=True, help="a .npz with x (N, H, W, 3 uint8) and y (N,)")
    search.add_argument("--max_train_samples", type=int)
    search.add_argument("--data_seed", type=int, default=0)
    search.add_argument("--train_portion", type=float, default=0.5)
    search.add_argument("--output_dir", required=True, help="a new folder: the original's log and alphas_history.json")
    search.add_argument("search_arguments", nargs="*", help="after --: arguments of the original's train_search.py")
    search.set_defaults(run=run_original_search)
    compare = commands.add_parser("plot-search", help="alpha entropy and validation accuracy, ours and the original's")
    compare.add_argument("--ours", nargs="+", required=True, help="darts-search result folders")
    compare.add_argument("--original", nargs="+", required=True, help="folders written by `search`")
    compare.add_argument("--output", required=True)
    compare.set_defaults(run=plot_search)
    language = commands.add_parser("plot-lm", help="learning curves of a language model, ours and the original's")
    language.add_argument("--ours", required=True, help="a darts-train folder trained with --logging_steps")
    language.add_argument("--original", required=True, help="the log of the original's rnn/train.py")
    language.add_argument("--output", required=True)
    language.set_defaults(run=plot_lm)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
