"""Word-level language-modelling corpora through `datasets`: Penn Treebank, WikiText-2, any dataset with a text
column, local text files, and the embedded default (the English text of Python's own `pydoc_data.topics`).

Each row is one line of text; a line is split on whitespace and `<eos>` is appended (the original code's rule). The
token ids of a split form one stream, cut into `batch_size` parallel columns (`[length, batch]`, as the original's
`batchify`) through which the recurrent state is carried.
"""

from __future__ import annotations

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..models.tokenization_darts_rnn import EOS, UNK
from .images import DataError


PYDOC = "pydoc"
SPLITS = ("train", "validation", "test")
TEXT_COLUMN_CANDIDATES = ("sentence", "text", "content", "line")


def embedded_corpus() -> datasets.DatasetDict:
    """The topics of Python's interactive help (`pydoc_data.topics`, shipped with every Python), one non-empty line
    per row in a `sentence` column (as Penn Treebank). Topics are sorted by name and split deterministically: every
    tenth topic from the 9th goes to validation, from the 10th to test, the rest to train."""
    from pydoc_data.topics import topics

    rows = {split: [] for split in SPLITS}
    for index, name in enumerate(sorted(topics)):
        split = {8: "validation", 9: "test"}.get(index % 10, "train")
        rows[split] += [line.strip() for line in topics[name].splitlines() if line.strip()]
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_dict({"sentence": lines}) for split, lines in rows.items()}
    )


def load_text_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    dataset_revision: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
) -> datasets.DatasetDict:
    """Train/validation/test splits of a text corpus: local text files (one line per row), a Hub dataset (e.g.
    `Salesforce/wikitext` with `wikitext-2-v1`; Penn Treebank as the parquet conversion of `ptb_text_only`, revision
    `refs/convert/parquet`), or, with neither, the embedded pydoc corpus."""
    if train_file:
        files = {"train": train_file, "validation": validation_file, "test": test_file}
        missing = [split for split, path in files.items() if not path]
        if missing:
            raise DataError(f"With --train_file, also pass the {' and '.join(missing)} file(s).")
        return datasets.load_dataset("text", data_files=files)
    if not dataset_name or dataset_name == PYDOC:
        return embedded_corpus()
    try:
        return datasets.load_dataset(dataset_name, dataset_config_name, revision=dataset_revision)
    except (ConnectionError, OSError) as error:
        raise DataError(
            f"Could not load the dataset {dataset_name!r}: {error}\nThe Hub is unreachable or offline mode is on "
            "(HF_HUB_OFFLINE=1). Pass local text files with --train_file/--validation_file/--test_file, or leave out "
            "--dataset_name to use the embedded corpus."
        ) from error


def find_text_column(dataset: datasets.Dataset, text_column_name: str | None = None) -> str:
    """The named column, else a usual name, else the only string column."""
    features = dataset.features
    if text_column_name is not None:
        if text_column_name not in features:
            raise DataError(f"The dataset has no column {text_column_name!r}; its columns are {list(features)}.")
        return text_column_name
    strings = [
        name for name, feature in features.items() if getattr(feature, "dtype", None) in ("string", "large_string")
    ]
    named = [name for name in TEXT_COLUMN_CANDIDATES if name in strings]
    if named or len(strings) == 1:
        return (named or strings)[0]
    raise DataError(f"Could not find the text column among {list(features)}: name it with --text_column_name.")


def split_lines(dataset: datasets.DatasetDict, text_column_name: str | None = None) -> dict[str, list[str]]:
    """The lines of every split (all three must exist and hold text)."""
    missing = [split for split in SPLITS if split not in dataset]
    if missing:
        raise DataError(f"The corpus has no {missing} split(s); its splits are {list(dataset)}.")
    column = find_text_column(dataset["train"], text_column_name)
    lines = {split: dataset[split][column] for split in SPLITS}
    empty = [split for split, rows in lines.items() if not any(row.split() for row in rows)]
    if empty:
        raise DataError(f"The {' and '.join(empty)} split(s) hold no words.")
    return lines


