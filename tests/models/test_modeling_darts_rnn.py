"""The recurrent DARTS language model: the original's size and layout, generation, the word tokenizer."""

import pytest
import torch
from helpers import TESTS
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, pipeline

from darts_hub import DartsRNNConfig, DartsRNNForCausalLM, DartsRNNModel, count_parameters
from darts_hub.models import build_tokenizer, vocabulary_in_order
from darts_hub.models.genotypes import RECURRENT_DARTS_V2, get_genotype


KEY_LISTS = TESTS / "fixtures" / "original_checkpoint_keys"


def tiny_lm(seed=1, **kwargs):
    torch.manual_seed(seed)
    settings = dict(vocab_size=50, hidden_size=32, eos_token_id=1, pad_token_id=0, init_range=1.0)
    return DartsRNNForCausalLM(DartsRNNConfig(**{**settings, **kwargs}))


@pytest.mark.parametrize(
    "vocab_size, hidden_size, parameters", [(10_000, 850, 22_960_000), (33_278, 700, 33_127_878)], ids=["ptb", "wt2"]
)
def test_darts_v2_language_models_have_the_paper_sizes(vocab_size, hidden_size, parameters):
    model = DartsRNNForCausalLM(DartsRNNConfig(vocab_size=vocab_size, hidden_size=hidden_size))
    assert count_parameters(model) == parameters  # the tied embedding counted once
    assert model.decoder.weight is model.model.encoder.weight


def test_parameters_follow_the_original_layout():
    """Every tensor of the released PTB model has its counterpart with the same shape."""
    original = {}
    for line in (KEY_LISTS / "ptb_darts_v2.txt").read_text().splitlines():
        if not line.startswith("#"):
            key, shape, _ = line.split("\t")
            original[key] = [int(d) for d in shape.strip("[]").split(",")]
    ours = {
        key.replace("model.encoder", "encoder")
        .replace("model.cell.w0", "rnns.0._W0")
        .replace("model.cell.ws", "rnns.0._Ws"): list(tensor.shape)
        for key, tensor in DartsRNNForCausalLM(DartsRNNConfig()).state_dict().items()
    }
    assert ours == original


def test_initialisation_is_uniform_in_the_init_range():
    model = DartsRNNForCausalLM(DartsRNNConfig(vocab_size=200, hidden_size=40))
    for tensor in (model.model.encoder.weight, model.model.cell.w0, model.model.cell.ws[3]):
        assert tensor.abs().max() <= 0.04 and tensor.abs().max() > 0.035
    assert torch.all(model.decoder.bias == 0)


def test_save_and_load_keep_outputs_and_the_tie(tmp_path):
    model = tiny_lm().eval()
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, DartsRNNConfig) and config.get_genotype() == RECURRENT_DARTS_V2
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.decoder.weight is loaded.model.encoder.weight
    ids = torch.randint(0, 50, (2, 7))
    torch.testing.assert_close(
        torch.log_softmax(loaded(ids).logits, -1), torch.log_softmax(model(ids).logits, -1), rtol=0, atol=1e-6
    )
    assert isinstance(AutoModel.from_pretrained(tmp_path), DartsRNNModel)


def test_hidden_state_carries_a_stream_across_chunks():
    model = tiny_lm().eval()
    ids = torch.randint(0, 50, (3, 10))
    whole = model(ids)
    first = model(ids[:, :4])
    second = model(ids[:, 4:], hidden_state=first.hidden_state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole.logits)
    torch.testing.assert_close(second.hidden_state, whole.hidden_state)


def test_greedy_generation_with_the_cache_equals_an_argmax_loop():
    model = tiny_lm(seed=4).eval()  # a seed whose greedy continuation varies
    lengths = []
    model.model.cell.register_forward_hook(lambda module, inputs, output: lengths.append(inputs[0].shape[1]))
    prompt = torch.tensor([[5, 7, 9, 11]])
    generated = model.generate(prompt, max_new_tokens=10, do_sample=False, eos_token_id=None)
    assert lengths == [4] + [1] * 9  # the state is cached: one token per step after the prompt
    sequence = prompt
    for _ in range(10):
        sequence = torch.cat([sequence, model(sequence).logits[:, -1:].argmax(-1)], 1)
    assert torch.equal(generated, sequence)
    assert len(set(generated[0, 4:].tolist())) > 3  # a non-degenerate continuation


