from .configuration_darts import DartsConfig
from .modeling_darts import (
    DartsForImageClassification,
    DartsImageClassifierOutput,
    DartsModel,
    DartsModelOutput,
    DartsPreTrainedModel,
    image_processor_for,
)


__all__ = [
    "DartsConfig",
    "DartsForImageClassification",
    "DartsImageClassifierOutput",
    "DartsModel",
    "DartsModelOutput",
    "DartsPreTrainedModel",
    "image_processor_for",
]
