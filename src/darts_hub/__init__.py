"""darts-hub: DARTS (Differentiable Architecture Search) for PyTorch and the Hugging Face ecosystem.

Importing the package registers its configs and models with the transformers Auto classes, so that
`AutoModelForImageClassification.from_pretrained(...)` and `pipeline(...)` load DARTS checkpoints.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForImageClassification

from .counting import count_mult_adds, count_parameters
from .models import (
    DartsConfig,
    DartsForImageClassification,
    DartsModel,
    DartsRNNConfig,
    DartsRNNForCausalLM,
    DartsRNNModel,
    NasBench201Config,
    NasBench201ForImageClassification,
    NasBench201Model,
)
from .models.genotypes import (
    CNN_GENOTYPES,
    PRIMITIVES,
    RECURRENT_GENOTYPES,
    RECURRENT_PRIMITIVES,
    Genotype,
    NasBench201Genotype,
    RecurrentGenotype,
    derive_genotype,
    derive_recurrent_genotype,
    get_genotype,
    load_genotype,
)
from .models.modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel
from .models.modeling_darts_search import DartsSearchConfig, DartsSearchModel
from .models.modeling_nas_bench_201_search import NasBench201SearchConfig, NasBench201SearchModel


__version__ = "0.1.0"

AutoConfig.register(DartsConfig.model_type, DartsConfig, exist_ok=True)
AutoModel.register(DartsConfig, DartsModel, exist_ok=True)
AutoModelForImageClassification.register(DartsConfig, DartsForImageClassification, exist_ok=True)
AutoConfig.register(DartsRNNConfig.model_type, DartsRNNConfig, exist_ok=True)
AutoModel.register(DartsRNNConfig, DartsRNNModel, exist_ok=True)
AutoModelForCausalLM.register(DartsRNNConfig, DartsRNNForCausalLM, exist_ok=True)
AutoConfig.register(DartsSearchConfig.model_type, DartsSearchConfig, exist_ok=True)
AutoModel.register(DartsSearchConfig, DartsSearchModel, exist_ok=True)
AutoModelForImageClassification.register(DartsSearchConfig, DartsSearchModel, exist_ok=True)
AutoConfig.register(DartsRNNSearchConfig.model_type, DartsRNNSearchConfig, exist_ok=True)
AutoModel.register(DartsRNNSearchConfig, DartsRNNSearchModel, exist_ok=True)
AutoConfig.register(NasBench201Config.model_type, NasBench201Config, exist_ok=True)
AutoModel.register(NasBench201Config, NasBench201Model, exist_ok=True)
AutoModelForImageClassification.register(NasBench201Config, NasBench201ForImageClassification, exist_ok=True)
AutoConfig.register(NasBench201SearchConfig.model_type, NasBench201SearchConfig, exist_ok=True)
AutoModel.register(NasBench201SearchConfig, NasBench201SearchModel, exist_ok=True)
AutoModelForImageClassification.register(NasBench201SearchConfig, NasBench201SearchModel, exist_ok=True)

# Every folder a config or model is saved into also gets its code (an `auto_map` in config.json and the files of
# `darts_hub/models` it needs), so that it loads with `trust_remote_code=True` where darts-hub is not installed.
for config_class in (
    DartsConfig,
    DartsRNNConfig,
    DartsSearchConfig,
    DartsRNNSearchConfig,
    NasBench201Config,
    NasBench201SearchConfig,
):
    config_class.register_for_auto_class()
DartsForImageClassification.register_for_auto_class("AutoModelForImageClassification")
DartsModel.register_for_auto_class("AutoModel")
DartsRNNForCausalLM.register_for_auto_class("AutoModelForCausalLM")
DartsRNNModel.register_for_auto_class("AutoModel")
DartsSearchModel.register_for_auto_class("AutoModelForImageClassification")
DartsRNNSearchModel.register_for_auto_class("AutoModel")
NasBench201ForImageClassification.register_for_auto_class("AutoModelForImageClassification")
NasBench201Model.register_for_auto_class("AutoModel")
NasBench201SearchModel.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "CNN_GENOTYPES",
    "PRIMITIVES",
    "RECURRENT_GENOTYPES",
    "RECURRENT_PRIMITIVES",
    "DartsConfig",
    "DartsForImageClassification",
    "DartsModel",
    "DartsRNNConfig",
    "DartsRNNForCausalLM",
    "DartsRNNModel",
    "DartsRNNSearchConfig",
    "DartsRNNSearchModel",
    "DartsSearchConfig",
    "DartsSearchModel",
    "Genotype",
    "NasBench201Config",
    "NasBench201ForImageClassification",
    "NasBench201Genotype",
    "NasBench201Model",
    "NasBench201SearchConfig",
    "NasBench201SearchModel",
    "RecurrentGenotype",
    "count_mult_adds",
    "count_parameters",
    "derive_genotype",
    "derive_recurrent_genotype",
    "get_genotype",
    "load_genotype",
]
