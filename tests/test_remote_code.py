"""A folder darts-hub writes loads where darts-hub is not installed: its config.json maps the Auto classes to the
model code saved beside it (`auto_map`), and `trust_remote_code=True` runs that code. Each test saves a folder with
darts-hub, computes outputs here, and compares them with what a subprocess computes from the folder alone, with
`darts_hub` made unimportable (tests/load_without_darts_hub.py)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import TESTS, tiny_supernet
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageClassification, pipeline

from darts_hub import DartsConfig, DartsForImageClassification, DartsRNNConfig, DartsRNNForCausalLM
from darts_hub.hub import code_files, save_search_result
from darts_hub.models import build_tokenizer


def load_without_darts_hub(kind, folder, inputs, tmp_path):
    """Outputs (tensors) and text (JSON) computed by a fresh Python process from `folder` alone."""
    save_file(inputs, tmp_path / "inputs.safetensors")
    outputs_file = tmp_path / "outputs.safetensors"
    environment = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [
            sys.executable,
            TESTS / "load_without_darts_hub.py",
            kind,
            folder,
            tmp_path / "inputs.safetensors",
            outputs_file,
        ],
        check=True,
        cwd=tmp_path,
        env=environment,
    )
    return load_file(outputs_file), json.loads((tmp_path / "outputs.safetensors.json").read_text())


def saved_code(folder):
    return {path.name for path in folder.glob("*.py")}


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_an_image_classifier_loads_and_classifies_without_darts_hub(stem, tmp_path):
    torch.manual_seed(0)
    config = DartsConfig(
        genotype="DARTS_V2",
        init_channels=8,
        num_cells=3,
        stem=stem,
        image_size=32,
        num_labels=4,
        use_auxiliary_head=False,
    )
    model = DartsForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["auto_map"] == {
        "AutoConfig": "configuration_darts.DartsConfig",
        "AutoModelForImageClassification": "modeling_darts.DartsForImageClassification",
    }
    assert (
        saved_code(tmp_path / "model")
        == set(code_files(DartsForImageClassification))
        == {"configuration_darts.py", "genotypes.py", "modeling_darts.py", "ops.py"}
    )
    pixel_values, image = torch.randn(2, 3, 32, 32), torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    outputs, text = load_without_darts_hub(
        "image_classifier", tmp_path / "model", {"pixel_values": pixel_values, "image": image}, tmp_path
    )
    with torch.no_grad():
        torch.testing.assert_close(outputs["logits"], model(pixel_values).logits, rtol=0, atol=1e-5)
    from PIL import Image

    expected = pipeline("image-classification", model=str(tmp_path / "model"))(
        Image.fromarray(image.permute(1, 2, 0).numpy()), top_k=3
    )
    assert [item["label"] for item in text["pipeline"]] == [item["label"] for item in expected]
    assert [item["score"] for item in text["pipeline"]] == pytest.approx([item["score"] for item in expected])


def test_a_search_result_loads_its_supernet_and_builds_its_network_without_darts_hub(tmp_path):
    torch.manual_seed(0)
    supernet = tiny_supernet().eval()
    save_search_result(tmp_path / "result", supernet, [], {"init_channels": 8, "num_cells": 3}, {}, "digits")
    # The derived network's config carries the network's code; the supernet's folder the supernet's.
    assert json.loads((tmp_path / "result" / "config.json").read_text())["auto_map"]["AutoModelForImageClassification"]
    assert {"modeling_darts.py", "genotypes.py", "ops.py"} <= saved_code(tmp_path / "result")
    assert "modeling_darts_search.py" in saved_code(tmp_path / "result" / "supernet")
    pixel_values = torch.randn(2, 3, 8, 8)
    outputs, text = load_without_darts_hub(
        "search_result", tmp_path / "result", {"pixel_values": pixel_values}, tmp_path
    )
    with torch.no_grad():
        torch.testing.assert_close(outputs["supernet_logits"], supernet(pixel_values).logits, rtol=0, atol=1e-5)
    assert text["genotype"] == supernet.genotype().to_dict() == text["network_genotype"]
    torch.manual_seed(0)
    network = AutoModelForImageClassification.from_config(
        DartsConfig.from_pretrained(tmp_path / "result")
    ).eval()  # the same seed and initialisation order as the subprocess: the same weights
    with torch.no_grad():
        torch.testing.assert_close(outputs["network_logits"], network(pixel_values).logits, rtol=0, atol=1e-5)


def test_a_language_model_loads_tokenizes_and_generates_without_darts_hub(tmp_path):
    lines = ["the model reads the text", "a model writes the next word of the text"]
    tokenizer = build_tokenizer([lines, [], []])
    torch.manual_seed(0)
    config = DartsRNNConfig(
        genotype="DARTS_V2",
        vocab_size=len(tokenizer),
        hidden_size=16,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = DartsRNNForCausalLM(config).eval()
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    assert json.loads((tmp_path / "lm" / "config.json").read_text())["auto_map"]["AutoModelForCausalLM"] == (
        "modeling_darts_rnn.DartsRNNForCausalLM"
    )
    input_ids = torch.randint(0, len(tokenizer), (2, 6))
    outputs, text = load_without_darts_hub("language_model", tmp_path / "lm", {"input_ids": input_ids}, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(outputs["logits"], model(input_ids).logits, rtol=0, atol=1e-5)
    prompt = tokenizer("the model", return_tensors="pt")
    assert torch.equal(outputs["generated"], model.generate(**prompt, max_new_tokens=5, do_sample=False))
    generator = pipeline("text-generation", model=str(tmp_path / "lm"))
    assert text["pipeline"] == generator("the model", max_new_tokens=5, do_sample=False)
