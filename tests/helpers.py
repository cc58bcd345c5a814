"""Helpers shared by the tests (plain functions; fixtures are in conftest.py)."""

import copy
import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from darts_hub.kernels import kernelize
from darts_hub.models.modeling_darts_search import DartsSearchConfig, DartsSearchModel
from darts_hub.training.arguments import LanguageModelTrainArguments, SearchArguments, TrainArguments, fill_recipe


TESTS = Path(__file__).resolve().parent


needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs the graphviz `dot` binary")


def assert_same_gradients_and_buffers(model: torch.nn.Module, reference: torch.nn.Module, buffer_tolerance=1e-12):
    """After the same backward pass: every parameter's gradient (float64, to 1e-9) and every buffer (BatchNorm's
    running statistics) of `model` as `reference`'s, parameters and buffers in the same order."""
    for (name, parameter), other in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, other.grad, rtol=1e-9, atol=1e-12, msg=name)
    for (name, buffer), other in zip(model.named_buffers(), reference.buffers(), strict=True):
        torch.testing.assert_close(buffer, other, rtol=buffer_tolerance, atol=buffer_tolerance, msg=name)


def kernelized(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of `module` with the fast paths swapped in: the same parameters and buffers, in the same order."""
    return kernelize(copy.deepcopy(module))


def backward_nodes(output: torch.Tensor) -> set[str]:
    """The names of the autograd nodes behind `output` (which shows which implementation computed it)."""
    names, pending, seen = set(), [output.grad_fn], set()
    while pending:
        node = pending.pop()
        if node is not None and node not in seen:
            seen.add(node)
            names.add(node.name())
            pending += [following for following, _ in node.next_functions]
    return names


def folder_hash(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def tiny_supernet(**kwargs):
    settings = dict(init_channels=4, num_cells=3, num_labels=3, image_size=8, num_nodes=2, multiplier=2)
    return DartsSearchModel(DartsSearchConfig(**{**settings, **kwargs}))


def training_arguments(**settings) -> TrainArguments:
    """Training settings as the command makes them: parsed, then the recipe filled in."""
    return fill_recipe(TrainArguments(**settings))


def language_model_arguments(**settings) -> LanguageModelTrainArguments:
    """Language model training settings as the command makes them: parsed, then the recipe filled in."""
    return fill_recipe(LanguageModelTrainArguments(**settings))


def tiny_search_args(output_dir, **kwargs):
    settings = dict(
        output_dir=str(output_dir),
        max_train_samples=256,
        epochs=2,
        batch_size=32,
        init_channels=4,
        num_cells=3,
        num_nodes=2,
        multiplier=2,
        train_init_channels=8,
        train_num_cells=3,
        seed=0,
    )
    return SearchArguments(**{**settings, **kwargs})


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


class RunsCode:
    """Pickles as a call of `call(argument)`: what an attacker puts in a checkpoint."""

    def __init__(self, call, argument):
        self.call, self.argument = call, argument

    def __reduce__(self):
        return self.call, (self.argument,)
