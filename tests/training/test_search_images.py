"""The convolutional search loop: it learns on the digits, writes its result folder, resumes exactly, runs on
several processes and on one or two cells."""

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from helpers import TESTS, flat, tiny_search_args
from transformers import AutoConfig, AutoModelForImageClassification

from darts_hub import DartsConfig, DartsForImageClassification
from darts_hub.hub import HubPushError
from darts_hub.models.genotypes import PRIMITIVES, Genotype
from darts_hub.models.modeling_darts_search import DartsSearchModel
from darts_hub.training.arguments import SearchArguments
from darts_hub.training.inputs import open_image_splits
from darts_hub.training.search_images import run_search, split_for_search


def test_search_on_the_digits_learns_and_writes_the_result_folder(tmp_path):
    supernet = run_search(tiny_search_args(tmp_path, max_train_samples=None, epochs=3))
    history = json.loads((tmp_path / "alphas_history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert history[-1]["valid_accuracy"] > 0.3  # ten classes: chance is 0.1 (the last epoch runs at the minimum rate)
    assert history[-1]["valid_accuracy"] > history[0]["valid_accuracy"]
    assert len(history[-1]["alphas_normal"]) == 5 and len(history[-1]["alphas_normal"][0]) == len(PRIMITIVES)

    genotype = Genotype.from_json((tmp_path / "genotype.json").read_text())
    assert genotype == supernet.genotype() == Genotype.from_dict(history[-1]["genotype"])
    assert history[-1]["parameter_free_normal"] == genotype.parameter_free_operations("normal")
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, DartsConfig) and config.get_genotype() == genotype
    assert (config.num_channels, config.image_size, config.num_labels, config.init_channels) == (3, 8, 10, 8)
    assert config.id2label[3] == "3"
    assert DartsForImageClassification(config)(torch.randn(2, 3, 8, 8)).logits.shape == (2, 10)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path / "supernet"), DartsSearchModel)
    card = (tmp_path / "README.md").read_text()
    assert "library_name: darts-hub" in card and json.dumps(genotype.to_dict()) in card
    from PIL import Image

    # The plots: learning curves with the alphas' entropy, and the alphas as heatmaps (one GIF frame per epoch).
    assert Image.open(tmp_path / "learning_curves.png").size[0] > 800
    assert Image.open(tmp_path / "alphas.gif").n_frames == 3 and Image.open(tmp_path / "alphas.png").size[0] > 400
    assert "![learning curves](learning_curves.png)" in card and "![alphas](alphas.gif)" in card
    if shutil.which("dot"):
        for name in ("normal.png", "reduction.png", "search_progress.gif"):
            assert (tmp_path / name).stat().st_size > 1000, name
        assert Image.open(tmp_path / "search_progress.gif").n_frames == 3
    else:  # without graphviz: the graph sources instead, and no animation
        assert (tmp_path / "normal.gv").is_file() and (tmp_path / "reduction.gv").is_file()
        assert not (tmp_path / "search_progress.gif").exists()


