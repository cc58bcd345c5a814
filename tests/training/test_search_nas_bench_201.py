"""A search in NAS-Bench-201's space from the search command's flags: it learns on the digits, writes a result folder
whose found cell is a NAS-Bench-201 network (which darts-train trains and darts-evaluate evaluates), runs with the
DARTS family's options, and refuses what does not apply to the space, naming the flags."""

import json

import pytest
import torch
from helpers import training_arguments
from transformers import AutoConfig, AutoModelForImageClassification

from darts_hub import NasBench201Config, NasBench201ForImageClassification, NasBench201SearchModel
from darts_hub.models.genotypes import (
    NAS_BENCH_201_OPERATIONS,
    NAS_BENCH_201_RESNET,
    NasBench201Genotype,
    load_genotype,
)
from darts_hub.search.derived import derived_config
from darts_hub.search.early_stopping import EIGENVALUE_KEY, SkipConnectionRule
from darts_hub.training.arguments import EvaluateArguments, SearchArguments, SelectionArguments
from darts_hub.training.evaluate_checkpoint import evaluate_checkpoint
from darts_hub.training.protocol import run_selection
from darts_hub.training.search_images import run_search
from darts_hub.training.train_images import ARCHITECTURE_SETTINGS, run_training


def nas_bench_201_args(output_dir, **settings) -> SearchArguments:
    tiny = dict(max_train_samples=256, epochs=2, batch_size=32, init_channels=4, cells_per_stage=1, seed=0)
    return SearchArguments(output_dir=str(output_dir), search_space="nas-bench-201", **{**tiny, **settings})


def test_a_search_learns_and_writes_a_nas_bench_201_network(tmp_path):
    supernet = run_search(nas_bench_201_args(tmp_path, epochs=3, max_train_samples=None, hessian_eigenvalue_every=1))
    assert isinstance(supernet, NasBench201SearchModel)
    history = json.loads((tmp_path / "alphas_history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert history[-1]["valid_accuracy"] > 0.3  # ten classes: chance is 0.1
    assert all(len(record["alphas_cell"]) == 6 for record in history) and "alphas_normal" not in history[-1]
    assert len(history[-1]["alphas_cell"][0]) == len(NAS_BENCH_201_OPERATIONS)
    assert all(record[EIGENVALUE_KEY] > 0 for record in history)  # measured every epoch

    genotype = supernet.genotype()
    assert NasBench201Genotype.from_dict(history[-1]["genotype"]) == genotype
    assert load_genotype(tmp_path) == genotype == load_genotype(tmp_path / "genotype.json")
    assert history[-1]["parameter_free_cell"] == genotype.parameter_free_operations()
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, NasBench201Config) and config.get_genotype() == genotype
    assert (config.init_channels, config.cells_per_stage, config.image_size, config.num_labels) == (4, 1, 8, 10)
    network = AutoModelForImageClassification.from_config(config)  # ready to be trained
    assert isinstance(network, NasBench201ForImageClassification)
    assert network(torch.randn(2, 3, 8, 8)).logits.shape == (2, 10)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path / "supernet"), NasBench201SearchModel)
    assert (tmp_path / "cell.png").stat().st_size > 0 and (tmp_path / "search_progress.gif").is_file()
    card = (tmp_path / "README.md").read_text()
    assert "NAS-Bench-201's cell space" in card and f"`{genotype}`" in card and "NasBench201Config" in card
    assert "Dominant eigenvalue of the Hessian" in card


@pytest.fixture(scope="module")
def plain_search(tmp_path_factory):
    return run_search(nas_bench_201_args(tmp_path_factory.mktemp("plain"), epochs=2))


@pytest.mark.parametrize(
    "settings",
    [
        {"order": 2},
        {"regulariser": "beta_decay"},
        {"regulariser": "random_smoothing"},
        {"regulariser": "auxiliary_skip"},
        {"relaxation": "gumbel"},
        {"relaxation": "dirichlet"},
    ],
)
def test_the_darts_familys_options_search_the_space(tmp_path, plain_search, settings):
    searched = run_search(nas_bench_201_args(tmp_path, epochs=2, **settings))
    # The option changed the search (beta-decay from its second epoch: its weight grows from 0).
    assert not torch.equal(searched.alphas["cell"], plain_search.alphas["cell"])
    assert load_genotype(tmp_path) == searched.genotype()
    assert searched.config.auxiliary_skip == (settings.get("regulariser") == "auxiliary_skip")
    assert searched.config.relaxation == settings.get("relaxation", "softmax")


def test_the_skip_connection_rule_counts_the_one_cell():
    cell = NasBench201Genotype.from_string("|skip_connect~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|none~1|none~2|")
    stop = SkipConnectionRule(2).stop([{"epoch": 4, "genotype": cell.to_dict()}])
    assert stop.epoch == 4 and "the cell of epoch 4 holds 2 skip connections" in stop.reason
    assert SkipConnectionRule(3).stop([{"epoch": 4, "genotype": cell.to_dict()}]) is None


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"num_cells": 5}, "--num_cells sizes DARTS's cells .* leave out --num_cells \\(use --cells_per_stage\\)"),
        ({"num_nodes": 3}, "--num_nodes sizes DARTS's cells .*\\(its cell has 3 nodes"),
        ({"train_init_channels": 16}, "leave out --train_init_channels \\(use --init_channels\\)"),
        ({"relaxation": "sigmoid"}, "--relaxation sigmoid parses DARTS's two strongest edges .* softmax or gumbel"),
        ({"partial_channels": 2}, "--partial_channels and --edge_normalization are PC-DARTS's"),
        ({"edge_normalization": True}, "--partial_channels and --edge_normalization are PC-DARTS's"),
        ({"activation_checkpointing": True}, "--activation_checkpointing recomputes DARTS's search cells"),
        ({"cells_per_stage": 0}, "--cells_per_stage must be positive, got 0"),
    ],
)
def test_what_the_space_does_not_take_is_refused_naming_the_flag(settings, message):
    with pytest.raises(ValueError, match=message):
        SearchArguments(search_space="nas-bench-201", **settings)


