"""DartsConfig and the DARTS image classifier: exact sizes of the paper's networks, state-dict layout of the
released checkpoints, both stems, auxiliary heads, Auto classes and the pipeline."""

import math

import numpy as np
import pytest
import torch
from helpers import TESTS, kernelized
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

import darts_hub  # noqa: F401  (registers the Auto classes)
from darts_hub import DartsConfig, DartsForImageClassification, DartsModel, count_mult_adds, count_parameters
from darts_hub.models.genotypes import DARTS_V2, get_genotype
from darts_hub.models.ops import DropPath


KEY_LISTS = TESTS / "fixtures" / "original_checkpoint_keys"


def tiny_config(**kwargs):
    defaults = dict(init_channels=8, num_cells=5, num_labels=4, id2label={i: f"class_{i}" for i in range(4)})
    return DartsConfig(**{**defaults, **kwargs})


def read_key_list(name):
    shapes = {}
    for line in (KEY_LISTS / name).read_text().splitlines():
        if not line.startswith("#"):
            key, shape, _ = line.split("\t")
            shapes[key] = [int(d) for d in shape.strip("[]").split(",") if d.strip()]
    return shapes


CIFAR = dict(init_channels=36, num_cells=20, num_labels=10)


IMAGENET = dict(stem="imagenet", init_channels=48, num_cells=14, num_labels=1000)


@pytest.mark.parametrize(
    "sizes, parameters, with_auxiliary, mult_adds",
    [(CIFAR, 3_349_342, 3_825_768, 528_359_040), (IMAGENET, 4_718_752, 5_979_528, 529_911_552)],
    ids=["cifar10", "imagenet"],
)
def test_darts_v2_counts_match_the_paper_networks(sizes, parameters, with_auxiliary, mult_adds):
    model = DartsForImageClassification(DartsConfig(genotype="DARTS_V2", **sizes))
    assert count_parameters(model) == parameters
    assert count_parameters(model, include_auxiliary=True) == with_auxiliary
    assert count_mult_adds(model) == mult_adds


@pytest.mark.parametrize(
    "sizes, key_list",
    [(CIFAR, "cifar10_darts_v2.txt"), (IMAGENET, "imagenet_darts_v2.txt")],
    ids=["cifar10", "imagenet"],
)
def test_state_dict_follows_the_original_layout(sizes, key_list):
    """Every key of the released checkpoints exists with the same shape, in the same order, up to our prefix."""
    original = read_key_list(key_list)
    model = DartsForImageClassification(DartsConfig(genotype="DARTS_V2", **sizes))
    ours = {
        key.removeprefix("darts.").replace(".ops.", "._ops."): list(tensor.shape)
        for key, tensor in model.state_dict().items()
    }
    assert list(ours) == list(original)
    assert ours == original


@pytest.mark.parametrize("name", ["NASNet", "AmoebaNet", "DARTS_V1"])
def test_zoo_cells_build_run_and_train(name):
    model = DartsForImageClassification(tiny_config(genotype=name, use_auxiliary_head=False))
    pixels = torch.randn(2, 3, 16, 16)
    labels = torch.tensor([0, 3])
    outputs = model(pixels, labels=labels)
    assert outputs.logits.shape == (2, 4)
    outputs.loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), parameter_name
    # NASNet concatenates 5 nodes, AmoebaNet 3: the channel bookkeeping follows the concat.
    genotype = get_genotype(name)
    assert model.darts.cells[0].out_channels == 8 * len(genotype.normal_concat)


def test_imagenet_stem_and_auxiliary_head_shapes():
    config = tiny_config(stem="imagenet", num_cells=3)
    model = DartsForImageClassification(config).train()
    outputs = model(torch.randn(2, 3, 224, 224), output_hidden_states=True)
    assert outputs.aux_logits.shape == (2, 4)
    # stem: 1/8 of the resolution; after the two reductions 1/32, i.e. 7x7 into the auxiliary head.
    assert outputs.hidden_states[0].shape[-1] == 28
    assert outputs.hidden_states[-1].shape[-1] == 7
    # The ImageNet auxiliary head has no BatchNorm after its second convolution (as the original).
    assert not isinstance(model.auxiliary_head.features[6], nn.BatchNorm2d)
    assert isinstance(DartsForImageClassification(tiny_config()).auxiliary_head.features[6], nn.BatchNorm2d)


def test_auxiliary_loss_only_in_training_and_weighted():
    torch.manual_seed(0)
    model = DartsForImageClassification(tiny_config(auxiliary_weight=0.4))
    pixels, labels = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2])

    model.train()
    torch.manual_seed(1)
    outputs = model(pixels, labels=labels)
    expected = nn.functional.cross_entropy(outputs.logits, labels) + 0.4 * nn.functional.cross_entropy(
        outputs.aux_logits, labels
    )
    torch.testing.assert_close(outputs.loss, expected)

    model.eval()
    outputs = model(pixels, labels=labels)
    assert outputs.aux_logits is None
    torch.testing.assert_close(outputs.loss, nn.functional.cross_entropy(outputs.logits, labels))


