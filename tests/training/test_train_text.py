"""Training a recurrent DARTS language model with the original recipe (scripts/train.py --recipe ptb)."""

import copy
import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from helpers import TESTS, language_model_arguments
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from darts_hub import DartsConfig, DartsRNNConfig, DartsRNNForCausalLM
from darts_hub.data.text import batchify, embedded_corpus, encode_lines, split_lines
from darts_hub.models.modeling_darts_rnn import activation_slowness
from darts_hub.training.evaluation import evaluate_perplexity
from darts_hub.training.sources import load_language_model
from darts_hub.training.train_text import (
    ConsumedLogitsCrossEntropy,
    averaged_weights,
    build_language_model,
    language_model_step,
    run_language_model_training,
    should_switch_to_asgd,
)


SCRIPTS = TESTS.parent / "scripts"


NO_DROPOUT = dict(dropout=0.0, dropout_h=0.0, dropout_x=0.0, dropout_i=0.0, dropout_e=0.0)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """Local text files with the first lines of the embedded corpus (an epoch of 16 streams is ~19 chunks)."""
    folder = tmp_path_factory.mktemp("corpus")
    lines = split_lines(embedded_corpus())
    files = {}
    for split, count in (("train", 600), ("validation", 150), ("test", 60)):
        (folder / f"{split}.txt").write_text("\n".join(lines[split][:count]) + "\n")
        files[f"{split}_file"] = str(folder / f"{split}.txt")
    return files


def tiny_training(output_dir, small_corpus, **overrides) -> dict:
    settings = dict(
        output_dir=str(output_dir),
        genotype="DARTS_V2",
        hidden_size=32,
        epochs=6,
        batch_size=16,
        bptt=20,
        eval_batch_size=8,
        test_batch_size=8,
        learning_rate=5.0,
        asgd_patience=0,
        seed=0,
        dropout=0.1,
        dropout_h=0.1,
        dropout_x=0.1,
        dropout_i=0.1,
        dropout_e=0.0,
        **small_corpus,
    )
    return {**settings, **overrides}


def as_flags(settings: dict) -> list[str]:
    return [item for key, value in settings.items() for item in (f"--{key}", str(value))]


def test_training_lowers_perplexity_switches_to_asgd_and_keeps_the_best(tmp_path, small_corpus, run_script):
    run_script("train", "--recipe", "ptb", *as_flags(tiny_training(tmp_path, small_corpus)))
    history = json.loads((tmp_path / "training_log.json").read_text())
    results = json.loads((tmp_path / "all_results.json").read_text())
    perplexities = [record["valid_perplexity"] for record in history]
    # 574 after the first epoch, 532 at best (an untrained model is near the vocabulary size, 2,153 words): SGD
    # stopped improving, averaged SGD took over and found the best weights.
    assert results["valid_perplexity"] == pytest.approx(min(perplexities), rel=1e-5)
    assert min(perplexities) < 0.95 * perplexities[0] < results["vocab_size"] / 3
    assert results["switched_to_asgd"] and history[-1]["optimizer"] == "asgd"
    best = min(history, key=lambda record: record["valid_perplexity"])
    assert best["optimizer"] == "asgd" and best["saved"]
    # The saved model is the best one, with ASGD's averaged weights, loadable the transformers way with its tokenizer.
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(model, DartsRNNForCausalLM) and len(tokenizer) == model.config.vocab_size
    assert model.decoder.weight is model.model.encoder.weight
    validation = Path(small_corpus["validation_file"]).read_text().splitlines()
    columns = batchify(encode_lines(validation, tokenizer.get_vocab()), 8)
    assert evaluate_perplexity(model, columns, 20)["perplexity"] == pytest.approx(best["valid_perplexity"], rel=1e-5)
    # evaluate.py reproduces the reported test perplexity.
    run_script(
        "evaluate",
        "--model_name_or_path",
        tmp_path,
        "--batch_size",
        "8",
        "--bptt",
        "20",
        *as_flags(small_corpus),
    )
    evaluated = json.loads((tmp_path / "eval_results_test.json").read_text())
    assert evaluated["perplexity"] == pytest.approx(results["test_perplexity"], rel=1e-5)
    # ... and the validation perplexity, with the split named as PTB's files name it.
    run_script(
        "evaluate",
        "--model_name_or_path",
        tmp_path,
        "--split",
        "valid",
        "--batch_size",
        "8",
        "--bptt",
        "20",
        *as_flags(small_corpus),
    )
    evaluated = json.loads((tmp_path / "eval_results_valid.json").read_text())
    assert evaluated["perplexity"] == pytest.approx(results["valid_perplexity"], rel=1e-5)
    card = ModelCard.load(tmp_path / "README.md")
    assert "Test perplexity" in card.content and f"{results['test_perplexity']:.2f}" in card.text
    assert (tmp_path / "recurrent.png").exists() or (tmp_path / "recurrent.gv").exists()


