"""The word-level tokenizer of the DARTS language models, built with `tokenizers`.

The vocabulary follows the original code's order rule, so that token ids match its checkpoints: words in order of
first appearance over the training, then validation, then test text, with `<eos>` appended to every line. Text is
split on whitespace. The tokenizer does not append `<eos>` to what it encodes (a prompt must not end the text before
generation starts); the corpus streams add it after every line themselves (`data.text.encode_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


EOS = "<eos>"
UNK = "<unk>"


def vocabulary_in_order(splits: Iterable[Iterable[str]]) -> dict[str, int]:
    """Word -> id in order of first appearance over the splits' lines (train, valid, test), `<eos>` after each
    line; `<unk>` is added at the end if the text never contains it."""
    vocabulary: dict[str, int] = {}
    for lines in splits:
        for line in lines:
            for word in line.split() + [EOS]:
                if word not in vocabulary:
                    vocabulary[word] = len(vocabulary)
    if UNK not in vocabulary:
        vocabulary[UNK] = len(vocabulary)
    return vocabulary


def build_tokenizer(splits: Iterable[Iterable[str]] | None = None, vocabulary: dict[str, int] | None = None):
    """A `PreTrainedTokenizerFast` (loadable with `AutoTokenizer`) over the vocabulary of `splits` (or a given one).

    `<eos>` doubles as the padding token (left padding, for batched generation); it is not appended to encoded text,
    so that a prompt can be continued. Decoded text has a space before every word, the first included.
    """
    if vocabulary is None:
        if splits is None:
            raise ValueError("Pass the text splits (train, valid, test) or a vocabulary.")
        vocabulary = vocabulary_in_order(splits)
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Every word decodes with the space before it, so that decoded continuations append to their prompt (the
    # text-generation pipeline's full text is the prompt + the decoded new tokens).
    backend.decoder = decoders.Sequence([decoders.Replace(Regex("^"), " "), decoders.Fuse()])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNK,
        eos_token=EOS,
        pad_token=EOS,
        padding_side="left",
    )


__all__ = ["EOS", "UNK", "build_tokenizer", "vocabulary_in_order"]
