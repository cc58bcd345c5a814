"""Convert the original DARTS checkpoints (PyTorch 0.3 era) into transformers folders, without running their pickles.

- `cifar10_model.pt`, `imagenet_model.pt`: state dicts (legacy or zip serialization, with or without
  `num_batches_tracked`).
- `ptb_model.pt`: a pickle of the whole original model object, whose original class paths are read as inert
  placeholders that only record their state.

Both are read by `darts_hub.unpickling.load_torch_file`: every pickle of the file goes through one restricted unpickler
that refuses any other global before anything runs; torch.load is never called on them.

Every original key is mapped to ours; leftover, missing or mis-shaped keys are reported by name (for the cells, with
the cell and the operation the genotype puts there), never left to `load_state_dict`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from .counting import count_parameters
from .export import export_onnx, require_export
from .hub import check_output_dir, converted_model_card, save_card, write_folder_atomically
from .models import (
    DartsConfig,
    DartsForImageClassification,
    DartsRNNConfig,
    DartsRNNForCausalLM,
    build_tokenizer,
    vocabulary_in_order,
)
from .models.genotypes import RecurrentGenotype, get_genotype
from .recipes import IMAGE_TRAINING
from .unpickling import Recorded, UnsafePickleError, load_torch_file
from .visualize import draw_genotype


logger = logging.getLogger(__name__)

KINDS = ("cifar10", "imagenet", "ptb")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class ConversionError(ValueError):
    """The checkpoint does not match the architecture it is converted to; the message names the keys."""


def cnn_config(kind: str, genotype: str = "DARTS_V2") -> DartsConfig:
    """The architecture of the released CNN checkpoints: the paper's evaluation networks (`recipes.IMAGE_TRAINING`)."""
    if kind not in ("cifar10", "imagenet"):
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    recipe = IMAGE_TRAINING["cifar" if kind == "cifar10" else "imagenet"]
    classes = (
        {"id2label": dict(enumerate(CIFAR10_CLASSES)), "label2id": {name: i for i, name in enumerate(CIFAR10_CLASSES)}}
        if kind == "cifar10"
        else {"num_labels": 1000}
    )
    return DartsConfig(
        genotype=genotype,
        stem=recipe["stem"],
        init_channels=recipe["init_channels"],
        num_cells=recipe["num_cells"],
        use_auxiliary_head=True,
        drop_path_prob=recipe["drop_path_prob"],
        label_smoothing=recipe["label_smoothing"],
        **classes,
    )


def original_cnn_key(key: str) -> str:
    """Our state-dict key -> the original's (`darts.cells.3.ops.5...` -> `cells.3._ops.5...`)."""
    return key.removeprefix("darts.").replace(".ops.", "._ops.")


def _describe(key: str, config: DartsConfig) -> str:
    """A key, with the cell and operation the genotype puts there when it belongs to a cell's edge."""
    match = re.match(r"cells\.(\d+)\._ops\.(\d+)\.", key)
    if not match:
        return key
    cell, edge = int(match[1]), int(match[2])
    reduction = cell in config.reduction_cells
    genotype = config.get_genotype()
    edges = genotype.reduce if reduction else genotype.normal
    where = f"cell {cell} ({'reduction' if reduction else 'normal'})"
    if edge >= len(edges):
        return f"{key} [{where} has only {len(edges)} edges in the genotype]"
    op, source = edges[edge]
    return f"{key} [{where}, edge {edge}: {op} from input {source}]"


