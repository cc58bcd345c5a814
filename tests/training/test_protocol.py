"""The paper's protocol: the selection of the best of several searches (and its resume as a whole), and repeated
trainings reported as mean +/- std."""

import json
import statistics

import pytest
from helpers import language_model_arguments, tiny_search_args, training_arguments
from huggingface_hub import ModelCard
from transformers import AutoConfig

from darts_hub.models.genotypes import Genotype, RecurrentGenotype
from darts_hub.training import publishing
from darts_hub.training.arguments import SelectionArguments
from darts_hub.training.checkpoints import ResumeError
from darts_hub.training.protocol import run_repeated_training, run_selection, summary
from darts_hub.training.train_images import run_training


def tiny_selection(output_dir, **kwargs):
    search = tiny_search_args(output_dir, epochs=1, max_train_samples=128, **kwargs)
    return search, SelectionArguments(num_searches=2, selection_epochs=1, selection_batch_size=32)


def test_selection_keeps_the_cell_whose_short_training_validates_best(tmp_path, monkeypatch):
    uploads = {}
    monkeypatch.setattr(publishing, "create_hub_repo", lambda repo_id, token=None, private=False: repo_id)
    monkeypatch.setattr(
        publishing, "push_folder", lambda folder, repo_id, files, token=None: uploads.update(files=files)
    )
    result = run_selection(*tiny_selection(tmp_path / "selection", push_to_hub=True, hub_model_id="me/cell"))
    folder = tmp_path / "selection"
    table = json.loads((folder / "selection.json").read_text())
    assert [row["seed"] for row in table["runs"]] == [0, 1] == [row["seed"] for row in result["runs"]]
    best = max(table["runs"], key=lambda row: row["selection_valid"])
    assert table["selected_seed"] == best["seed"] and [row["selected"] for row in table["runs"]].count(True) == 1
    for row in table["runs"]:  # each figure is the one its part recorded
        trained = json.loads((folder / row["training_folder"] / "all_results.json").read_text())
        assert row["selection_valid"] == trained["eval_accuracy"] and trained["epochs"] == 1
        found = Genotype.from_json((folder / row["search_folder"] / "genotype.json").read_text())
        assert found == Genotype.from_dict(row["genotype"])
        # The selection training trains the found cell at the derived sizes of its search.
        assert AutoConfig.from_pretrained(folder / row["training_folder"]).get_genotype() == found
    # The folder is the selected search's result, with the table in its card.
    assert Genotype.from_json((folder / "genotype.json").read_text()) == Genotype.from_dict(best["genotype"])
    assert AutoConfig.from_pretrained(folder).get_genotype() == Genotype.from_dict(best["genotype"])
    card = (folder / "README.md").read_text()
    assert "## Selection (measured)" in card and "**selected**" in card and "## Genotype" in card
    assert card.count("## Files") == 1 and "- `selection.json`" in card.split("## Files")[1]
    record = publishing.read_run_record(folder)
    assert record["status"] == "complete" and record["task"] == "darts-select"
    assert "selection.json" in record["files"] and not any(name.startswith("runs/") for name in record["files"])
    assert sorted(uploads["files"]) == sorted([*record["files"], "run_record.json"])  # the result folder, not runs/


