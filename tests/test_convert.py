import importlib
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch
from helpers import RunsCode
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoModelForImageClassification, AutoTokenizer

from darts_hub import count_parameters
from darts_hub.convert import (
    ConversionError,
    convert_checkpoint,
    convert_cnn,
    convert_ptb,
    load_pickled_model,
    original_cnn_key,
    original_ptb_key,
)


TESTS = Path(__file__).parent
KEY_LISTS = TESTS / "fixtures" / "original_checkpoint_keys"


def synthetic_state_dict(key_list: str, with_num_batches_tracked: bool) -> dict[str, torch.Tensor]:
    """A state dict in the original layout (every key and shape of the released file), with random values."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for line in (KEY_LISTS / key_list).read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")
        if key.endswith("num_batches_tracked"):
            if with_num_batches_tracked:
                state[key] = torch.tensor(7, dtype=torch.int64)
            continue
        size = [int(d) for d in shape.strip("[]").split(",") if d.strip()]
        state[key] = torch.randn(size, generator=generator)
    return state


def save(state, path: Path, legacy: bool) -> Path:
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize(
    "kind, key_list", [("cifar10", "cifar10_darts_v2.txt"), ("imagenet", "imagenet_darts_v2.txt")]
)
@pytest.mark.parametrize("legacy, with_num_batches_tracked", [(True, False), (False, True)])
def test_cnn_checkpoints_convert_tensor_by_tensor(tmp_path, kind, key_list, legacy, with_num_batches_tracked):
    original = synthetic_state_dict(key_list, with_num_batches_tracked)
    checkpoint = save(original, tmp_path / f"{kind}_model.pt", legacy)
    folder, _ = convert_checkpoint(checkpoint, kind, tmp_path / "converted")
    model = AutoModelForImageClassification.from_pretrained(folder)
    converted = model.state_dict()
    for key, tensor in converted.items():
        name = original_cnn_key(key)
        if name in original:
            assert torch.equal(tensor, original[name]), key
        else:
            assert key.endswith("num_batches_tracked") and not with_num_batches_tracked
    assert len(original) == sum(original_cnn_key(k) in original for k in converted)
    assert (folder / "preprocessor_config.json").is_file() and (folder / "README.md").is_file()
    assert (folder / "normal.png").is_file()
    expected = {"cifar10": 3_349_342, "imagenet": 4_718_752}[kind]
    assert count_parameters(model) == expected
    if kind == "cifar10":
        assert model.config.id2label[0] == "airplane"


def test_leftover_missing_and_misshaped_keys_are_named(tmp_path):
    original = synthetic_state_dict("cifar10_darts_v2.txt", False)
    original["extra.weight"] = torch.zeros(3)
    del original["classifier.bias"]
    original["cells.0._ops.0.op.1.weight"] = torch.zeros(36, 1, 5, 5)
    checkpoint = save(original, tmp_path / "broken.pt", legacy=False)
    with pytest.raises(ConversionError) as error:
        convert_cnn(checkpoint, "cifar10")
    message = str(error.value)
    assert "1 key(s) shape mismatch" in message
    assert "cells.0._ops.0.op.1.weight [cell 0 (normal), edge 0: sep_conv_3x3 from input 0]" in message
    assert "(36, 1, 5, 5), model (36, 1, 3, 3)" in message
    assert "1 key(s) missing from the checkpoint:\n  classifier.bias" in message
    assert "1 key(s) in the checkpoint but not in the model:\n  extra.weight" in message


def test_wrong_genotype_is_reported_by_cell_and_operation(tmp_path):
    checkpoint = save(synthetic_state_dict("cifar10_darts_v2.txt", False), tmp_path / "v2.pt", legacy=True)
    with pytest.raises(ConversionError, match=r"check --kind and --genotype") as error:
        convert_cnn(checkpoint, "cifar10", genotype="DARTS_V1")
    assert "[cell 0 (normal), edge 2: skip_connect from input 0]" in str(error.value)


def test_a_model_object_is_not_a_state_dict(tmp_path):
    path = tmp_path / "object.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(ConversionError, match="not a plain state dict"):
        convert_cnn(path, "cifar10")


@pytest.fixture
def original_ptb_pickles(tmp_path):
    """Whole-model pickles written by stand-ins named like the original classes (model.RNNModel, model.DARTSCell,
    utils.LockedDropout, genotypes.Genotype), in zip and legacy serialization."""
    sys.path.insert(0, str(TESTS / "original_stand_ins"))
    try:
        model_module = importlib.import_module("model")
        genotypes_module = importlib.import_module("genotypes")
        torch.manual_seed(0)
        original = model_module.RNNModel(9, 6, genotypes_module.DARTS_V2)
        paths = [tmp_path / "ptb_zip.pt", tmp_path / "ptb_legacy.pt"]
        torch.save(original, paths[0])
        torch.save(original, paths[1], _use_new_zipfile_serialization=False)
    finally:
        sys.path.remove(str(TESTS / "original_stand_ins"))
        for name in ("model", "utils", "genotypes"):
            sys.modules.pop(name, None)
    state = {key: tensor.detach().clone() for key, tensor in original.state_dict().items()}
    return paths, state


def write_ptb_text(folder: Path) -> Path:
    # 8 words in the original order + <eos> = 9 rows, the stand-in model's vocabulary size.
    folder.mkdir()
    (folder / "train.txt").write_text("a b c\nd <unk> a\n")
    (folder / "valid.txt").write_text("e f\n")
    (folder / "test.txt").write_text("g a\n")
    return folder


def test_ptb_pickle_converts_without_running_it(tmp_path, original_ptb_pickles):
    paths, original = original_ptb_pickles
    vocab = write_ptb_text(tmp_path / "penn")
    # The folder of the text files, or its training file (valid and test found beside it).
    for index, (path, vocab_from) in enumerate(zip(paths, (vocab, vocab / "train.txt"))):
        folder, _ = convert_checkpoint(path, "ptb", tmp_path / f"out{index}", vocab_from=vocab_from)
        model = AutoModelForCausalLM.from_pretrained(folder)
        assert model.config.get_genotype().recurrent[0] == ("sigmoid", 0)
        assert model.decoder.weight is model.model.encoder.weight
        for key, tensor in model.state_dict().items():
            assert torch.equal(tensor, original[original_ptb_key(key)]), key
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert tokenizer.convert_ids_to_tokens([0, 3, 4]) == ["a", "<eos>", "d"]
        assert model.config.eos_token_id == 3
        assert ModelCard.load(folder / "README.md").data.eval_results[0].metric_value == 55.68


def test_a_state_dict_converted_as_ptb_is_refused_by_name(tmp_path):
    checkpoint = save(synthetic_state_dict("cifar10_darts_v2.txt", False), tmp_path / "cifar10_model.pt", legacy=False)
    with pytest.raises(
        ConversionError, match=r"cifar10_model.pt holds a dict, not the original recurrent model object"
    ):
        convert_ptb(checkpoint)


def test_ptb_vocabulary_and_genotype_must_fit(tmp_path, original_ptb_pickles):
    paths, _ = original_ptb_pickles
    small = tmp_path / "small"
    small.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        (small / name).write_text("a b\n")
    with pytest.raises(ConversionError, match="vocabulary of 4 words but the embedding has 9 rows"):
        convert_ptb(paths[0], vocab_from=small)
    with pytest.raises(ConversionError, match="not DARTS_V1"):
        convert_ptb(paths[0], genotype="DARTS_V1")
    model, tokenizer = convert_ptb(paths[0])
    assert tokenizer is None and model.config.vocab_size == 9


@pytest.mark.parametrize("call", [os.system, eval])
def test_pickles_with_other_globals_are_refused_before_anything_runs(tmp_path, call):
    marker = tmp_path / "ran"
    payload = f"touch {marker}" if call is os.system else f"open({str(marker)!r}, 'w')"
    path = tmp_path / "evil.pt"
    torch.save({"model": RunsCode(call, payload)}, path)
    with pytest.raises(
        pickle.UnpicklingError, match=r"evil.pt: refusing to load the global (posix.system|__builtin__.eval)"
    ):
        load_pickled_model(path)
    with pytest.raises(pickle.UnpicklingError):
        convert_ptb(path)
    assert not marker.exists()


# The paper's reported figures (shared/reference/REFERENCE.md), which the cards of the released cells must carry.
REPORTED = {
    "cifar10": {"Test error (%, reported by the paper)": 2.63, "Top-1 accuracy (%, reported by the paper)": 97.37},
    "imagenet": {"Top-1 error (%, reported by the paper)": 26.7, "Top-5 error (%, reported by the paper)": 8.7},
    "ptb": {"Test perplexity (reported by the paper)": 55.68},
}
PARAMETERS = {"cifar10": "3,349,342", "imagenet": "4,718,752"}


def converted(kind: str, tmp_path: Path, original_ptb_pickles=None, genotype=None) -> Path:
    if kind == "ptb":
        checkpoint = original_ptb_pickles[0][0]
    else:
        state = synthetic_state_dict(f"{kind}_darts_v2.txt", False)
        checkpoint = save(state, tmp_path / f"{kind}_model.pt", legacy=True)
    folder, files = convert_checkpoint(checkpoint, kind, tmp_path / f"{kind}-converted", genotype=genotype)
    assert sorted(files) == sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return folder


@pytest.mark.parametrize("kind", list(REPORTED))
def test_cards_are_written_from_what_was_converted(kind, tmp_path, original_ptb_pickles):
    folder = converted(kind, tmp_path, original_ptb_pickles)
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "darts-hub" and card.data.license == "apache-2.0"
    metrics = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert metrics == REPORTED[kind]
    model_class = AutoModelForCausalLM if kind == "ptb" else AutoModelForImageClassification
    parameters = f"{count_parameters(model_class.from_pretrained(folder)):,}"
    assert parameters == PARAMETERS.get(kind, parameters) and f"{parameters} parameters" in card.text
    assert "@inproceedings{liu2019darts" in card.text
    for name in (p.name for p in folder.iterdir()):
        assert f"- `{name}`" in card.text  # the card lists the files it comes with
    for picture in ("normal.png", "recurrent.png"):
        if f"]({picture})" in card.text:
            assert (folder / picture).is_file()


def test_a_card_of_other_cells_claims_no_paper_result():
    from darts_hub.hub import converted_model_card
    from darts_hub.models import DartsConfig

    other = DartsConfig(genotype="DARTS_V1", init_channels=36, num_cells=20)
    card = converted_model_card("cifar10", other, 123, "cifar10_model.pt", [])
    assert not card.data.eval_results and "the paper's results do not apply" in card.text
    assert "123 parameters" in card.text and card.text.startswith("\n# DARTS network converted from cifar10_model.pt")


def test_convert_script(tmp_path, run_script):
    checkpoint = save(synthetic_state_dict("cifar10_darts_v2.txt", False), tmp_path / "cifar10_model.pt", legacy=True)
    out = run_script(
        "convert_original_checkpoint",
        "--checkpoint",
        checkpoint,
        "--kind",
        "cifar10",
        "--output_dir",
        tmp_path / "converted",
    )
    assert out.strip() == str(tmp_path / "converted")
    assert (tmp_path / "converted" / "model.safetensors").is_file()


def test_a_conversion_with_export_holds_a_checked_model_onnx_listed_in_files_and_card(tmp_path):
    state = synthetic_state_dict("cifar10_darts_v2.txt", False)
    for key, value in state.items():  # weights of a trained network's scale, so that 20 cells stay finite
        if key.endswith("running_var"):
            state[key] = value.abs() + 1
        elif value.dim() > 1:
            state[key] = value / value[0].numel() ** 0.5
    checkpoint = save(state, tmp_path / "cifar10_model.pt", legacy=True)
    folder, files = convert_checkpoint(checkpoint, "cifar10", tmp_path / "converted", export="onnx")
    assert "model.onnx" in files and "- `model.onnx`" in (folder / "README.md").read_text()
    with pytest.raises(ValueError, match=r"--export must be one of \['onnx'\]"):
        convert_checkpoint(checkpoint, "cifar10", tmp_path / "other", export="tflite")
    assert not (tmp_path / "other").exists()


def test_ptb_vocabulary_needs_all_three_texts(tmp_path):
    from darts_hub.convert import ptb_vocabulary

    (tmp_path / "ptb.train.txt").write_text("a b\n")
    (tmp_path / "ptb.valid.txt").write_text("c\n")
    with pytest.raises(FileNotFoundError, match="No PTB test text"):
        ptb_vocabulary(tmp_path / "ptb.train.txt")
    (tmp_path / "ptb.test.txt").write_text("d\n")
    assert list(ptb_vocabulary(tmp_path)) == ["a", "b", "<eos>", "c", "d", "<unk>"]
