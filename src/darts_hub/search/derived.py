"""The network a search found, ready to train from scratch: the config of the derived network, with the found
genotype, the paper's evaluation sizes (`recipes`) and the search's data settings. Kept beside the search, not in the
supernet's model file, so that the files that travel with a saved model need nothing from the rest of the package."""

from __future__ import annotations

from ..models import (
    DartsConfig,
    DartsRNNConfig,
    DartsRNNSearchModel,
    DartsSearchModel,
    NasBench201Config,
    NasBench201SearchModel,
)
from ..recipes import IMAGE_TRAINING, LANGUAGE_MODEL_TRAINING


# What a derived image classifier takes from the search's data.
IMAGE_DATA_SETTINGS = ("num_channels", "image_size", "image_mean", "image_std", "id2label", "label2id")


def derived_config(
    supernet: DartsSearchModel | DartsRNNSearchModel | NasBench201SearchModel, **overrides
) -> DartsConfig | DartsRNNConfig | NasBench201Config:
    """The config of the network `supernet` found (`supernet.genotype()`), any setting overridden by `overrides`.

    Convolutional: the paper's CIFAR-10 evaluation network (`IMAGE_TRAINING["cifar"]`: 36 channels, 20 cells,
    drop-path 0.2), the auxiliary head where its geometry fits (`DartsConfig.auxiliary_head_fits`), the classes,
    channels, image size and statistics of the search's data. Recurrent: the paper's PTB sizes
    (`LANGUAGE_MODEL_TRAINING["ptb"]`: 850) and the search's vocabulary size. NAS-Bench-201: the benchmark's network
    at the sizes of the search (the benchmark trains what it searches: 16 channels, 5 cells per stage).
    """
    if isinstance(supernet, DartsRNNSearchModel):
        settings = {
            "genotype": supernet.genotype(),
            "vocab_size": supernet.config.vocab_size,
            "hidden_size": LANGUAGE_MODEL_TRAINING["ptb"]["hidden_size"],
        }
        return DartsRNNConfig(**{**settings, **overrides})
    search = supernet.config
    data = {name: getattr(search, name) for name in IMAGE_DATA_SETTINGS}
    if isinstance(supernet, NasBench201SearchModel):
        settings = {"init_channels": search.init_channels, "cells_per_stage": search.cells_per_stage}
        return NasBench201Config(**{"genotype": supernet.genotype(), **settings, **data, **overrides})
    recipe = IMAGE_TRAINING["cifar"]
    settings = {
        "genotype": supernet.genotype(),
        "init_channels": recipe["init_channels"],
        "num_cells": recipe["num_cells"],
        "drop_path_prob": recipe["drop_path_prob"],
        **data,
    }
    config = DartsConfig(**{**settings, **overrides})
    if "use_auxiliary_head" not in overrides:
        config.use_auxiliary_head = config.auxiliary_head_fits
    return config


__all__ = ["derived_config"]
