import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from darts_hub import DartsRNNConfig, DartsRNNForCausalLM, count_parameters
from darts_hub.genotypes import RECURRENT_PRIMITIVES, RecurrentGenotype
from darts_hub.search.architect import Architect
from darts_hub.search.rnn import DartsRNNSearchConfig, DartsRNNSearchModel


TESTS = Path(__file__).resolve().parent


def test_recurrent_supernet_has_the_original_size():
    model = DartsRNNSearchModel(DartsRNNSearchConfig())
    assert count_parameters(model) == 4_810_000
    assert model.alphas["recurrent"].shape == (36, len(RECURRENT_PRIMITIVES)) == (36, 5)
    assert model.decoder.weight is model.encoder.weight
    assert 0.7e-3 < model.alphas["recurrent"].std().item() < 1.3e-3


def test_alphas_are_saved_and_the_derived_network_builds(tmp_path):
    model = DartsRNNSearchModel(DartsRNNSearchConfig(vocab_size=40, hidden_size=12, steps=4))
    with torch.no_grad():
        model.alphas["recurrent"].normal_()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert torch.equal(loaded.alphas["recurrent"], model.alphas["recurrent"])
    genotype = loaded.genotype()
    assert isinstance(genotype, RecurrentGenotype) and genotype.steps == 4 and genotype.concat == (1, 2, 3, 4)
    network = DartsRNNForCausalLM(model.derived_config(hidden_size=16))
    assert network.config.get_genotype() == genotype
    assert network(torch.randint(0, 40, (2, 5))).logits.shape == (2, 5, 40)
    assert (
        count_parameters(DartsRNNForCausalLM(model.derived_config())) == 40 * 850 + 40 + 1700 * 1700 + 4 * 850 * 1700
    )


def lm_batches(seed=0):
    generator = torch.Generator().manual_seed(seed)

    def batch():
        return {
            "input_ids": torch.randint(0, 30, (4, 5), generator=generator),
            "targets": torch.randint(0, 30, (4, 5), generator=generator),
            "hidden_state": torch.randn(4, 10, generator=generator, dtype=torch.float64) * 0.1,
        }

    return batch(), batch()


def test_shared_architect_on_the_recurrent_supernet():
    """The same architect as the CNN search: its finite-difference second-order gradient matches the exact one.

    (With the recurrent search's clipping of the unrolled weight gradient, the finite-difference Hessian term stays
    the original's unclipped one while `exact` also differentiates the clipping, so they are compared unclipped.)"""
    torch.manual_seed(0)
    config = DartsRNNSearchConfig(
        vocab_size=30, hidden_size=10, steps=3, dropout=0.0, dropout_h=0.0, dropout_x=0.0, dropout_i=0.0
    )
    model = DartsRNNSearchModel(config).double().train()
    with torch.no_grad():
        model.alphas["recurrent"].normal_(0, 0.5)
    weight_optimizer = torch.optim.SGD(model.weight_parameters(), lr=20.0, weight_decay=5e-7)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), lr=3e-3, weight_decay=1e-3)
    train, valid = lm_batches()

    def gradients(**kwargs):
        architect = Architect(model, arch_optimizer, **kwargs)
        return torch.cat([g.reshape(-1) for g in architect.arch_gradients(train, valid, weight_optimizer)])

    # With the paper's own perturbation (0.01): the relu candidate makes the cell piecewise smooth, so the finite
    # difference is close to, not equal to, the exact product (cosine 0.9997 for this draw).
    first, finite, exact = gradients(order=1), gradients(order=2), gradients(order=2, hessian="exact")
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(finite, exact, dim=0) > 0.99
    assert (finite - exact).norm() / exact.norm() < 0.05
    assert cosine(first, exact, dim=0) < 0.9
    before = model.alphas["recurrent"].detach().clone()
    Architect(model, arch_optimizer, order=2, unrolled_grad_clip=0.25).step(train, valid, weight_optimizer)
    assert not torch.equal(before, model.alphas["recurrent"])


def test_unrolled_gradient_clipping_changes_the_second_order_term():
    torch.manual_seed(0)
    config = DartsRNNSearchConfig(
        vocab_size=30, hidden_size=10, steps=3, dropout=0.0, dropout_h=0.0, dropout_x=0.0, dropout_i=0.0
    )
    model = DartsRNNSearchModel(config).double().train()
    weight_optimizer = torch.optim.SGD(model.weight_parameters(), lr=20.0)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), lr=3e-3)
    train, valid = lm_batches(1)
    clipped = Architect(model, arch_optimizer, order=2, hessian="exact", unrolled_grad_clip=1e-3)
    unclipped = Architect(model, arch_optimizer, order=2, hessian="exact")
    a = torch.cat([g.reshape(-1) for g in clipped.arch_gradients(train, valid, weight_optimizer)])
    b = torch.cat([g.reshape(-1) for g in unclipped.arch_gradients(train, valid, weight_optimizer)])
    assert not torch.allclose(a, b)


def test_derived_config_defaults_to_the_paper_sizes():
    model = DartsRNNSearchModel(DartsRNNSearchConfig(vocab_size=100, hidden_size=8))
    config = model.derived_config()
    assert isinstance(config, DartsRNNConfig) and config.hidden_size == 850 and config.vocab_size == 100
    with pytest.raises(ValueError, match="shape"):
        from darts_hub.genotypes import derive_recurrent_genotype

        derive_recurrent_genotype(torch.zeros(10, 5))


def test_search_cell_node_is_the_weighted_sum_of_highway_updates():
    """Each node is sum over inputs j and operations k of w_jk (s_j + c_j (f_k(h_j) - s_j)) ('none' adds nothing)."""
    from darts_hub.models.darts_rnn.modeling_darts_rnn import ACTIVATIONS

    torch.manual_seed(0)
    config = DartsRNNSearchConfig(vocab_size=20, hidden_size=6, steps=2)
    cell = DartsRNNSearchModel(config).cell.eval()
    weights = torch.softmax(torch.randn(3, len(RECURRENT_PRIMITIVES)), -1)
    x, h_prev = torch.randn(4, 6), torch.randn(4, 6)
    states = [cell.bn(cell.initial_state(x, h_prev, None, None))]
    offset = 0
    for node, weight in enumerate(cell.ws):
        total = 0
        for j, s_prev in enumerate(states):
            c, h = (s_prev @ weight).chunk(2, dim=-1)
            for k, name in enumerate(RECURRENT_PRIMITIVES):
                if name != "none":
                    total = total + weights[offset + j, k] * (s_prev + c.sigmoid() * (ACTIVATIONS[name](h) - s_prev))
        states.append(cell.bn(total))
        offset += node + 1
    expected = torch.stack(states[1:]).mean(0)
    torch.testing.assert_close(cell.step(x, h_prev, None, None, weights=weights), expected)


def tiny_recurrent_search(output_dir, **kwargs):
    from darts_hub.training.recurrent_search_loop import RecurrentSearchArguments

    settings = dict(
        output_dir=str(output_dir),
        epochs=2,
        hidden_size=32,
        steps=4,
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


def test_recurrent_search_resumes_exactly(tmp_path):
    from darts_hub.data.text import embedded_corpus, split_lines
    from darts_hub.training.recurrent_search_loop import run_recurrent_search

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
    from darts_hub.training.recurrent_search_loop import RecurrentSearchArguments

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
