"""darts-export: the ONNX file onnxruntime runs gives PyTorch's logits (within `ONNX_TOLERANCE`, 1e-4), for the
image classifiers of both stems, with or without auxiliary head, NAS-Bench-201's networks and the language model;
what cannot be exported is refused before anything is written."""

import importlib.util
import json
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from helpers import tiny_supernet

from darts_hub import (
    DartsConfig,
    DartsForImageClassification,
    DartsRNNConfig,
    DartsRNNForCausalLM,
    NasBench201Config,
    NasBench201ForImageClassification,
)
from darts_hub import export as export_module
from darts_hub.commands import export as export_command
from darts_hub.export import ONNX_TOLERANCE, export_onnx


def onnx_logits(path, name, inputs):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {name: inputs.numpy()})[0])


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: DartsForImageClassification(
            DartsConfig(genotype="DARTS_V2", init_channels=8, num_cells=5, use_auxiliary_head=True, num_labels=4)
        ),
        lambda: DartsForImageClassification(
            DartsConfig(genotype="FairDARTS_A", init_channels=8, num_cells=3, stem="imagenet", image_size=64)
        ),
        lambda: NasBench201ForImageClassification(NasBench201Config(init_channels=4, cells_per_stage=1)),
    ],
    ids=["cifar-auxiliary", "imagenet-fairdarts", "nas-bench-201"],
)
def test_an_exported_image_classifier_gives_the_logits_of_pytorch_at_any_batch_size(make_model, tmp_path):
    torch.manual_seed(0)
    model = make_model()
    result = export_onnx(model, tmp_path / "model.onnx")
    assert (
        result["max_abs_difference"] <= ONNX_TOLERANCE and result["bytes"] == (tmp_path / "model.onnx").stat().st_size
    )
    size = model.config.image_size
    images = torch.randn(5, 3, size, size)
    with torch.no_grad():
        expected = model.eval()(images).logits
    torch.testing.assert_close(
        onnx_logits(tmp_path / "model.onnx", "pixel_values", images), expected, rtol=0, atol=ONNX_TOLERANCE
    )
    assert [path.name for path in tmp_path.iterdir()] == ["model.onnx"]  # no staging file left


def test_an_exported_language_model_takes_its_sequence_length(tmp_path):
    torch.manual_seed(0)
    model = DartsRNNForCausalLM(DartsRNNConfig(vocab_size=40, hidden_size=12, embedding_size=12)).eval()
    export_onnx(model, tmp_path / "lm.onnx", sequence_length=6)
    tokens = torch.randint(0, 40, (4, 6))
    with torch.no_grad():
        expected = model(tokens).logits
    torch.testing.assert_close(
        onnx_logits(tmp_path / "lm.onnx", "input_ids", tokens), expected, rtol=0, atol=ONNX_TOLERANCE
    )
    session = onnxruntime.InferenceSession(str(tmp_path / "lm.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1] == 6  # the recurrence is unrolled over 6 steps
    with pytest.raises(Exception, match="input_ids"):
        session.run(["logits"], {"input_ids": np.zeros((4, 7), dtype=np.int64)})


def run_command(monkeypatch, capsys, *arguments):
    monkeypatch.setattr(sys, "argv", ["darts-export", *map(str, arguments)])
    export_command.main()
    return json.loads(capsys.readouterr().out)


def test_the_command_exports_into_the_model_folder_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    model = NasBench201ForImageClassification(NasBench201Config(init_channels=4, cells_per_stage=1, num_labels=3))
    model.save_pretrained(tmp_path / "model")
    result = run_command(monkeypatch, capsys, "--model_name_or_path", tmp_path / "model", "--format", "onnx")
    assert result["file"] == str(tmp_path / "model" / "model.onnx") and result["max_abs_difference"] <= ONNX_TOLERANCE
    written = (tmp_path / "model" / "model.onnx").read_bytes()
    with pytest.raises(FileExistsError, match="model.onnx exists; pass --overwrite"):
        run_command(monkeypatch, capsys, "--model_name_or_path", tmp_path / "model")
    assert (tmp_path / "model" / "model.onnx").read_bytes() == written


def test_what_cannot_be_exported_is_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    tiny_supernet().save_pretrained(tmp_path / "supernet")
    with pytest.raises(ValueError, match="holds a DartsSearchConfig .* train its genotype first"):
        run_command(monkeypatch, capsys, "--model_name_or_path", tmp_path / "supernet")
    with pytest.raises(ValueError, match="--format must be one of \\['onnx'\\]"):
        run_command(monkeypatch, capsys, "--model_name_or_path", tmp_path / "supernet", "--format", "tflite")
    model = DartsForImageClassification(DartsConfig(init_channels=8, num_cells=3, use_auxiliary_head=False))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "onnxscript" else real_find_spec(name)
    )
    with pytest.raises(ImportError, match="needs onnxscript: pip install 'darts-hub\\[onnx\\]'"):
        export_onnx(model, tmp_path / "model.onnx")
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    # Logits onnxruntime does not reproduce (a tolerance no export meets): an error, and no file, not even a partial.
    monkeypatch.setattr(export_module, "ONNX_TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="onnxruntime's logits differ from PyTorch's .* the export was not written"):
        export_onnx(model, tmp_path / "model.onnx")
    assert not any(tmp_path.glob("*.onnx*")) and not any(tmp_path.glob(".model.onnx*"))
