"""The files that define the DARTS models: configurations, networks, the word tokenizer, the search supernets, and
the genotypes and operations they are built from.

They import only each other (relatively), torch, transformers and tokenizers, so that they can travel with a saved
folder as custom code (`auto_map`, `trust_remote_code=True`) and load where darts-hub is not installed.
"""

from .configuration_darts import DartsConfig
from .configuration_darts_rnn import DartsRNNConfig
from .configuration_nas_bench_201 import NasBench201Config
from .modeling_darts import (
    DartsForImageClassification,
    DartsImageClassifierOutput,
    DartsModel,
    DartsModelOutput,
    DartsPreTrainedModel,
    image_processor_for,
)
from .modeling_darts_rnn import DartsRNNCausalLMOutput, DartsRNNCell, DartsRNNForCausalLM, DartsRNNModel
from .modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel
from .modeling_darts_search import DartsSearchConfig, DartsSearchModel
from .modeling_nas_bench_201 import NasBench201ForImageClassification, NasBench201Model
from .modeling_nas_bench_201_search import NasBench201SearchConfig, NasBench201SearchModel
from .tokenization_darts_rnn import build_tokenizer, vocabulary_in_order


__all__ = [
    # configurations
    "DartsConfig",
    "DartsRNNConfig",
    "DartsRNNSearchConfig",
    "DartsSearchConfig",
    "NasBench201Config",
    "NasBench201SearchConfig",
    # image classifiers and their search supernet
    "DartsPreTrainedModel",
    "DartsModel",
    "DartsForImageClassification",
    "DartsModelOutput",
    "DartsImageClassifierOutput",
    "DartsSearchModel",
    "image_processor_for",
    # NAS-Bench-201's networks
    "NasBench201Model",
    "NasBench201ForImageClassification",
    "NasBench201SearchModel",
    # language models and their search supernet
    "DartsRNNCell",
    "DartsRNNModel",
    "DartsRNNForCausalLM",
    "DartsRNNCausalLMOutput",
    "DartsRNNSearchModel",
    "build_tokenizer",
    "vocabulary_in_order",
]