def test_label_smoothing_changes_the_loss_as_cross_entropy_does():
    model = DartsForImageClassification(tiny_config(label_smoothing=0.1)).eval()
    pixels, labels = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2])
    outputs = model(pixels, labels=labels)
    smoothed = nn.functional.cross_entropy(outputs.logits, labels, label_smoothing=0.1)
    torch.testing.assert_close(outputs.loss, smoothed)
    assert not torch.isclose(outputs.loss, nn.functional.cross_entropy(outputs.logits, labels))


def test_auxiliary_head_reports_unsupported_feature_sizes():
    model = DartsForImageClassification(tiny_config()).train()
    with pytest.raises(ValueError, match="use_auxiliary_head=False"):
        model(torch.randn(2, 3, 64, 64))


def test_drop_path_skips_identities_and_only_acts_in_training():
    strided_skip = {
        "normal": DARTS_V2.to_dict()["normal"],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [["skip_connect", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["sep_conv_3x3", 1]],
        "reduce_concat": [2, 3],
    }
    model = DartsForImageClassification(tiny_config(genotype=strided_skip, drop_path_prob=0.3))
    normal_cell = model.darts.cells[0]
    # DARTS_V2 normal cell: edges 5 and 6 are skip_connect (identity), all others droppable.
    assert normal_cell.droppable == (True, True, True, True, True, False, False, True)
    # A strided skip_connect is a FactorizedReduce and is dropped; an unstrided one is an identity and is not.
    reduction_cell = model.darts.cells[model.config.reduction_cells[0]]
    assert reduction_cell.droppable == (True, True, False, True)

    pixels = torch.randn(4, 3, 32, 32)
    model.eval()
    reference = model(pixels).logits
    model.set_drop_path_prob(0.7)
    assert {m.drop_prob for m in model.modules() if isinstance(m, DropPath)} == {0.7}
    torch.testing.assert_close(model(pixels).logits, reference)  # no drop-path at inference

    model.train()
    model.set_drop_path_prob(0.0)
    undropped = model(pixels).logits
    model.set_drop_path_prob(0.7)
    assert not torch.allclose(model(pixels).logits, undropped)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_drop_path_module(dtype):
    drop = DropPath(0.5)
    x = torch.ones(4000, 3, 2, 2, dtype=dtype)
    torch.testing.assert_close(drop.eval()(x), x)
    y = drop.train()(x)
    assert y.dtype == dtype
    per_sample = y.flatten(1)
    kept = per_sample[:, 0] != 0
    # A whole sample is either dropped or scaled by 1 / keep_prob.
    assert torch.all(per_sample[kept] == 2) and torch.all(per_sample[~kept] == 0)
    assert 0.45 < kept.float().mean().item() < 0.55


def test_weights_use_pytorch_default_initialisation():
    """transformers' generic init would give convolutions std 0.02; PyTorch's default (kaiming-uniform, a=sqrt(5))
    is uniform in +-1/sqrt(fan_in)."""
    model = DartsForImageClassification(tiny_config())
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            assert module.weight.abs().max() <= bound + 1e-6, name
            if module.weight.numel() >= 2000:
                torch.testing.assert_close(module.weight.std().item(), bound / math.sqrt(3), rtol=0.1, atol=0)
            if module.bias is not None:
                assert module.bias.abs().max() <= bound and module.bias.abs().max() > 0, name
        elif isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
            assert torch.all(module.running_mean == 0) and torch.all(module.running_var == 1), name


def test_save_and_load_through_the_auto_classes(tmp_path):
    model = DartsForImageClassification(tiny_config(genotype="NASNet", use_auxiliary_head=False)).eval()
    # Non-trivial BatchNorm statistics, so that buffers must round-trip too.
    model.train()
    model(torch.randn(4, 3, 32, 32))
    model.eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "preprocessor_config.json").is_file()

    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, DartsConfig)
    assert config.get_genotype() == get_genotype("NASNet")

    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, DartsForImageClassification)
    pixels = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(pixels).logits, model(pixels).logits, atol=1e-5, rtol=1e-5)

    base = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(base, DartsModel)
    torch.testing.assert_close(base(pixels).pooler_output, model.darts(pixels).pooler_output, atol=1e-5, rtol=1e-5)


def test_config_accepts_zoo_names_genotypes_and_json():
    assert DartsConfig().get_genotype() == DARTS_V2
    assert DartsConfig(genotype=DARTS_V2).genotype == DARTS_V2.to_dict()
    assert DartsConfig(genotype=DARTS_V2.to_dict()).get_genotype() == DARTS_V2
    assert DartsConfig.from_dict(DartsConfig(genotype="AmoebaNet").to_dict()).get_genotype() == get_genotype(
        "AmoebaNet"
    )


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"normal\[1\].*unknown operation"):
        DartsConfig(
            genotype={
                "normal": [["sep_conv_3x3", 0], ["conv_9x9", 1]],
                "normal_concat": [2],
                "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]],
                "reduce_concat": [2],
            }
        )
    with pytest.raises(KeyError, match="DARTS_V2"):
        DartsConfig(genotype="DARTS_V9")
    with pytest.raises(ValueError, match="stem must be one of"):
        DartsConfig(stem="mnist")
    with pytest.raises(ValueError, match="init_channels must be even"):
        DartsConfig(init_channels=15)
    with pytest.raises(ValueError, match="one value per input channel"):
        DartsConfig(num_channels=1, image_mean=[0.5, 0.5, 0.5])