def test_resume_in_the_asgd_phase_gives_the_same_weights(tmp_path, small_corpus):
    settings = tiny_training(tmp_path / "full", small_corpus, epochs=5, gradient_accumulation_steps=2)
    full = run_language_model_training(language_model_arguments(**settings))
    history = json.loads((tmp_path / "full" / "training_log.json").read_text())
    assert history[-1]["optimizer"] == "asgd"
    middle_of_last_epoch = history[-2]["step"] + 3
    parts = {**settings, "output_dir": str(tmp_path / "parts")}
    run_language_model_training(
        language_model_arguments(**parts, max_steps=middle_of_last_epoch, checkpointing_steps=middle_of_last_epoch)
    )
    assert (tmp_path / "parts" / "checkpoints" / f"checkpoint-{middle_of_last_epoch}").is_dir()
    resumed = run_language_model_training(language_model_arguments(**parts, resume_from_checkpoint="latest"))
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    assert json.loads((tmp_path / "parts" / "training_log.json").read_text()) == history
    saved_full, saved_resumed = (load_file(tmp_path / part / "model.safetensors") for part in ("full", "parts"))
    for name in saved_full:
        torch.testing.assert_close(saved_full[name], saved_resumed[name], rtol=0, atol=1e-6)


def test_gradient_accumulation_tar_and_learning_rate_scaling_make_the_expected_step():
    torch.manual_seed(0)
    model = DartsRNNForCausalLM(DartsRNNConfig(vocab_size=40, hidden_size=12, **NO_DROPOUT))
    inputs, targets = torch.randint(0, 40, (2, 4, 10))
    hidden = torch.randn(4, 12) * 0.1
    # The expected step: SGD at lr x 10/20 on the gradient of cross-entropy + beta x slowness over all 4 streams.
    expected = copy.deepcopy(model)
    outputs = expected(input_ids=inputs, hidden_state=hidden, output_hidden_states=True)
    loss = torch.nn.functional.cross_entropy(outputs.logits.flatten(0, 1), targets.flatten())
    (loss + 0.5 * activation_slowness(outputs.hidden_states[-1])).backward()
    with torch.no_grad():
        for parameter in expected.parameters():
            parameter -= 2.0 * 10 / 20 * parameter.grad
    for groups in (1, 2):
        trained = copy.deepcopy(model)
        optimizer = torch.optim.SGD(trained.parameters(), lr=2.0)
        step = language_model_step(
            trained,
            optimizer,
            inputs,
            targets,
            hidden,
            Accelerator(cpu=True),
            bptt=20,
            grad_clip=1e9,
            tar_beta=0.5,
            num_groups=groups,
        )
        assert optimizer.param_groups[0]["lr"] == 2.0  # the scaled rate was for this step only
        assert step.loss.item() == pytest.approx(loss.item(), rel=1e-5)  # reported without the regulariser
        torch.testing.assert_close(step.hidden_state, outputs.hidden_state.detach())
        assert torch.equal(step.predictions, outputs.logits.argmax(-1))  # the next tokens the step predicted
        for a, b in zip(trained.parameters(), expected.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_cross_entropy_that_consumes_its_logits_equals_pytorchs():
    """The same loss and logits' gradient as PyTorch's cross-entropy (float64, rows of `ignore_index` left out, more
    rows than one block of log-normalisers), the gradient written into the logits' own memory, and a second backward
    pass refused instead of computed from overwritten logits."""
    torch.manual_seed(0)
    rows, vocabulary = ConsumedLogitsCrossEntropy.ROWS + 44, 37
    logits = (torch.randn(rows, vocabulary, dtype=torch.float64) * 3).requires_grad_()
    targets = torch.randint(0, vocabulary, (rows,))
    targets[::7] = -100
    expected_loss = torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100)
    (expected_grad,) = torch.autograd.grad(expected_loss * 2.5, logits)
    consumed = logits.detach().clone().requires_grad_()
    scores = consumed * 1  # a non-leaf, as the decoder's output is
    loss = ConsumedLogitsCrossEntropy.apply(scores, targets, -100)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-12, atol=1e-12)
    storage = scores.data_ptr()
    (loss * 2.5).backward(retain_graph=True)
    torch.testing.assert_close(consumed.grad, expected_grad, rtol=1e-12, atol=1e-12)
    assert scores.data_ptr() == storage and torch.equal(scores.detach(), consumed.grad)  # computed in place
    with pytest.raises(RuntimeError, match="backward pass ran before: the logits are gone"):
        loss.backward()