def test_a_killed_selection_continues_where_it_stopped_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    whole = run_selection(*tiny_selection(tmp_path / "whole"))

    trainings = []

    def killed_in_the_second_training(args):
        trainings.append(args.output_dir)
        if len(trainings) == 2:
            raise KeyboardInterrupt  # killed after the second search, in the second training
        return run_training(args)

    monkeypatch.setattr("darts_hub.training.train_images.run_training", killed_in_the_second_training)
    search, selection = tiny_selection(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        run_selection(search, selection)
    first_search = tmp_path / "killed" / "runs" / "search-seed-0"
    first_record = publishing.read_run_record(first_search)
    assert first_record["status"] == "complete"
    monkeypatch.undo()

    # Started again without --resume_from_checkpoint: refused, nothing touched.
    with pytest.raises(FileExistsError, match="resume_from_checkpoint latest"):
        run_selection(*tiny_selection(tmp_path / "killed"))
    # Continued with other settings: refused.
    search, selection = tiny_selection(tmp_path / "killed", resume_from_checkpoint="latest")
    with pytest.raises(ResumeError, match="num_searches"):
        run_selection(search, SelectionArguments(num_searches=3, selection_epochs=1, selection_batch_size=32))

    resumed = run_selection(search, selection)
    assert publishing.read_run_record(first_search) == first_record  # the complete parts were not run again
    keys = ("seed", "genotype", "search_valid", "selection_valid", "selected")
    assert [{key: row[key] for key in keys} for row in resumed["runs"]] == [
        {key: row[key] for key in keys} for row in whole["runs"]
    ]
    assert publishing.read_run_record(tmp_path / "killed")["status"] == "complete"


def test_repeated_training_reports_mean_and_std_keeps_every_run_and_pushes_them(tmp_path, monkeypatch):
    uploads = {}
    monkeypatch.setattr(publishing, "create_hub_repo", lambda repo_id, token=None, private=False: repo_id)
    monkeypatch.setattr(
        publishing, "push_folder", lambda folder, repo_id, files, token=None: uploads.update(files=files)
    )
    args = training_arguments(
        output_dir=str(tmp_path / "repeated"),
        genotype="DARTS_V2",
        epochs=1,
        init_channels=8,
        num_cells=3,
        batch_size=64,
        max_train_samples=192,
        seed=5,
        num_runs=3,
        push_to_hub=True,
        hub_model_id="me/darts-repeated",
    )
    results = run_repeated_training(args, run_training)
    folder = tmp_path / "repeated"
    runs = [json.loads((folder / "runs" / f"seed-{seed}" / "all_results.json").read_text()) for seed in (5, 6, 7)]
    errors = [100 * (1 - run["eval_accuracy"]) for run in runs]
    assert len(set(errors)) > 1  # different seeds, different networks
    assert results["metric"] == "test_error" and results["num_runs"] == 3
    assert results["mean"] == pytest.approx(statistics.fmean(errors)) and results["std"] == pytest.approx(
        statistics.stdev(errors)
    )
    assert (results["min"], results["max"]) == (pytest.approx(min(errors)), pytest.approx(max(errors)))
    assert json.loads((folder / "all_results.json").read_text()) == json.loads(json.dumps(results))
    # The best run's weights are the folder's; every run's stay in its subfolder.
    best = max((5, 6, 7), key=lambda seed: runs[seed - 5]["eval_accuracy"])
    assert results["best_run"] == f"runs/seed-{best}"
    weights = (folder / "model.safetensors").read_bytes()
    assert weights == (folder / "runs" / f"seed-{best}" / "model.safetensors").read_bytes()
    card = ModelCard.load(folder / "README.md")
    (mean,) = card.data.eval_results
    assert mean.metric_value == round(results["mean"], 2) and "over 3 runs" in mean.metric_name
    assert "## 3 trainings (measured)" in card.text and f"{results['std']:.2f}" in card.text
    # The push: the folder's files and every run's, nothing else.
    files = set(uploads["files"])
    assert {"model.safetensors", "all_results.json", "README.md", "run_record.json"} <= files
    assert {f"runs/seed-{seed}/model.safetensors" for seed in (5, 6, 7)} <= files
    assert not any("checkpoint" in name for name in files)


def test_summary_is_mean_sample_std_min_and_max():
    assert summary([2.0, 4.0, 9.0]) == {
        "mean": 5.0,
        "std": pytest.approx(3.6055512),
        "min": 2.0,
        "max": 9.0,
        "num_runs": 3,
    }
    assert summary([3.0])["std"] == 0.0


def test_recurrent_selection_then_repeated_training_of_the_selected_cell(tmp_path):
    from darts_hub.data.text import embedded_corpus, split_lines
    from darts_hub.training.arguments import RecurrentSearchArguments
    from darts_hub.training.train_text import run_language_model_training

    lines = split_lines(embedded_corpus())
    corpus = {}
    for split, count in (("train", 300), ("validation", 100), ("test", 40)):
        (tmp_path / f"{split}.txt").write_text("\n".join(lines[split][:count]) + "\n")
        corpus[f"{split}_file"] = str(tmp_path / f"{split}.txt")
    sizes = dict(hidden_size=32, num_nodes=4, batch_size=16, eval_batch_size=8, bptt=20, train_hidden_size=32)
    search = RecurrentSearchArguments(output_dir=str(tmp_path / "selection"), epochs=1, seed=0, **sizes, **corpus)
    selection = SelectionArguments(num_searches=2, selection_epochs=1, selection_batch_size=16)
    table = run_selection(search, selection)["runs"]
    best = min(table, key=lambda row: row["selection_valid"])  # the lowest validation perplexity
    assert [row["selected"] for row in table] == [row is best for row in table]
    for row in table:
        trained = json.loads((tmp_path / "selection" / row["training_folder"] / "all_results.json").read_text())
        assert row["selection_valid"] == trained["valid_perplexity"] and trained["epochs"] == 1

    args = language_model_arguments(
        output_dir=str(tmp_path / "repeated"),
        config_name=str(tmp_path / "selection"),
        recipe="ptb",
        epochs=1,
        batch_size=16,
        bptt=20,
        eval_batch_size=8,
        test_batch_size=8,
        num_runs=2,
        **corpus,
    )
    results = run_repeated_training(args, run_language_model_training)
    runs = [json.loads((tmp_path / "repeated" / f"runs/seed-{seed}/all_results.json").read_text()) for seed in (2, 3)]
    assert results["metric"] == "test_perplexity"
    assert results["mean"] == pytest.approx(statistics.fmean(run["test_perplexity"] for run in runs))
    best_seed = min((2, 3), key=lambda seed: runs[seed - 2]["valid_perplexity"])
    assert results["best_run"] == f"runs/seed-{best_seed}"
    config = AutoConfig.from_pretrained(tmp_path / "repeated")
    assert config.get_genotype() == RecurrentGenotype.from_dict(best["genotype"])  # the selected cell, trained twice