@pytest.mark.parametrize("stem, size", [("cifar", 32), ("imagenet", 224)])
def test_pipeline_classifies_a_pil_image_from_a_saved_folder(tmp_path, stem, size):
    config = tiny_config(stem=stem, num_cells=3, use_auxiliary_head=False)
    DartsForImageClassification(config).save_pretrained(tmp_path)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 260, 3), dtype=np.uint8))
    assert processor(image, return_tensors="pt").pixel_values.shape == (1, 3, size, size)

    classifier = pipeline("image-classification", model=str(tmp_path))
    predictions = classifier(image, top_k=4)
    assert sorted(p["label"] for p in predictions) == [f"class_{i}" for i in range(4)]
    assert math.isclose(sum(p["score"] for p in predictions), 1.0, rel_tol=1e-4)


def test_cifar_processor_matches_to_tensor_and_normalize(tmp_path):
    config = tiny_config()
    DartsForImageClassification(config).save_pretrained(tmp_path)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    pixels = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    expected = (
        torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 - torch.tensor(config.image_mean)[:, None, None]
    ) / torch.tensor(config.image_std)[:, None, None]
    actual = processor(Image.fromarray(pixels), return_tensors="pt").pixel_values[0]
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_hidden_states_and_tuple_outputs():
    model = DartsForImageClassification(tiny_config(use_auxiliary_head=False)).eval()
    pixels = torch.randn(1, 3, 32, 32)
    outputs = model(pixels, output_hidden_states=True)
    assert len(outputs.hidden_states) == 1 + model.config.num_cells
    logits, hidden_states = model(pixels, output_hidden_states=True, return_dict=False)
    torch.testing.assert_close(logits, outputs.logits)


def cell_by_cell(model: DartsModel, pixels: torch.Tensor) -> list[torch.Tensor]:
    """The network's cell outputs computed the plain way: each cell on the raw outputs of the two before it."""
    if model.config.stem == "cifar":
        s0 = s1 = model.stem(pixels)
    else:
        s0 = model.stem0(pixels)
        s1 = model.stem1(s0)
    outputs = []
    for cell in model.cells:
        s0, s1 = s1, cell(s0, s1)
        outputs.append(s1)
    return outputs


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("stem, size", [("cifar", 32), ("imagenet", 64)])
def test_kernelized_network_equals_its_cells_applied_one_after_the_other(stem, size, training):
    # The kernelized network preprocesses each cell output for the next two cells as soon as it is made and
    # rectifies it in place where nothing returns it: the same outputs, gradients and running statistics as the plain
    # composition.
    config = tiny_config(stem=stem, drop_path_prob=0.3, use_auxiliary_head=False)
    torch.manual_seed(0)
    reference = DartsModel(config).double().train(training)
    model = kernelized(reference)
    assert "forward" in vars(model) and "forward" not in vars(reference)
    pixels = torch.randn(3, 3, size, size, dtype=torch.float64)
    for output_hidden_states in (False, True):
        torch.manual_seed(1)
        outputs = model(pixels, output_hidden_states=output_hidden_states)
        torch.manual_seed(1)
        expected = cell_by_cell(reference, pixels)
        torch.testing.assert_close(outputs.last_hidden_state, expected[-1], rtol=0, atol=1e-12)
        auxiliary = expected[config.auxiliary_cell]
        torch.testing.assert_close(outputs.auxiliary_hidden_state, auxiliary, rtol=0, atol=1e-12)
        if output_hidden_states:
            assert len(outputs.hidden_states) == len(expected) + 1
            for state, cell_output in zip(outputs.hidden_states[1:], expected):
                torch.testing.assert_close(state, cell_output, rtol=0, atol=1e-12)
        if training:
            outputs.last_hidden_state.square().sum().backward()
            expected[-1].square().sum().backward()
            for (name, parameter), same in zip(model.named_parameters(), reference.parameters()):
                torch.testing.assert_close(parameter.grad, same.grad, rtol=0, atol=1e-10, msg=name)
                parameter.grad = same.grad = None
    for buffer, same in zip(model.buffers(), reference.buffers()):
        torch.testing.assert_close(buffer, same, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "kernelized"])
def test_cells_run_as_modules_so_that_their_hooks_fire(fast):
    model = DartsModel(tiny_config(use_auxiliary_head=False)).eval()
    model = kernelized(model) if fast else model
    seen = []
    for cell in model.cells:
        cell.register_forward_hook(lambda module, inputs, output: seen.append((module, output.shape[1])))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert seen == [(cell, cell.out_channels) for cell in model.cells]