def test_averaged_weights_are_asgds_running_mean_and_come_back():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.ASGD(layer.parameters(), lr=0.1, t0=0, lambd=0.0)
    iterates = []
    for _ in range(4):
        layer(torch.randn(5, 3)).pow(2).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        iterates.append(layer.weight.detach().clone())
    trained = layer.weight.detach().clone()
    with averaged_weights(optimizer):
        # With t0 = 0, torch's ASGD (as the original's) averages the iterates from its second step on.
        torch.testing.assert_close(layer.weight.detach(), torch.stack(iterates[1:]).mean(0))
    assert torch.equal(layer.weight.detach(), trained)


def test_the_switch_to_asgd_follows_the_original_non_monotone_rule():
    assert should_switch_to_asgd([5.0, 4.0, 3.0, 3.5], patience=0)
    assert not should_switch_to_asgd([5.0, 4.0, 3.0, 3.5], patience=1)  # 3.5 still beats 4.0 from before
    assert should_switch_to_asgd([5.0, 3.0, 4.0, 4.5, 4.2], patience=2)
    assert not should_switch_to_asgd([5.0, 3.0, 4.0, 4.5], patience=3)  # too few evaluations yet
    assert not should_switch_to_asgd([5.0, 4.0, 3.0, 2.0], patience=0)


def test_two_processes_train_like_one_process_with_their_columns(tmp_path, small_corpus, launch_two_processes):
    """Each process reads its own columns of the streams: 2 x 8 streams equal 1 x 16 (without dropout)."""
    settings = tiny_training(tmp_path / "one", small_corpus, epochs=2, **NO_DROPOUT)
    run_language_model_training(language_model_arguments(**settings))
    two = {**settings, "output_dir": str(tmp_path / "two"), "batch_size": 8}
    launch_two_processes(SCRIPTS / "train.py", "--recipe", "ptb", *as_flags(two))
    one_log, two_log = (json.loads((tmp_path / run / "training_log.json").read_text()) for run in ("one", "two"))
    assert [r["step"] for r in one_log] == [r["step"] for r in two_log]
    for a, b in zip(one_log, two_log):
        assert a["valid_perplexity"] == pytest.approx(b["valid_perplexity"], rel=1e-4)
    weights_one, weights_two = (load_file(tmp_path / run / "model.safetensors") for run in ("one", "two"))
    for name in weights_one:
        torch.testing.assert_close(weights_one[name], weights_two[name], rtol=1e-4, atol=1e-5)


def test_a_search_result_config_is_trained_on_the_corpus_vocabulary(tmp_path):
    genotype = {"recurrent": [["tanh", 0], ["relu", 1]], "concat": [1, 2]}
    DartsRNNConfig(genotype=genotype, vocab_size=99, hidden_size=20).save_pretrained(tmp_path)
    lines = {"train": ["a b c", "d"], "validation": ["e"], "test": ["a f"]}
    args = language_model_arguments(config_name=str(tmp_path))
    assert args.architecture(("hidden_size",)) == {}  # the search result's sizes are kept
    dropouts = {"dropout": 0.75, "dropout_h": 0.25, "dropout_x": 0.75, "dropout_i": 0.2, "dropout_e": 0.1}
    model, vocabulary = build_language_model(lines, dropouts, config_name=args.config_name, architecture={})
    config = model.config
    assert len(vocabulary) == config.vocab_size == 8  # a-f, <eos>, <unk>
    assert config.hidden_size == 20 and config.get_genotype().to_dict() == genotype  # sizes from the search result
    assert config.dropout_e == 0.1 and config.eos_token_id == vocabulary["<eos>"]  # the run's dropouts
    resize = language_model_arguments(config_name=str(tmp_path), hidden_size=16).architecture(("hidden_size",))
    assert resize == {"hidden_size": 16}  # unless given
    resized, _ = build_language_model(lines, dropouts, config_name=str(tmp_path), architecture=resize)
    assert resized.config.hidden_size == 16
    assert language_model_arguments(genotype="DARTS_V2").architecture(("hidden_size",)) == {"hidden_size": 850}


