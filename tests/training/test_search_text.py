"""The recurrent search loop: it lowers perplexity on the embedded corpus, resumes exactly, and runs on several
processes, each on its own columns of the text."""

import json

import pytest
import torch
from helpers import TESTS
from transformers import AutoModel

from darts_hub import DartsRNNConfig
from darts_hub.models.genotypes import RecurrentGenotype


def tiny_recurrent_search(output_dir, **kwargs):
    from darts_hub.training.arguments import RecurrentSearchArguments

    settings = dict(
        output_dir=str(output_dir),
        epochs=2,
        hidden_size=32,
        num_nodes=4,
        batch_size=128,
        eval_batch_size=8,
        bptt=20,
        train_hidden_size=32,
        seed=0,
        learning_rate=2.0,
        dropout=0.1,
        dropout_h=0.1,
        dropout_x=0.1,
        dropout_i=0.1,
    )
    return RecurrentSearchArguments(**{**settings, **kwargs})


def test_recurrent_search_on_the_embedded_corpus(tmp_path, run_script):
    import json

    from huggingface_hub import ModelCard
    from transformers import AutoConfig, AutoTokenizer

    run_script(
        "search_rnn",
        *sum(
            (
                [f"--{k}", str(v)]
                for k, v in vars(tiny_recurrent_search(tmp_path)).items()
                if v is not None and not isinstance(v, bool)
            ),
            [],
        ),
    )
    history = json.loads((tmp_path / "alphas_history.json").read_text())
    perplexities = [record["valid_perplexity"] for record in history]
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, DartsRNNConfig) and config.hidden_size == 32
    assert perplexities[1] < perplexities[0] < config.vocab_size / 2  # learning, far below a uniform guess
    assert config.get_genotype() == RecurrentGenotype.from_dict(history[-1]["genotype"])
    assert len(AutoTokenizer.from_pretrained(tmp_path)) == config.vocab_size
    assert config.eos_token_id == AutoTokenizer.from_pretrained(tmp_path).eos_token_id
    supernet = AutoModel.from_pretrained(tmp_path / "supernet")
    assert supernet.genotype() == config.get_genotype()
    assert "validation perplexity" in ModelCard.load(tmp_path / "README.md").text
    assert (tmp_path / "recurrent.png").exists() or (tmp_path / "recurrent.gv").exists()
    assert (tmp_path / "alphas.gif").is_file() and (tmp_path / "learning_curves.png").is_file()


def test_recurrent_search_resumes_exactly(tmp_path):
    from darts_hub.data.text import embedded_corpus, split_lines
    from darts_hub.training.search_text import run_recurrent_search

    # A small corpus of local text files (the first lines of the embedded one): 2 epochs of about 8 chunks.
    lines = split_lines(embedded_corpus())
    files = {}
    for split, count in (("train", 300), ("validation", 120), ("test", 40)):
        files[f"{split}_file"] = str(tmp_path / f"{split}.txt")
        (tmp_path / f"{split}.txt").write_text("\n".join(lines[split][:count]) + "\n")
    settings = dict(epochs=2, order=2, batch_size=16, **files)
    full = run_recurrent_search(tiny_recurrent_search(tmp_path / "full", **settings))
    run_recurrent_search(tiny_recurrent_search(tmp_path / "parts", max_steps=11, checkpointing_steps=11, **settings))
    resumed = run_recurrent_search(
        tiny_recurrent_search(tmp_path / "parts", resume_from_checkpoint="latest", **settings)
    )
    assert (tmp_path / "parts" / "checkpoints" / "checkpoint-11").is_dir()
    torch.testing.assert_close(resumed.alphas["recurrent"], full.alphas["recurrent"], rtol=0, atol=1e-6)
    assert resumed.genotype() == full.genotype()


def test_recurrent_search_arguments_are_checked():
    from darts_hub.training.arguments import RecurrentSearchArguments

    with pytest.raises(ValueError, match="--bptt"):
        RecurrentSearchArguments(bptt=0)


def test_two_processes_search_on_their_own_columns_with_identical_alphas(tmp_path, launch_two_processes):
    """Each process reads its own columns of the training and search streams; DDP averages the weight gradients and
    the architect the alpha gradients, so both ranks keep one architecture. (Not identical to one process with all
    the streams: the search cell's BatchNorm normalises each process's batch.)"""
    from darts_hub.data.text import embedded_corpus, split_lines

    lines = split_lines(embedded_corpus())
    files = {}
    for split, count in (("train", 300), ("validation", 120), ("test", 40)):
        files[f"{split}_file"] = str(tmp_path / f"{split}.txt")
        (tmp_path / f"{split}.txt").write_text("\n".join(lines[split][:count]) + "\n")
    settings = vars(tiny_recurrent_search(tmp_path / "out", epochs=1, batch_size=8, order=2, **files))
    flags = [
        item
        for key, value in settings.items()
        if value is not None and not isinstance(value, bool)
        for item in (f"--{key}", value)
    ]
    launch_two_processes(TESTS / "ddp_search.py", "rnn", *flags)
    ranks = [torch.load(tmp_path / "out" / f"alphas-rank{rank}.pt") for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    torch.testing.assert_close(ranks[0]["alphas"][0], ranks[1]["alphas"][0], rtol=0, atol=0)
    assert ranks[0]["alphas"][0].abs().max() > 2e-3  # they moved from their 1e-3 initialisation
    assert json.loads((tmp_path / "out" / "genotype.json").read_text())["recurrent"]  # rank 0 wrote the result
