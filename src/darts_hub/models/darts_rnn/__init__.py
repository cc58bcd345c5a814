from .configuration_darts_rnn import DartsRNNConfig
from .modeling_darts_rnn import DartsRNNCausalLMOutput, DartsRNNCell, DartsRNNForCausalLM, DartsRNNModel
from .tokenization_darts_rnn import build_tokenizer, vocabulary_in_order


__all__ = [
    "DartsRNNCausalLMOutput",
    "DartsRNNCell",
    "DartsRNNConfig",
    "DartsRNNForCausalLM",
    "DartsRNNModel",
    "build_tokenizer",
    "vocabulary_in_order",
]
