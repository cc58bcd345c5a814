"""`kernelize`, the one door to the fast paths: the shipped model files hold none of them, kernelizing changes no
parameter, buffer, saved file or class a checkpoint names, and a machine without a compiler gets one warning."""

import ast
import json
import logging
from pathlib import Path

import pytest
import torch
from helpers import folder_hash, kernelized

import darts_hub.models
from darts_hub import DartsConfig, DartsForImageClassification, DartsRNNConfig, DartsRNNForCausalLM
from darts_hub.kernels import FAST_CLASSES, build, is_depthwise, kernelize
from darts_hub.models.modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel
from darts_hub.models.modeling_darts_search import DartsSearchConfig, DartsSearchModel


MODELS = {
    "classifier": lambda: DartsForImageClassification(DartsConfig(genotype="DARTS_V2", init_channels=8, num_cells=5)),
    "imagenet": lambda: DartsForImageClassification(
        DartsConfig(genotype="DARTS_V2", init_channels=8, num_cells=5, stem="imagenet", image_size=64)
    ),
    "supernet": lambda: DartsSearchModel(DartsSearchConfig(init_channels=4, num_cells=3, image_size=8)),
    "pc-darts": lambda: DartsSearchModel(
        DartsSearchConfig(init_channels=8, num_cells=3, image_size=8, partial_channels=4)
    ),
    "language model": lambda: DartsRNNForCausalLM(DartsRNNConfig(vocab_size=20, hidden_size=8)),
    "recurrent supernet": lambda: DartsRNNSearchModel(DartsRNNSearchConfig(vocab_size=20, hidden_size=8)),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_model_files_hold_no_kernel_or_written_out_backward_pass():
    folder = Path(darts_hub.models.__file__).parent
    assert {path.suffix for path in folder.iterdir() if path.is_file()} == {".py"}  # no C++ beside them
    for path in folder.glob("*.py"):
        imports = imported_modules(path)
        assert not any("kernels" in name for name in imports), path.name
        assert "torch.utils.cpp_extension" not in imports, path.name
        assert "autograd.Function" not in path.read_text(), path.name


@pytest.mark.parametrize("name", list(MODELS))
def test_every_plain_layer_gets_its_fast_form_and_the_state_is_untouched(name):
    torch.manual_seed(0)
    plain = MODELS[name]()
    model = kernelized(plain)
    assert type(model) is type(plain)  # the class a saved config names
    for module in model.modules():
        assert type(module) not in FAST_CLASSES and not is_depthwise(module), type(module)
    assert list(model.state_dict()) == list(plain.state_dict())
    for (key, ours), theirs in zip(model.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(ours, theirs), key
    again = [type(module) for module in kernelize(model).modules()]
    assert again == [type(module) for module in model.modules()]  # a second call changes nothing


def test_a_kernelized_model_saves_the_files_of_the_plain_one(tmp_path):
    torch.manual_seed(0)
    plain = MODELS["classifier"]().eval()
    plain.save_pretrained(tmp_path / "plain")
    model = kernelized(plain)
    model(torch.randn(2, 3, 32, 32))  # a forward pass changes nothing saved in evaluation
    model.save_pretrained(tmp_path / "kernelized")
    assert folder_hash(tmp_path / "kernelized") == folder_hash(tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["architectures"] == [
        "DartsForImageClassification"
    ]
    loaded = DartsForImageClassification.from_pretrained(tmp_path / "kernelized")
    assert not any(type(module).__module__.startswith("darts_hub.kernels") for module in loaded.modules())


def test_without_a_compiler_one_warning_and_the_plain_results(without_a_compiler, caplog):
    torch.manual_seed(0)
    plain = MODELS["supernet"]().double().to(memory_format=torch.channels_last)
    with caplog.at_level(logging.INFO, logger="darts_hub.kernels.build"):
        model = kernelized(plain)
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "could not be built (RuntimeError: no C++ compiler here)" in warnings[0].message
    assert len(caplog.records) == len(build.KERNELS)  # the others at the info level
    pixels = torch.randn(2, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([0, 1])
    torch.testing.assert_close(model(pixels, labels=labels).loss, plain(pixels, labels=labels).loss)


def test_kernels_not_built_yet_are_compiled_behind_a_progress_bar(monkeypatch, capsys):
    monkeypatch.setattr(build, "_is_built", lambda name: name == "pooling")
    assert build.build_kernels() == dict.fromkeys(build.KERNELS, True)
    progress = capsys.readouterr().err
    assert "Compiling darts-hub's CPU kernels (once per machine" in progress and "3/3" in progress
    monkeypatch.setattr(build, "_is_built", lambda name: True)
    build.build_kernels()
    assert capsys.readouterr().err == ""  # nothing to say once they are built
