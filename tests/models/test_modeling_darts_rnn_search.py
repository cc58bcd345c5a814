"""The recurrent supernet: the original's size, alphas, the derived network, the search cell's node."""

import pytest
import torch
from transformers import AutoModel

from darts_hub import DartsRNNConfig, DartsRNNForCausalLM, count_parameters
from darts_hub.models.genotypes import RECURRENT_PRIMITIVES, RecurrentGenotype
from darts_hub.models.modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel
from darts_hub.search.derived import derived_config


def test_recurrent_supernet_has_the_original_size():
    model = DartsRNNSearchModel(DartsRNNSearchConfig())
    assert count_parameters(model) == 4_810_000
    assert model.alphas["recurrent"].shape == (36, len(RECURRENT_PRIMITIVES)) == (36, 5)
    assert model.decoder.weight is model.encoder.weight
    assert 0.7e-3 < model.alphas["recurrent"].std().item() < 1.3e-3


def test_alphas_are_saved_and_the_derived_network_builds(tmp_path):
    model = DartsRNNSearchModel(DartsRNNSearchConfig(vocab_size=40, hidden_size=12, num_nodes=4))
    with torch.no_grad():
        model.alphas["recurrent"].normal_()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert torch.equal(loaded.alphas["recurrent"], model.alphas["recurrent"])
    genotype = loaded.genotype()
    assert isinstance(genotype, RecurrentGenotype) and genotype.num_nodes == 4 and genotype.concat == (1, 2, 3, 4)
    network = DartsRNNForCausalLM(derived_config(model, hidden_size=16))
    assert network.config.get_genotype() == genotype
    assert network(torch.randint(0, 40, (2, 5))).logits.shape == (2, 5, 40)
    assert count_parameters(DartsRNNForCausalLM(derived_config(model))) == 40 * 850 + 40 + 1700 * 1700 + 4 * 850 * 1700


def test_derived_config_defaults_to_the_paper_sizes():
    model = DartsRNNSearchModel(DartsRNNSearchConfig(vocab_size=100, hidden_size=8))
    config = derived_config(model)
    assert isinstance(config, DartsRNNConfig) and config.hidden_size == 850 and config.vocab_size == 100
    with pytest.raises(ValueError, match="shape"):
        from darts_hub.models.genotypes import derive_recurrent_genotype

        derive_recurrent_genotype(torch.zeros(10, 5))


def test_search_cell_node_is_the_weighted_sum_of_highway_updates():
    """Each node is sum over inputs j and operations k of w_jk (s_j + c_j (f_k(h_j) - s_j)) ('none' adds nothing)."""
    from darts_hub.models.modeling_darts_rnn import ACTIVATIONS

    torch.manual_seed(0)
    config = DartsRNNSearchConfig(vocab_size=20, hidden_size=6, num_nodes=2)
    cell = DartsRNNSearchModel(config).cell.eval()
    weights = torch.softmax(torch.randn(3, len(RECURRENT_PRIMITIVES)), -1)
    x, h_prev = torch.randn(4, 6), torch.randn(4, 6)
    c0, h0 = (torch.cat([x, h_prev], -1) @ cell.w0).chunk(2, dim=-1)
    states = [cell.bn(h_prev + c0.sigmoid() * (h0.tanh() - h_prev))]
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
    outputs, last = cell(x[:, None], h_prev, weights=weights)
    torch.testing.assert_close(outputs[:, 0], expected)
    torch.testing.assert_close(last, expected)