def test_left_padded_batch_equals_prompts_one_by_one():
    model = tiny_lm(seed=9).eval()
    batch = torch.tensor([[0, 0, 5, 7], [3, 4, 6, 8]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    together = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=None)
    alone = [
        model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, eos_token_id=None)[0, -6:]
        for prompt in ([5, 7], [3, 4, 6, 8])
    ]
    assert torch.equal(together[:, -6:], torch.stack(alone))
    assert len(set(together[:, -6:].flatten().tolist())) > 2  # not a degenerate constant continuation


def test_sampling_and_beam_search_run():
    model = tiny_lm().eval()
    prompt = torch.tensor([[5, 7, 9]])
    assert model.generate(prompt, max_new_tokens=5, num_beams=3, do_sample=False, eos_token_id=None).shape == (1, 8)
    torch.manual_seed(0)
    assert model.generate(prompt, max_new_tokens=5, do_sample=True, top_k=5, eos_token_id=None).shape == (1, 8)


def test_dropout_only_in_training():
    model = tiny_lm(dropout=0.5, dropout_h=0.5, dropout_x=0.5, dropout_i=0.5, dropout_e=0.5)
    ids = torch.randint(0, 50, (2, 6))
    model.eval()
    torch.testing.assert_close(model(ids).logits, model(ids).logits)
    model.train()
    assert not torch.allclose(model(ids).logits, model(ids).logits)


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="sequence length must be at least 1"):
        tiny_lm()(torch.zeros(2, 0, dtype=torch.long))


def test_vocabulary_follows_the_original_order_rule():
    train, valid, test = ["b a b", "c <unk>"], ["d a"], ["e"]
    assert list(vocabulary_in_order([train, valid, test])) == ["b", "a", "<eos>", "c", "<unk>", "d", "e"]
    assert list(vocabulary_in_order([["x y"]])) == ["x", "y", "<eos>", "<unk>"]  # <unk> added last if absent


def test_tokenizer_round_trip_and_text_generation_pipeline(tmp_path):
    train, valid, test = ["the cat sat", "the dog ran <unk>"], ["a cat"], ["the end"]
    tokenizer = build_tokenizer([train, valid, test])
    assert tokenizer("the cat sat").input_ids == [0, 1, 2]  # no <eos>: a prompt does not end the text
    assert tokenizer.decode(tokenizer("the zebra").input_ids) == " the <unk>"  # a space before every word
    assert tokenizer.decode([0, 3], skip_special_tokens=True) == " the" and tokenizer.eos_token_id == 3
    model = tiny_lm(
        vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("the dog ran a cat").input_ids == tokenizer("the dog ran a cat").input_ids
    generator = pipeline("text-generation", model=str(tmp_path))
    outputs = generator(["the cat", "a dog ran"], max_new_tokens=4, do_sample=False, return_full_text=False)
    assert [len(output[0]["generated_text"].split()) for output in outputs] == [4, 4]
    full = generator("the cat", max_new_tokens=2, do_sample=False)[0]["generated_text"]
    assert full.startswith("the cat ") and len(full.split()) == 4  # the continuation is spaced from the prompt


def test_config_accepts_recurrent_zoo_names_and_rejects_bad_values():
    assert DartsRNNConfig(genotype="ENAS").get_genotype() == get_genotype("ENAS", recurrent=True)
    with pytest.raises(ValueError, match="dropout_h must be in"):
        DartsRNNConfig(dropout_h=1.5)
    with pytest.raises(KeyError, match="ENAS"):
        DartsRNNConfig(genotype="NASNet")
