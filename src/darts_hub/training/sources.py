"""Where a run's network comes from: a saved config or model, loaded with errors that name what is wrong."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedConfig, PreTrainedModel

from ..kernels import kernelize


def load_pretrained(model_class, name_or_path: str, **kwargs):
    """`model_class.from_pretrained(name_or_path, **kwargs)` with its fast paths swapped in (`kernelize`); a broken
    weights file is named in the error."""
    try:
        return kernelize(model_class.from_pretrained(name_or_path, **kwargs))
    except SafetensorError as error:
        weights = Path(name_or_path) / "model.safetensors"
        raise OSError(
            f"Could not read the weights {weights if weights.is_file() else 'model.safetensors of ' + name_or_path}: "
            f"{error}. The file is truncated or corrupt: save or download it again."
        ) from error


def load_config(
    name_or_path: str, flag: str, config_class: type[PreTrainedConfig] | tuple[type[PreTrainedConfig], ...]
) -> PreTrainedConfig:
    """The config of a folder or Hub id named by `flag`, which must be a `config_class` (or one of them)."""
    try:
        config = AutoConfig.from_pretrained(name_or_path)
        recorded, _ = PreTrainedConfig.get_config_dict(name_or_path)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"Could not load the config of {flag} {name_or_path!r}: {error}") from error
    if not isinstance(config, config_class):
        names = " or ".join(c.__name__ for c in (config_class if isinstance(config_class, tuple) else (config_class,)))
        raise ValueError(f"{flag} {name_or_path!r} is a {type(config).__name__}, not a {names}.")
    if "genotype" not in recorded:
        raise ValueError(
            f"The config of {flag} {name_or_path!r} names no genotype, so it does not say which cells to train: add "
            'a "genotype" (a zoo name such as "DARTS_V2", or the cells as JSON), or pass --genotype instead.'
        )
    return config


def load_language_model(name_or_path: str, **config_overrides) -> tuple[PreTrainedModel, dict[str, int]]:
    """A saved language model and its vocabulary (from its tokenizer), which must have one word per embedding row."""
    model = load_pretrained(AutoModelForCausalLM, name_or_path, **config_overrides)
    vocabulary = AutoTokenizer.from_pretrained(name_or_path).get_vocab()
    if len(vocabulary) != model.config.vocab_size:
        raise ValueError(
            f"The tokenizer of {name_or_path} has {len(vocabulary)} words but the model {model.config.vocab_size} "
            "embedding rows: save the model with the tokenizer it was trained with."
        )
    return model, vocabulary


__all__ = ["load_config", "load_language_model", "load_pretrained"]