def load_lines(text_column_name: str | None = None, **source) -> dict[str, list[str]]:
    """The lines of the train, validation and test splits of the corpus `source` names (`load_text_dataset`'s
    arguments)."""
    return split_lines(load_text_dataset(**source), text_column_name)


def encode_lines(lines: list[str], vocabulary: dict[str, int]) -> torch.Tensor:
    """One stream of token ids: every line's words then `<eos>`; unknown words become `<unk>`."""
    unknown, eos = vocabulary[UNK], vocabulary[EOS]
    ids = []
    for line in lines:
        ids.extend(vocabulary.get(word, unknown) for word in line.split())
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def batchify(stream: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a stream into `batch_size` contiguous columns, `[length, batch_size]` (the remainder is dropped)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    length = stream.numel() // batch_size
    if length < 2:
        raise DataError(f"A stream of {stream.numel()} tokens is too short for {batch_size} columns.")
    return stream[: length * batch_size].view(batch_size, length).t().contiguous()


class StreamChunks(Dataset):
    """The consecutive chunks of a `[length, batch]` stream, `(inputs, targets)` batch-first `[batch, steps]` with the
    targets shifted by one token: chunks of `bptt` steps (the last may be shorter)."""

    def __init__(self, columns: torch.Tensor, bptt: int):
        if bptt < 1:
            raise ValueError(f"The sequence length (bptt) must be at least 1, got {bptt}.")
        self.columns, self.bptt = columns, bptt
        self.chunks = self.cut(bptt for _ in range(columns.shape[0]))

    def cut(self, lengths, shortest: int = 1) -> list[tuple[int, int]]:
        """(start, length) of consecutive chunks of the given lengths, up to the stream's last target; a rest of fewer
        than `shortest` steps is left out."""
        last = self.columns.shape[0] - 1
        chunks, start = [], 0
        for length in lengths:
            if last - start < shortest:
                break
            chunks.append((start, min(length, last - start)))
            start += length
        return chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start, length = self.chunks[index]
        return self.columns[start : start + length].t(), self.columns[start + 1 : start + 1 + length].t()


class RandomLengthChunks(StreamChunks):
    """Chunks of random length, the original's rule (from AWD-LSTM): around `bptt` (around `bptt / 2` with
    probability 0.05), normal with standard deviation `std`, at least 5 (or `bptt` if smaller) and at most
    `bptt + max_delta`. The original training uses std 5 and max_delta 20; its search std 0 (lengths `bptt` or
    `int(bptt / 2)`). The lengths are drawn from `(seed, epoch)`, so every epoch cuts the stream differently and a
    resumed epoch cuts it as before. As in the original's training loop (`while i < N - 2`), no chunk is shorter than
    two steps: the temporal activation regulariser compares consecutive steps, and one step has none."""

    def __init__(self, columns: torch.Tensor, bptt: int, max_delta: int, seed: int, std: float = 5.0):
        super().__init__(columns, bptt)
        self.max_delta, self.seed, self.std = max_delta, seed, std
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        generator = np.random.default_rng([self.seed, epoch])

        def lengths():
            while True:
                mean = self.bptt if generator.random() < 0.95 else self.bptt / 2
                length = max(min(5, self.bptt), int(generator.normal(mean, self.std)))
                yield min(length, self.bptt + self.max_delta)

        self.chunks = self.cut(lengths(), shortest=2)


def _only_item(items: list):
    return items[0]


class ChunkLoader(DataLoader):
    """The chunks in order, one per step (a map-style dataset read one item at a time, so that a resumed epoch can
    skip chunks); `set_epoch` re-cuts a `RandomLengthChunks` stream."""

    def __init__(self, chunks: StreamChunks):
        super().__init__(chunks, batch_size=1, collate_fn=_only_item, generator=torch.Generator())

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


__all__ = [
    "PYDOC",
    "ChunkLoader",
    "RandomLengthChunks",
    "StreamChunks",
    "batchify",
    "embedded_corpus",
    "encode_lines",
    "find_text_column",
    "load_lines",
    "load_text_dataset",
    "split_lines",
]