def _check_and_map(original: dict, ours: dict, to_original, describe, optional=lambda key: False) -> dict:
    """Our key -> the original tensor, after checking that every key has its counterpart with the same shape."""
    mapping = {key: to_original(key) for key in ours}
    problems = []
    mismatched = [
        f"{describe(name)}: checkpoint {tuple(original[name].shape)}, model {tuple(ours[key].shape)}"
        for key, name in mapping.items()
        if name in original and tuple(original[name].shape) != tuple(ours[key].shape)
    ]
    missing = [describe(name) for key, name in mapping.items() if name not in original and not optional(key)]
    leftover = [describe(name) for name in original if name not in set(mapping.values())]
    for label, keys in (
        ("shape mismatch", mismatched),
        ("missing from the checkpoint", missing),
        ("in the checkpoint but not in the model", leftover),
    ):
        if keys:
            shown = "\n  ".join(keys[:20]) + (f"\n  ... and {len(keys) - 20} more" if len(keys) > 20 else "")
            problems.append(f"{len(keys)} key(s) {label}:\n  {shown}")
    if problems:
        raise ConversionError(
            "The checkpoint does not fit the architecture (check --kind and --genotype):\n" + "\n".join(problems)
        )
    return {key: original[name] for key, name in mapping.items() if name in original}


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A saved state dict (legacy or zip serialization), read without running any of its pickles."""
    try:
        state = load_torch_file(path)
    except UnsafePickleError as error:
        raise ConversionError(
            f"{path} is not a plain state dict: {error}\nThe CNN checkpoints are state dicts of tensors; for "
            "ptb_model.pt use --kind ptb."
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path} does not hold a state dict (a mapping of names to tensors).")
    return dict(state)


def convert_cnn(path: str | Path, kind: str, genotype: str = "DARTS_V2") -> DartsForImageClassification:
    """`cifar10_model.pt` / `imagenet_model.pt` -> a `DartsForImageClassification` holding exactly its tensors."""
    config = cnn_config(kind, genotype)
    model = DartsForImageClassification(config)
    ours = model.state_dict()
    tensors = _check_and_map(
        load_state_dict_file(path),
        ours,
        original_cnn_key,
        lambda name: _describe(name, config),
        # PyTorch 0.3 had no num_batches_tracked: ours stay at 0 (they only matter with momentum=None).
        optional=lambda key: key.endswith("num_batches_tracked"),
    )
    model.load_state_dict({**ours, **tensors})
    return model


# Classes of the pickled PTB model, by module path: read as recording placeholders (`Recorded`), never run.
ORIGINAL_CLASSES = frozenset(
    {
        ("model", "RNNModel"),
        ("model", "DARTSCell"),
        ("utils", "LockedDropout"),
        ("genotypes", "Genotype"),
        ("torch.nn.modules.sparse", "Embedding"),
        ("torch.nn.modules.linear", "Linear"),
        ("torch.nn.modules.container", "ModuleList"),
        ("torch.nn.modules.container", "ParameterList"),
        ("torch.nn.modules.dropout", "Dropout"),
        ("torch.nn.backends.thnn", "_get_thnn_function_backend"),
    }
)


def load_pickled_model(path: str | Path) -> Recorded:
    """The whole-model pickle, as a tree of placeholders (legacy or zip serialization), read without running it."""
    return load_torch_file(path, stand_ins=ORIGINAL_CLASSES)


def _flatten(node: Recorded, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and buffers of a stand-in module tree, keyed as a state dict."""
    tensors = {}
    for group in ("_parameters", "_buffers"):
        for name, tensor in node.state.get(group, {}).items():
            if tensor is not None:
                tensors[prefix + name] = tensor
    for name, child in node.state.get("_modules", {}).items():
        if child is not None:
            tensors.update(_flatten(child, f"{prefix}{name}."))
    return tensors


PTB_KEYS = {
    "model.encoder.weight": "encoder.weight",
    "model.cell.w0": "rnns.0._W0",
    "decoder.weight": "decoder.weight",
    "decoder.bias": "decoder.bias",
}


def original_ptb_key(key: str) -> str:
    """Our key -> the original's (`model.cell.ws.3` -> `rnns.0._Ws.3`)."""
    return PTB_KEYS.get(key) or key.replace("model.cell.ws.", "rnns.0._Ws.")


def ptb_vocabulary(vocab_from: str | Path) -> dict[str, int]:
    """The original vocabulary, rebuilt from the PTB text: the training text file (`train.txt` or `ptb.train.txt`,
    with its `valid` and `test` siblings beside it), their folder (the original data/penn layout), or a text dataset
    name."""
    from .data.text import load_text_dataset, split_lines

    path = Path(vocab_from)
    if path.is_file() and "train" in path.name:
        files = [path.with_name(path.name.replace("train", split)) for split in ("train", "valid", "test")]
    elif path.is_dir():
        files = [
            next((path / name for name in (f"{split}.txt", f"ptb.{split}.txt") if (path / name).is_file()), None)
            for split in ("train", "valid", "test")
        ]
    else:
        lines = split_lines(load_text_dataset(str(vocab_from)))
        return vocabulary_in_order([lines["train"], lines["validation"], lines["test"]])
    missing = [split for split, file in zip(("train", "valid", "test"), files) if file is None or not file.is_file()]
    if missing:
        raise FileNotFoundError(f"No PTB {' and '.join(missing)} text found from {vocab_from}.")
    return vocabulary_in_order([file.read_text().splitlines() for file in files])