def test_language_model_training_arguments_and_sources_are_checked(tmp_path, small_corpus):
    with pytest.raises(ValueError, match="--bptt"):
        language_model_arguments(genotype="DARTS_V2", bptt=0)
    with pytest.raises(ValueError, match="--batch_size 10 must split into --gradient_accumulation_steps 3"):
        language_model_arguments(genotype="DARTS_V2", batch_size=10, gradient_accumulation_steps=3)
    with pytest.raises(ValueError, match="exactly one of --genotype"):
        language_model_arguments()
    with pytest.raises(ValueError, match="--recipe must be one of"):
        language_model_arguments(genotype="DARTS_V2", recipe="cifar")
    wikitext = language_model_arguments(genotype="DARTS_V2", recipe="wikitext2", dropout_h=0.3)
    assert (wikitext.hidden_size, wikitext.dropout_h, wikitext.weight_decay) == (700, 0.3, 5e-7)
    # A convolutional config is not a language model.
    DartsConfig().save_pretrained(tmp_path / "cnn")
    with pytest.raises(ValueError, match="not a DartsRNNConfig"):
        run_language_model_training(
            language_model_arguments(
                **tiny_training(tmp_path / "out", small_corpus, genotype=None, config_name=str(tmp_path / "cnn"))
            )
        )
    # A checkpoint whose tokenizer does not match its embedding.
    from darts_hub.models import build_tokenizer

    DartsRNNForCausalLM(DartsRNNConfig(vocab_size=50, hidden_size=8)).save_pretrained(tmp_path / "lm")
    build_tokenizer(vocabulary={"<unk>": 0, "<eos>": 1, "word": 2}).save_pretrained(tmp_path / "lm")
    with pytest.raises(ValueError, match="tokenizer of .* has 3 words but the model 50 embedding rows"):
        load_language_model(str(tmp_path / "lm"))


def test_training_pushes_exactly_its_files_and_a_failed_upload_raises_and_keeps_the_folder(
    tmp_path, small_corpus, monkeypatch
):
    from darts_hub.hub import HubPushError
    from darts_hub.training import publishing

    uploads = []

    def upload(folder, repo_id, files, token=None):
        uploads.append((repo_id, files))
        raise HubPushError("the Hub is unreachable")

    monkeypatch.setattr(publishing, "create_hub_repo", lambda repo_id, token=None, private=False: repo_id)
    monkeypatch.setattr(publishing, "push_folder", upload)
    settings = tiny_training(tmp_path, small_corpus, epochs=1, push_to_hub=True, hub_model_id="someone/darts-lm")
    with pytest.raises(HubPushError, match="unreachable"):
        run_language_model_training(language_model_arguments(**settings))
    [(repo_id, files)] = uploads
    assert repo_id == "someone/darts-lm" and not [name for name in files if name.startswith("checkpoints")]
    for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "all_results.json"):
        assert name in files
    record = json.loads((tmp_path / "run_record.json").read_text())
    assert record["status"] == "complete" and sorted(files) == sorted([*record["files"], "run_record.json"])
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config.hidden_size == 32  # the local copy is intact


def test_a_saved_model_continues_training_and_a_run_stopped_early_still_saves(tmp_path, small_corpus):
    # Stopped by --max_steps before the first evaluation: the folder still holds a complete model.
    first = run_language_model_training(
        language_model_arguments(**tiny_training(tmp_path / "first", small_corpus, max_steps=3))
    )
    assert json.loads((tmp_path / "first" / "all_results.json").read_text())["epochs"] == 0
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "first")
    for a, b in zip(first.state_dict().values(), saved.state_dict().values()):
        torch.testing.assert_close(a, b)
    # Continue from it with its own tokenizer (the corpus's words outside it would become <unk>).
    settings = tiny_training(tmp_path / "second", small_corpus, genotype=None, epochs=1, dropout=0.3)
    second = run_language_model_training(
        language_model_arguments(**settings, model_name_or_path=str(tmp_path / "first"))
    )
    assert second.config.vocab_size == first.config.vocab_size and second.config.dropout == 0.3
    tokenizers = [AutoTokenizer.from_pretrained(tmp_path / run).get_vocab() for run in ("first", "second")]
    assert tokenizers[0] == tokenizers[1]
    assert not torch.equal(second.model.encoder.weight, first.model.encoder.weight)


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_what_it_saved(tmp_path, small_corpus):
    settings = tiny_training(tmp_path, small_corpus, epochs=2, learning_rate=1e38, grad_clip=1e38)
    with pytest.raises(
        FloatingPointError, match=r"training loss of epoch 1 is (nan|inf): the run diverged.*--learning_rate"
    ):
        run_language_model_training(language_model_arguments(**settings))
    assert (tmp_path / "tokenizer.json").is_file() and not (tmp_path / "checkpoints").exists()


def test_export_onnx_writes_the_language_model_for_its_bptt(tmp_path, small_corpus):
    import onnxruntime

    run_language_model_training(
        language_model_arguments(**tiny_training(tmp_path / "lm", small_corpus, epochs=1, export="onnx"))
    )
    session = onnxruntime.InferenceSession(str(tmp_path / "lm" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "input_ids" and session.get_inputs()[0].shape[1] == 20  # --bptt
    assert "- `model.onnx`" in (tmp_path / "lm" / "README.md").read_text()
