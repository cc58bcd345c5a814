"""Text corpora through `datasets`: the embedded corpus, token streams in the original vocabulary order, chunks."""

import itertools

import datasets
import pytest
import torch

from darts_hub.data.images import DataError
from darts_hub.data.text import (
    RandomLengthChunks,
    StreamChunks,
    batchify,
    embedded_corpus,
    encode_lines,
    find_text_column,
    load_text_dataset,
    split_lines,
)
from darts_hub.models import build_tokenizer, vocabulary_in_order


def test_embedded_corpus_is_deterministic_english_text():
    corpus = load_text_dataset()
    again = embedded_corpus()
    assert list(corpus) == ["train", "validation", "test"]
    assert corpus["test"]["sentence"] == again["test"]["sentence"]
    lines = split_lines(corpus)
    words = {split: sum(len(line.split()) for line in rows) for split, rows in lines.items()}
    assert words["train"] > 40_000 and words["validation"] > 1_000 and words["test"] > 1_000
    assert any("statement" in line for line in lines["train"])


def test_streams_follow_the_vocabulary_and_batchify_like_the_original():
    lines = {"train": ["a b", "c"], "validation": ["b d"], "test": ["e"]}
    vocabulary = vocabulary_in_order([lines["train"], lines["validation"], lines["test"]])
    stream = encode_lines(lines["train"] + ["z"], vocabulary)
    eos, unk = vocabulary["<eos>"], vocabulary["<unk>"]
    assert stream.tolist() == [vocabulary["a"], vocabulary["b"], eos, vocabulary["c"], eos, unk, eos]
    # The tokenizer encodes the same ids (without the line's <eos>: a prompt is continued, not ended).
    tokenizer = build_tokenizer(vocabulary=vocabulary)
    assert tokenizer("a b").input_ids == stream[:2].tolist()
    columns = batchify(torch.arange(10), 3)
    assert columns.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    chunks = list(StreamChunks(columns, 2))
    assert [c[0].shape for c in chunks] == [(3, 2)]  # 3 rows of which the last has no target
    assert torch.equal(chunks[0][1], columns[1:3].t())


def test_random_length_chunks_cover_the_stream_and_depend_on_seed_and_epoch():
    columns = batchify(torch.arange(20_000), 2)  # 10,000 steps
    chunks = RandomLengthChunks(columns, bptt=35, max_delta=20, seed=3)
    lengths = [length for _, length in chunks.chunks]
    starts = [start for start, _ in chunks.chunks]
    assert starts == [0, *itertools.accumulate(lengths[:-1])] and starts[-1] + lengths[-1] in (9_998, 9_999)
    assert min(lengths[:-1]) >= 5 and max(lengths) <= 55
    assert 32 < sum(lengths) / len(lengths) < 35  # mostly around 35, sometimes around 17.5
    assert sum(length < 26 for length in lengths) > 0.02 * len(lengths)  # the half-length draws
    inputs, targets = chunks[1]
    assert inputs.shape == (2, lengths[1]) and torch.equal(targets, columns[starts[1] + 1 : starts[2] + 1].t())
    first = list(chunks.chunks)
    chunks.set_epoch(1)
    assert chunks.chunks != first
    chunks.set_epoch(0)
    assert chunks.chunks == first == RandomLengthChunks(columns, 35, 20, seed=3).chunks
    # The search's rule: bptt tokens, or int(bptt / 2) with probability 0.05.
    search_lengths = [length for _, length in RandomLengthChunks(columns, 35, 0, seed=3, std=0.0).chunks[:-1]]
    assert set(search_lengths) == {35, 17} and search_lengths.count(17) < 0.1 * len(search_lengths)


def test_training_chunks_end_as_the_originals_without_a_one_step_chunk():
    """The original's training loop runs `while i < N - 2`: the last chunk has at least two steps (a chunk of one has
    no consecutive steps for the temporal activation regulariser, whose mean would be NaN). Evaluation keeps every
    target."""
    ends = set()
    for steps in range(40, 80):
        columns = batchify(torch.arange(2 * steps), 2)
        chunks = RandomLengthChunks(columns, bptt=10, max_delta=0, seed=0, std=0.0).chunks
        assert min(length for _, length in chunks) >= 2
        covered = chunks[-1][0] + chunks[-1][1]
        assert covered == steps - 1 or covered == steps - 2  # the last target, or one short of it
        ends.add(steps - 1 - covered)
        assert sum(length for _, length in StreamChunks(columns, 10).chunks) == steps - 1
    assert ends == {0, 1}  # the boundary case (a rest of one step) happened and was left out


def test_bad_text_data_is_refused():
    numbers = datasets.Dataset.from_dict({"id": [1, 2], "score": [0.5, 0.1]})
    with pytest.raises(DataError, match=r"text column among \['id', 'score'\].*--text_column_name"):
        find_text_column(numbers)
    empty = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({"text": ["some words"] if split != "test" else [""]})
            for split in ("train", "validation", "test")
        }
    )
    with pytest.raises(DataError, match="test split.*no words"):
        split_lines(empty)
    with pytest.raises(DataError, match="too short"):
        batchify(torch.arange(3), 2)


def test_local_text_files_and_offline_hub_names(tmp_path, monkeypatch):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text(f"the {split} text\nsecond line\n")
    corpus = load_text_dataset(
        train_file=str(tmp_path / "train.txt"),
        validation_file=str(tmp_path / "valid.txt"),
        test_file=str(tmp_path / "test.txt"),
    )
    assert split_lines(corpus)["validation"] == ["the valid text", "second line"]
    with pytest.raises(DataError, match="also pass the test file"):
        load_text_dataset(train_file=str(tmp_path / "train.txt"), validation_file=str(tmp_path / "valid.txt"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="--train_file"):
        load_text_dataset("Salesforce/wikitext", "wikitext-2-v1")