def test_resume_mid_epoch_gives_the_uninterrupted_result(tmp_path):
    uninterrupted = run_search(tiny_search_args(tmp_path / "full", order=2))
    # 128 weight-training images at batch 32: 4 steps per epoch; stop in the middle of the second epoch.
    run_search(tiny_search_args(tmp_path / "parts", order=2, max_steps=6, checkpointing_steps=6))
    assert (tmp_path / "parts" / "checkpoints" / "checkpoint-6").is_dir()
    resumed = run_search(tiny_search_args(tmp_path / "parts", order=2, resume_from_checkpoint="latest"))
    for ours, theirs in zip(resumed.arch_parameters(), uninterrupted.arch_parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    torch.testing.assert_close(
        flat(resumed.weight_parameters()), flat(uninterrupted.weight_parameters()), rtol=0, atol=1e-6
    )
    assert resumed.genotype() == uninterrupted.genotype()
    full = json.loads((tmp_path / "full" / "alphas_history.json").read_text())
    parts = json.loads((tmp_path / "parts" / "alphas_history.json").read_text())
    assert [r["valid_accuracy"] for r in parts] == pytest.approx([r["valid_accuracy"] for r in full])
    # Checkpoints rotate: at most two are kept.
    assert len(list((tmp_path / "parts" / "checkpoints").iterdir())) == 2


@pytest.mark.parametrize("order, relaxation", [(1, "softmax"), (2, "softmax"), (1, "gumbel")])
def test_two_processes_keep_identical_alphas(tmp_path, order, relaxation, launch_two_processes):
    settings = dict(
        output_dir=tmp_path,
        max_train_samples=128,
        epochs=1,
        batch_size=16,
        init_channels=4,
        num_cells=3,
        num_nodes=2,
        multiplier=2,
        order=order,
        relaxation=relaxation,
    )
    launch_two_processes(
        TESTS / "ddp_search.py", "cnn", *[item for k, v in settings.items() for item in (f"--{k}", v)]
    )
    ranks = [torch.load(tmp_path / f"alphas-rank{rank}.pt") for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for alpha0, alpha1 in zip(ranks[0]["alphas"], ranks[1]["alphas"]):
        assert torch.equal(alpha0, alpha1)
        assert alpha0.abs().max() > 1e-5  # they moved


def test_search_with_push_fails_before_searching_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = tiny_search_args(tmp_path, push_to_hub=True, hub_model_id="someone/cell")
    with pytest.raises(HubPushError, match="Could not create the Hub repository 'someone/cell'"):
        run_search(args)
    assert not (tmp_path / "checkpoints").exists()


def test_search_arguments_are_checked():
    with pytest.raises(ValueError, match="--order must be 1 or 2"):
        SearchArguments(order=3)
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        SearchArguments(push_to_hub=True)
    with pytest.raises(ValueError, match="--train_portion"):
        SearchArguments(train_portion=1.0)
    with pytest.raises(ValueError, match="--partial_channels must divide --init_channels"):
        SearchArguments(init_channels=16, partial_channels=3)


def test_a_search_on_streamed_images_finds_what_decoded_images_find(tmp_path):
    in_memory = run_search(tiny_search_args(tmp_path / "memory", epochs=1))
    streamed = run_search(
        tiny_search_args(tmp_path / "streamed", epochs=1, stream_images=True, dataloader_num_workers=1)
    )
    for a, b in zip(in_memory.arch_parameters(), streamed.arch_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("regulariser", [None, "auxiliary_skip"])
def test_a_search_with_activation_checkpointing_finds_what_the_plain_search_finds(tmp_path, regulariser):
    plain = run_search(tiny_search_args(tmp_path / "plain", epochs=1, regulariser=regulariser))
    checkpointed = run_search(
        tiny_search_args(tmp_path / "checkpointed", epochs=1, activation_checkpointing=True, regulariser=regulariser)
    )
    assert all(cell.gradient_checkpointing for cell in checkpointed.cells)
    for a, b in zip(plain.parameters(), checkpointed.parameters()):  # alphas and weights after the search
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("num_cells", [1, 2])
def test_searches_of_one_or_two_cells_run_in_both_orders(tmp_path, num_cells, caplog):
    """With one or two cells every cell is a reduction cell: the normal alphas get no gradient (they stay), and the
    second-order step must not fail on them ("differentiated Tensor not used in the graph")."""
    for order in (1, 2):
        with caplog.at_level(logging.WARNING, logger="darts_hub"):
            supernet = run_search(
                tiny_search_args(tmp_path / f"order{order}", order=order, num_cells=num_cells, epochs=1)
            )
        assert "every cell is a reduction cell" in caplog.text
        assert supernet.config.reduction_cells == tuple(range(num_cells))
        genotype = json.loads((tmp_path / f"order{order}" / "genotype.json").read_text())
        assert len(genotype["normal"]) == len(genotype["reduce"]) == 4  # 2 nodes x 2 edges


def test_an_image_folder_is_subsampled_and_split_with_every_class_in_both_parts(tmp_path):
    """An image folder loads class by class: "the first N images" and a cut of the list in two would leave classes
    out of the subsample and out of either part of the search (the weights would train on some classes, the alphas
    on the others)."""
    from PIL import Image

    for label in ("cat", "dog", "owl"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for index in range(8):
            Image.fromarray(np.full((8, 8, 3), index * 30, np.uint8)).save(
                tmp_path / "images" / label / f"{index}.png"
            )
    args = tiny_search_args(tmp_path / "out", train_dir=str(tmp_path / "images"), max_train_samples=12)
    data = open_image_splits(Accelerator(cpu=True), ("train",), **args.image_source).decode("train")
    assert torch.bincount(data.labels).tolist() == [4, 4, 4]
    weight_part, arch_part = split_for_search(data, train_portion=0.5, seed=args.data_seed)
    assert torch.bincount(weight_part.labels).tolist() == torch.bincount(arch_part.labels).tolist() == [2, 2, 2]
    # Together the parts are the subsample, each image once.
    both = torch.cat([weight_part.images, arch_part.images]).flatten(1)
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, data.images.flatten(1).tolist()))
    with pytest.raises(ValueError, match="12 images cannot be split with --train_portion 0.01"):
        split_for_search(data, train_portion=0.01, seed=0)


def test_the_hessian_monitor_records_the_eigenvalue_and_changes_nothing_else(tmp_path):
    plain = run_search(tiny_search_args(tmp_path / "plain", epochs=3))
    monitored = run_search(tiny_search_args(tmp_path / "monitored", epochs=3, hessian_eigenvalue_every=2))
    assert torch.equal(flat(plain.arch_parameters()), flat(monitored.arch_parameters()))
    history = json.loads((tmp_path / "monitored" / "alphas_history.json").read_text())
    # Measured every 2 epochs and after the last one.
    assert ["hessian_eigenvalue" in record for record in history] == [False, True, True]
    assert all(record["hessian_eigenvalue"] > 0 for record in history[1:])
    plain_history = json.loads((tmp_path / "plain" / "alphas_history.json").read_text())
    assert [{k: v for k, v in r.items() if k != "hessian_eigenvalue"} for r in history] == plain_history
    card = (tmp_path / "monitored" / "README.md").read_text()
    assert f"{history[1]['hessian_eigenvalue']:.4g} (epoch 2)" in card
    from PIL import Image

    widths = [Image.open(tmp_path / name / "learning_curves.png").size[0] for name in ("plain", "monitored")]
    assert widths[1] > widths[0]  # the eigenvalue's own panel


class StopsAtEpochTwoKeepingOne:
    """A rule that stops the search after its second epoch, keeping the first epoch's genotype."""

    def stop(self, history):
        from darts_hub.search.early_stopping import Stop

        return Stop(1, "test", "the test's rule") if len(history) == 2 else None


def test_a_stopped_search_writes_the_genotype_of_its_stop_epoch_and_says_why(tmp_path, monkeypatch, caplog):
    import darts_hub.training.search_images as search_images

    monkeypatch.setattr(search_images, "early_stopping_rule", lambda *args: StopsAtEpochTwoKeepingOne())
    with caplog.at_level(logging.WARNING):
        run_search(tiny_search_args(tmp_path, epochs=4, early_stopping=["skip_connections", "9"]))
    history = json.loads((tmp_path / "alphas_history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    assert history[-1]["stopped"] == {"epoch": 1, "rule": "test", "reason": "the test's rule"}
    kept = Genotype.from_dict(history[0]["genotype"])
    assert Genotype.from_json((tmp_path / "genotype.json").read_text()) == kept
    assert AutoConfig.from_pretrained(tmp_path).get_genotype() == kept
    assert "**Stopped early** after epoch 2: the test's rule." in (tmp_path / "README.md").read_text()
    assert "Search stopped after epoch 2: the test's rule." in caplog.text
    # Continued, it searches no further: the stop is in its checkpointed history.
    run_search(
        tiny_search_args(tmp_path, epochs=4, resume_from_checkpoint="latest", early_stopping=["skip_connections", "9"])
    )
    assert len(json.loads((tmp_path / "alphas_history.json").read_text())) == 2


def test_early_stopping_on_the_eigenvalue_needs_the_monitor():
    with pytest.raises(ValueError, match="--early_stopping eigenvalue .* --hessian_eigenvalue_every"):
        SearchArguments(early_stopping=["eigenvalue"])
    with pytest.raises(ValueError, match="--early_stopping takes"):
        SearchArguments(early_stopping=["skip_connections", "x"])
    with pytest.raises(ValueError, match="--hessian_eigenvalue_every must be positive"):
        SearchArguments(hessian_eigenvalue_every=0)
    with pytest.raises(ValueError, match="--early_stopping_window must be positive, got 0"):
        SearchArguments(early_stopping_window=0)
    with pytest.raises(ValueError, match="--early_stopping_factor must be above 1, got 1.0"):
        SearchArguments(early_stopping_factor=1.0)


def test_beta_decay_random_smoothing_and_auxiliary_skip_searches_run_from_the_flags(tmp_path):
    plain = run_search(tiny_search_args(tmp_path / "plain", epochs=3))
    decayed = run_search(tiny_search_args(tmp_path / "beta", epochs=3, regulariser="beta_decay", beta_decay_rate=50))
    smooth_maximum = [torch.logsumexp(torch.cat(m.arch_parameters()[:2]), -1).mean().item() for m in (plain, decayed)]
    assert smooth_maximum[1] < smooth_maximum[0]
    smoothed = run_search(tiny_search_args(tmp_path / "sdarts", epochs=3, regulariser="random_smoothing"))
    history = json.loads((tmp_path / "sdarts" / "alphas_history.json").read_text())
    plain_history = json.loads((tmp_path / "plain" / "alphas_history.json").read_text())
    assert history[0]["train_loss"] != plain_history[0]["train_loss"]  # the weight step saw perturbed weights
    assert not torch.equal(flat(smoothed.arch_parameters()), flat(plain.arch_parameters()))
    darts_minus = run_search(tiny_search_args(tmp_path / "darts-", epochs=3, regulariser="auxiliary_skip"))
    assert darts_minus.config.auxiliary_skip and not plain.config.auxiliary_skip
    assert darts_minus.auxiliary_skip_weight == 1 / 3  # the last epoch's: (3 - 2) / 3
    assert not torch.equal(flat(darts_minus.arch_parameters()), flat(plain.arch_parameters()))
    with pytest.raises(
        ValueError, match="--regulariser must be one of \\['auxiliary_skip', 'beta_decay', 'random_smoothing'\\]"
    ):
        SearchArguments(regulariser="l2")


def test_gdas_and_drnas_searches_run_from_the_flags(tmp_path):
    gdas = run_search(tiny_search_args(tmp_path / "gdas", epochs=3, relaxation="gumbel"))
    assert gdas.config.relaxation == "gumbel" and gdas.temperature == pytest.approx(0.1)  # annealed 10 -> 0.1
    drnas = run_search(tiny_search_args(tmp_path / "drnas", epochs=2, relaxation="dirichlet"))
    for model, folder in ((gdas, "gdas"), (drnas, "drnas")):
        history = json.loads((tmp_path / folder / "alphas_history.json").read_text())
        assert Genotype.from_json((tmp_path / folder / "genotype.json").read_text()) == model.genotype()
        assert AutoConfig.from_pretrained(tmp_path / folder / "supernet").relaxation == model.config.relaxation
        assert history[-1]["valid_accuracy"] > 0.1  # ten classes: above chance after a short search
        assert history[0]["alphas_normal"] != history[-1]["alphas_normal"]  # the alphas learn under the sampler


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"order": 2}, "--relaxation gumbel searches first order .* Leave out --order 2"),
        ({"hessian_eigenvalue_every": 1}, "--hessian_eigenvalue_every .* with --relaxation gumbel"),
        ({"regulariser": "random_smoothing"}, "--regulariser random_smoothing acts on the softmax .* --relaxation"),
        ({"temperature_min": 0}, "--temperature_max and --temperature_min must satisfy 0 < min <= max"),
    ],
)
def test_what_a_sampling_relaxation_does_not_go_with_is_refused_naming_both_flags(settings, message):
    with pytest.raises(ValueError, match=message):
        SearchArguments(relaxation="gumbel", **settings)
    with pytest.raises(
        ValueError, match="--relaxation must be one of \\['softmax', 'gumbel', 'dirichlet', 'sigmoid'\\]"
    ):
        SearchArguments(relaxation="softmin")


def test_a_search_in_robustdarts_s4_writes_a_found_cell_that_builds_as_a_transformers_model(tmp_path):
    run_search(tiny_search_args(tmp_path, epochs=1, search_space="s4", num_nodes=4, multiplier=4))
    genotype = Genotype.from_json((tmp_path / "genotype.json").read_text())
    assert {op for op, _ in genotype.normal + genotype.reduce} <= {"noise", "sep_conv_3x3"}
    model = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(tmp_path))  # to be trained
    assert model.config.get_genotype() == genotype
    assert model(torch.randn(2, 3, 8, 8)).logits.shape == (2, 10)
    assert AutoConfig.from_pretrained(tmp_path / "supernet").search_space == "s4"
    with pytest.raises(ValueError, match="--search_space s2 lists the candidates of a 4-node cell: --num_nodes must"):
        SearchArguments(search_space="s2", num_nodes=3, multiplier=3)
    with pytest.raises(ValueError, match="--search_space must be one of"):
        SearchArguments(search_space="nas-bench-101")