def test_cells_per_stage_is_refused_outside_the_space():
    with pytest.raises(ValueError, match="--cells_per_stage sizes NAS-Bench-201's network; --search_space darts"):
        SearchArguments(cells_per_stage=3)


def test_darts_train_trains_the_found_network_and_darts_evaluate_evaluates_it(tmp_path, plain_search):
    search_folder = tmp_path / "search"  # what a search writes for training: the derived network's config
    derived_config(plain_search).save_pretrained(search_folder)
    settings = dict(config_name=str(search_folder), epochs=4, batch_size=32, learning_rate=0.1, cutout=0, seed=0)
    network = run_training(training_arguments(output_dir=str(tmp_path / "trained"), **settings))
    assert isinstance(network, NasBench201ForImageClassification)
    assert network.config.get_genotype() == plain_search.genotype()
    log = json.loads((tmp_path / "trained" / "training_log.json").read_text())
    assert log[-1]["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert all(record["drop_path_prob"] == 0 for record in log)  # the recipe's drop-path does not apply
    card = (tmp_path / "trained" / "README.md").read_text()
    assert "# NAS-Bench-201 network trained on" in card and str(plain_search.genotype()) in card
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "trained")
    assert isinstance(loaded, NasBench201ForImageClassification)
    results = evaluate_checkpoint(EvaluateArguments(model_name_or_path=str(tmp_path / "trained")))
    assert results["top1_accuracy"] == pytest.approx(log[-1]["test_accuracy"], abs=1e-6)
    for flag, value in (("auxiliary_weight", 0.4), ("drop_path_prob", 0.1), ("num_cells", 8)):
        with pytest.raises(ValueError, match=f"is a NAS-Bench-201 network: it has no auxiliary head.*--{flag}"):
            training_arguments(output_dir=str(tmp_path / "refused"), **{**settings, flag: value})


RESNET_CELL = str(NAS_BENCH_201_RESNET)


def test_darts_train_trains_a_nas_bench_201_cell_given_as_the_benchmarks_string(tmp_path):
    settings = dict(genotype=RESNET_CELL, init_channels=4, cells_per_stage=1, epochs=1, batch_size=32, cutout=0)
    network = run_training(training_arguments(output_dir=str(tmp_path), **settings))
    assert isinstance(network, NasBench201ForImageClassification)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "nas_bench_201" and saved["genotype"] == RESNET_CELL
    assert (saved["init_channels"], saved["cells_per_stage"]) == (4, 1)
    assert not {"num_cells", "stem", "auxiliary_weight"} & saved.keys()  # the DARTS recipe's sizes stay out


def test_a_cell_string_trains_at_the_benchmarks_sizes_unless_others_are_given(tmp_path):
    assert training_arguments(genotype=RESNET_CELL).architecture(ARCHITECTURE_SETTINGS) == {}
    given = training_arguments(genotype=RESNET_CELL, init_channels=8, cells_per_stage=2)
    assert given.architecture(ARCHITECTURE_SETTINGS) == {"init_channels": 8, "cells_per_stage": 2}
    folder = tmp_path / "cell"
    NasBench201Config(genotype=RESNET_CELL, cells_per_stage=3).save_pretrained(folder)
    from_folder = training_arguments(config_name=str(folder), cells_per_stage=2)
    assert from_folder.architecture(ARCHITECTURE_SETTINGS) == {"cells_per_stage": 2}
    assert training_arguments(config_name=str(folder)).architecture(ARCHITECTURE_SETTINGS) == {}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"genotype": "DARTS_V2", "cells_per_stage": 2}, "--cells_per_stage sizes NAS-Bench-201 networks; DARTS_V2"),
        ({"genotype": RESNET_CELL, "num_cells": 8}, "is a NAS-Bench-201 network: .*Leave out --num_cells"),
        ({"genotype": "|conv_7x7~0|"}, "unknown operation 'conv_7x7'"),
        ({"genotype": "|nor_conv_3x3~1|"}, "node 1 has edges from inputs \\[1\\]"),
    ],
)
def test_a_training_refuses_sizes_of_the_other_kind_and_bad_cells_when_parsed(settings, message):
    with pytest.raises(ValueError, match=message):
        training_arguments(**settings)


def test_darts_select_selects_among_nas_bench_201_searches_and_trains_their_networks(tmp_path):
    search = nas_bench_201_args(tmp_path, epochs=1, max_train_samples=128)
    run_selection(search, SelectionArguments(num_searches=2, selection_epochs=1, selection_batch_size=32))
    table = json.loads((tmp_path / "selection.json").read_text())
    assert [row["seed"] for row in table["runs"]] == [0, 1]
    for row in table["runs"]:  # each selection training trains its search's network, at the searched sizes
        trained = AutoConfig.from_pretrained(tmp_path / row["training_folder"])
        assert isinstance(trained, NasBench201Config)
        assert trained.get_genotype() == NasBench201Genotype.from_dict(row["genotype"])
        assert (trained.init_channels, trained.cells_per_stage) == (4, 1)
    best = max(table["runs"], key=lambda row: row["selection_valid"])
    assert AutoConfig.from_pretrained(tmp_path).get_genotype() == NasBench201Genotype.from_dict(best["genotype"])
    assert "## Selection (measured)" in (tmp_path / "README.md").read_text()
