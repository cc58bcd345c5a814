"""NAS-Bench-201's cells and networks: the benchmark's genotype strings, the parameter counts of its extreme
networks (its published statistics, to the parameter), the cell against its definition, and the transformers
conventions (save and load, the Auto classes, remote code, pipeline)."""

import json

import pytest
import torch
from test_remote_code import load_without_darts_hub, saved_code
from transformers import AutoConfig, AutoModelForImageClassification, pipeline

from darts_hub import NasBench201Config, NasBench201ForImageClassification, NasBench201Genotype
from darts_hub.hub import code_files
from darts_hub.models.genotypes import NAS_BENCH_201_RESNET
from darts_hub.models.modeling_nas_bench_201 import NasBench201Cell


ALL_CONV_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_the_benchmarks_strings_round_trip():
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    genotype = NasBench201Genotype.from_string(text)
    assert genotype.nodes[1] == (("nor_conv_3x3", 0), ("avg_pool_3x3", 1))
    assert str(genotype) == text
    assert genotype.parameter_free_operations() == 3
    assert (
        str(NAS_BENCH_201_RESNET) == "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~0|", r"node 2 has edges from inputs \[1, 0\].*\[0, 1\]"),
        (
            "|nor_conv_3x3~0|+|sep_conv_3x3~0|none~1|",
            r"node 2's edge from 0 uses the unknown operation 'sep_conv_3x3'",
        ),
        ("|nor_conv_3x3-0|", r"'nor_conv_3x3-0' in .* is not an edge of the form op~input"),
        ("nor_conv_3x3~0", r"'nor_conv_3x3~0' in .* is not a node of the form \|op~input\|op~input\|"),
    ],
)
def test_bad_strings_are_refused_naming_the_bad_part(text, message):
    with pytest.raises(ValueError, match=message):
        NasBench201Genotype.from_string(text)


@pytest.mark.parametrize(
    "genotype, num_labels, parameters",
    [
        # NAS-Bench-201's statistics of its CIFAR-10 and CIFAR-100 networks: the smallest and the largest.
        (ALL_NONE, 10, 73_306),
        ("|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|", 10, 73_306),
        (ALL_CONV_3X3, 10, 1_531_546),
        (ALL_CONV_3X3, 100, 1_537_396),
    ],
)
def test_parameter_counts_are_the_benchmarks(genotype, num_labels, parameters):
    with torch.device("meta"):
        model = NasBench201ForImageClassification(NasBench201Config(genotype=genotype, num_labels=num_labels))
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_the_resnet_cell_is_the_input_plus_two_convolutions_and_none_edges_are_zero():
    torch.manual_seed(0)
    cell = NasBench201Cell(NAS_BENCH_201_RESNET, 4).double().eval()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    first, second = cell.ops[0], cell.ops[1]  # node 1's and node 2's convolutions (the 'none' edges build nothing)
    assert len(cell.ops) == 4  # two convolutions and two skips
    torch.testing.assert_close(cell(x), x + second(first(x)))
    empty = NasBench201Cell(NasBench201Genotype.from_string(ALL_NONE), 4)
    assert len(empty.ops) == 0 and torch.count_nonzero(empty(x.float())) == 0


def test_a_network_saves_loads_classifies_and_runs_without_darts_hub(tmp_path):
    torch.manual_seed(0)
    config = NasBench201Config(genotype=ALL_CONV_3X3, init_channels=4, cells_per_stage=1, num_labels=3)
    model = NasBench201ForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["genotype"] == ALL_CONV_3X3 and saved["model_type"] == "nas_bench_201"
    assert saved_code(tmp_path / "model") == set(code_files(NasBench201ForImageClassification))
    pixel_values = torch.randn(2, 3, 32, 32)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        expected = model(pixel_values).logits
        torch.testing.assert_close(loaded(pixel_values).logits, expected, rtol=0, atol=0)
    assert AutoConfig.from_pretrained(tmp_path / "model").get_genotype() == config.get_genotype()
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    outputs, text = load_without_darts_hub(
        "image_classifier", tmp_path / "model", {"pixel_values": pixel_values, "image": image}, tmp_path
    )
    torch.testing.assert_close(outputs["logits"], expected, rtol=0, atol=1e-5)
    from PIL import Image

    here = pipeline("image-classification", model=str(tmp_path / "model"))(
        Image.fromarray(image.permute(1, 2, 0).numpy()), top_k=3
    )
    assert [item["label"] for item in text["pipeline"]] == [item["label"] for item in here]
    # Training: the loss is the cross-entropy of the logits, and it reaches every weight.
    model.train()
    labels = torch.tensor([0, 2])
    output = model(pixel_values, labels=labels)
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, labels))
    output.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
