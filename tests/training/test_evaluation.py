"""Evaluation: perplexity over a whole stream with the state carried, and evaluate.py on a language model."""

import json
import math

import pytest
import torch

from darts_hub import DartsRNNConfig, DartsRNNForCausalLM
from darts_hub.data.text import (
    batchify,
    encode_lines,
    load_text_dataset,
    split_lines,
)
from darts_hub.models import build_tokenizer, vocabulary_in_order
from darts_hub.training.evaluation import evaluate_perplexity


def test_perplexity_carries_the_state_over_the_whole_stream():
    torch.manual_seed(0)
    model = DartsRNNForCausalLM(DartsRNNConfig(vocab_size=30, hidden_size=16))
    columns = batchify(torch.randint(0, 30, (121,)), 2)  # 60 steps
    chunked = evaluate_perplexity(model, columns, bptt=7)
    logits = model.eval()(columns[:-1].t()).logits
    whole = torch.nn.functional.cross_entropy(logits.reshape(-1, 30), columns[1:].t().reshape(-1)).item()
    assert chunked["num_tokens"] == 118
    assert chunked["loss"] == pytest.approx(whole, rel=1e-5)
    assert chunked["perplexity"] == pytest.approx(math.exp(whole), rel=1e-5)
    with pytest.raises(ValueError, match="at least 1"):
        evaluate_perplexity(model, columns, bptt=0)


def test_evaluate_script_reports_perplexity_of_a_language_model(tmp_path, run_script):
    corpus = load_text_dataset()
    lines = split_lines(corpus)
    vocabulary = vocabulary_in_order([lines["train"], lines["validation"], lines["test"]])
    tokenizer = build_tokenizer(vocabulary=vocabulary)
    torch.manual_seed(0)
    model = DartsRNNForCausalLM(DartsRNNConfig(vocab_size=len(vocabulary), hidden_size=16))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    results = json.loads(run_script("evaluate", "--model_name_or_path", tmp_path, "--bptt", "35"))
    expected = evaluate_perplexity(model, batchify(encode_lines(lines["test"], vocabulary), 1), 35)
    assert results["num_tokens"] == expected["num_tokens"]
    assert results["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)
    assert results["perplexity"] == pytest.approx(len(vocabulary), rel=0.1)  # an untrained model: near uniform
    assert json.loads((tmp_path / "eval_results_test.json").read_text()) == results