def convert_ptb(path: str | Path, vocab_from: str | Path | None = None, genotype: str | None = None):
    """`ptb_model.pt` -> (`DartsRNNForCausalLM`, tokenizer or None). The genotype is read from the file (and must
    equal `genotype` if given); sizes come from the tensors; the vocabulary, if given, must fit the embedding."""
    root = load_pickled_model(path)
    if not isinstance(root, Recorded):
        raise ConversionError(f"{path} holds a {type(root).__name__}, not the original recurrent model object.")
    original = _flatten(root)
    if "encoder.weight" not in original:
        raise ConversionError(f"{path} has no encoder.weight: it is not the original recurrent model.")
    if "decoder.weight" in original and not torch.equal(original["decoder.weight"], original["encoder.weight"]):
        raise ConversionError("decoder.weight differs from encoder.weight: the original model ties them.")
    cells = [node for node in _walk(root) if type(node).__name__ == "DARTSCell"]
    found = None
    if cells and "genotype" in cells[0].state:
        recurrent, concat = cells[0].state["genotype"].args
        found = RecurrentGenotype(recurrent=[tuple(edge) for edge in recurrent], concat=tuple(concat))
    if genotype is not None and found is not None and found != get_genotype(genotype, recurrent=True):
        raise ConversionError(f"The file's cell is {found}, not {genotype}.")
    vocab_size, hidden_size = original["encoder.weight"].shape
    config = DartsRNNConfig(genotype=found or genotype or "DARTS_V2", vocab_size=vocab_size, hidden_size=hidden_size)
    tokenizer = None
    if vocab_from is not None:
        vocabulary = ptb_vocabulary(vocab_from)
        if len(vocabulary) != vocab_size:
            raise ConversionError(
                f"The text gives a vocabulary of {len(vocabulary)} words but the embedding has {vocab_size} rows: "
                "pass the PTB text the model was trained on (train, valid and test)."
            )
        tokenizer = build_tokenizer(vocabulary=vocabulary)
        config.eos_token_id = config.pad_token_id = vocabulary["<eos>"]
    model = DartsRNNForCausalLM(config)
    ours = model.state_dict()
    original.setdefault("decoder.weight", original["encoder.weight"])
    tensors = _check_and_map(original, ours, original_ptb_key, str)
    model.load_state_dict({**ours, **tensors})
    return model, tokenizer


def _walk(node):
    if isinstance(node, Recorded):
        yield node
        for child in node.state.get("_modules", {}).values():
            yield from _walk(child)


def convert_checkpoint(
    checkpoint: str | Path,
    kind: str,
    output_dir: str | Path,
    genotype: str | None = None,
    vocab_from: str | Path | None = None,
    overwrite_output_dir: bool = False,
    export: str | None = None,
) -> tuple[Path, list[str]]:
    """Convert an original checkpoint into a save_pretrained folder with drawings of its cells and a model card
    written from what was converted, ready for upload. Returns
    the folder and the files written into it (what `push_folder` publishes). Nothing is written unless the whole
    conversion succeeds, and a non-empty `output_dir` is refused unless `overwrite_output_dir`. With `export`
    ("onnx") the folder also holds `model.onnx` (the language model's graph takes 35 tokens, the original's bptt)."""
    if kind not in KINDS:
        raise ValueError(f"--kind must be one of {KINDS}, got {kind!r}.")
    if export is not None:
        require_export(export)
    check_output_dir(output_dir, overwrite_output_dir)
    if kind == "ptb":
        model, tokenizer = convert_ptb(checkpoint, vocab_from, genotype)
    else:
        model, tokenizer = convert_cnn(checkpoint, kind, genotype or "DARTS_V2"), None
    parameters = count_parameters(model)

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        if export:
            export_onnx(model, folder / "model.onnx", sequence_length=35)
        drawings = draw_genotype(model.config.get_genotype(), folder)
        card = converted_model_card(kind, model.config, parameters, Path(checkpoint).name, drawings)
        save_card(card, folder, published_later=())

    files = write_folder_atomically(output_dir, write, overwrite_output_dir)
    return Path(output_dir), files


__all__ = [
    "CIFAR10_CLASSES",
    "KINDS",
    "ConversionError",
    "convert_checkpoint",
    "convert_ptb",
    "load_pickled_model",
    "original_ptb_key",
    "ptb_vocabulary",
    "cnn_config",
    "convert_cnn",
    "load_state_dict_file",
    "original_cnn_key",
]
