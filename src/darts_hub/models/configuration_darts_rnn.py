"""Configuration of the DARTS recurrent language models (Penn Treebank, WikiText-2)."""

from __future__ import annotations

from transformers import PreTrainedConfig

from .genotypes import RecurrentGenotype, as_genotype


class DartsRNNConfig(PreTrainedConfig):
    r"""
    Configuration of a word-level language model whose recurrent cell is a DARTS cell (Sec. 3.2 of the paper):
    embedding, one recurrent layer of the cell, output dropout, a decoder tied to the embedding.

    The defaults are the paper's Penn Treebank model (DARTS_V2 cell, sizes 850, vocabulary 10,000).

    Args:
        genotype (`dict`, `str` or `RecurrentGenotype`, *optional*, defaults to `"DARTS_V2"`):
            The cell: a recurrent zoo name (`"DARTS_V2"`, `"ENAS"`, ...), a `RecurrentGenotype`, or its JSON form.
        vocab_size (`int`, *optional*, defaults to 10000): size of the word vocabulary.
        hidden_size (`int`, *optional*, defaults to 850): embedding size = hidden size = last hidden size.
        dropout (`float`, *optional*, defaults to 0.75): locked dropout on the cell's outputs.
        dropout_h (`float`, *optional*, defaults to 0.25): variational dropout on the hidden state inside the cell.
        dropout_x (`float`, *optional*, defaults to 0.75): variational dropout on the cell's input.
        dropout_i (`float`, *optional*, defaults to 0.2): locked dropout on the embeddings.
        dropout_e (`float`, *optional*, defaults to 0.1): embedding (word) dropout: whole words are dropped.
        init_range (`float`, *optional*, defaults to 0.04): weights are initialised uniformly in +-init_range.
        tie_word_embeddings (`bool`, *optional*, defaults to `True`): the decoder shares the embedding matrix.
    """

    model_type = "darts_rnn"

    genotype: dict | str | RecurrentGenotype | None = None
    vocab_size: int = 10000
    hidden_size: int = 850
    dropout: float = 0.75
    dropout_h: float = 0.25
    dropout_x: float = 0.75
    dropout_i: float = 0.2
    dropout_e: float = 0.1
    init_range: float = 0.04
    tie_word_embeddings: bool = True
    num_hidden_layers: int = 1
    layer_types: list[str] | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self, **kwargs):
        self.genotype = as_genotype("DARTS_V2" if self.genotype is None else self.genotype, recurrent=True).to_dict()
        if self.vocab_size < 1 or self.hidden_size < 1:
            raise ValueError(
                f"vocab_size and hidden_size must be positive, got {self.vocab_size}, {self.hidden_size}."
            )
        for name in ("dropout", "dropout_h", "dropout_x", "dropout_i", "dropout_e"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")
        # One recurrent layer whose state generate() keeps in a linear-attention cache slot.
        self.num_hidden_layers = 1
        self.layer_types = ["linear_attention"]
        super().__post_init__(**kwargs)

    def get_genotype(self) -> RecurrentGenotype:
        return RecurrentGenotype.from_dict(self.genotype)


__all__ = ["DartsRNNConfig"]
