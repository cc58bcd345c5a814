"""The paper's settings for each task, as data (Liu et al., 2019, Sec. 3 and Appendix A, and the original code's
defaults). The command-line defaults, the converter's architectures, the network a search derives and the tests read
them here, so that each number is written once. The mappings are read-only.
"""

from types import MappingProxyType


def _recipe(**settings) -> MappingProxyType:
    return MappingProxyType(settings)


# Convolutional cell search on CIFAR-10 (Sec. 3.1.1, A.1.1): a supernet of 8 cells, 16 channels, 4 nodes per cell.
CIFAR10_SEARCH = _recipe(
    init_channels=16,
    num_cells=8,
    num_nodes=4,
    multiplier=4,
    epochs=50,
    batch_size=64,
    train_portion=0.5,
    learning_rate=0.025,
    learning_rate_min=0.001,
    momentum=0.9,
    weight_decay=3e-4,
    grad_clip=5.0,
    arch_learning_rate=3e-4,
    arch_weight_decay=1e-3,
    arch_beta1=0.5,
    arch_beta2=0.999,
)

# Recurrent cell search on Penn Treebank (Sec. 3.1.2, A.1.2): sizes 300, 8 nodes, the original's dropouts.
PTB_SEARCH = _recipe(
    hidden_size=300,
    num_nodes=8,
    dropout=0.75,
    dropout_h=0.25,
    dropout_x=0.75,
    dropout_i=0.2,
    dropout_e=0.0,
    epochs=50,
    batch_size=256,
    eval_batch_size=10,
    bptt=35,
    learning_rate=20.0,
    weight_decay=5e-7,
    grad_clip=0.25,
    tar_beta=1e-3,
    arch_learning_rate=3e-3,
    arch_weight_decay=1e-3,
)

# Training a found cell from scratch (Sec. 3.3, A.2): CIFAR-10 (20 cells, 36 channels, the released 3.3M network)
# and ImageNet in the mobile setting (14 cells, 48 channels, 4.7M).
IMAGE_TRAINING = MappingProxyType(
    {
        "cifar": _recipe(
            epochs=600,
            batch_size=96,
            learning_rate=0.025,
            lr_schedule="cosine",
            lr_gamma=0.97,
            momentum=0.9,
            weight_decay=3e-4,
            init_channels=36,
            num_cells=20,
            auxiliary_weight=0.4,
            cutout=16,
            drop_path_prob=0.2,
            grad_clip=5.0,
            label_smoothing=0.0,
            stem="cifar",
        ),
        "imagenet": _recipe(
            epochs=250,
            batch_size=128,
            learning_rate=0.1,
            lr_schedule="exponential",
            lr_gamma=0.97,
            momentum=0.9,
            weight_decay=3e-5,
            init_channels=48,
            num_cells=14,
            auxiliary_weight=0.4,
            cutout=0,
            drop_path_prob=0.0,
            grad_clip=5.0,
            label_smoothing=0.1,
            stem="imagenet",
        ),
    }
)

# Training a recurrent cell from scratch (Sec. 3.3, A.2): what differs between Penn Treebank and WikiText-2; the
# rest (batch 64, bptt 35, SGD lr 20 then averaged SGD, clip 0.25, TAR 1e-3, dropouts) is common, below.
LANGUAGE_MODEL_TRAINING = MappingProxyType(
    {
        "ptb": _recipe(hidden_size=850, dropout_h=0.25, weight_decay=8e-7),
        "wikitext2": _recipe(hidden_size=700, dropout_h=0.15, weight_decay=5e-7),
    }
)
LANGUAGE_MODEL_TRAINING_COMMON = _recipe(
    epochs=8000,
    batch_size=64,
    eval_batch_size=10,
    test_batch_size=1,
    bptt=35,
    max_seq_len_delta=20,
    learning_rate=20.0,
    grad_clip=0.25,
    tar_beta=1e-3,
    asgd_patience=5,
    dropout=0.75,
    dropout_x=0.75,
    dropout_i=0.2,
    dropout_e=0.1,
)

# RobustDARTS's early stopping (DARTS-ES; Zela et al., 2020, and their code's defaults): local averages over windows
# of 5 eigenvalue measurements; stop when one exceeds the average 4 measurements before it by 1.3x, not before 10.
EIGENVALUE_EARLY_STOPPING = _recipe(window=5, factor=1.3, lag=4, start_epoch=10)

# beta-DARTS's beta-decay (Ye et al., 2022, and their code): weight 50 * epoch / 100, i.e. 0.5 per epoch.
BETA_DECAY = _recipe(rate=0.5)

# SDARTS-RS's random smoothing (Chen & Hsieh, 2020, and their code): noise radius 0.03 growing linearly to 0.3.
RANDOM_SMOOTHING = _recipe(epsilon=0.3, start=0.03)

# DARTS-'s auxiliary skip connection (Chu et al., 2021, and their code): weight 1 decaying linearly to 0.
AUXILIARY_SKIP = _recipe(initial_weight=1.0)

# GDAS's Gumbel temperature (Dong & Yang 2019, and their code): 10 annealed linearly to 0.1.
GDAS = _recipe(temperature_max=10.0, temperature_min=0.1)

# DrNAS's KL term towards the uniform Dirichlet (Chen et al. 2021; their code's scale).
DRNAS = _recipe(kl_scale=1e-3)

# FairDARTS (Chu et al. 2020, and their code): the zero-one loss weighted 10. (Its threshold, 0.85, is the default
# of `DartsSearchConfig.operation_threshold`: the model files, which travel as remote code, import nothing else.)
FAIRDARTS = _recipe(zero_one_weight=10.0)


__all__ = [
    "AUXILIARY_SKIP",
    "BETA_DECAY",
    "CIFAR10_SEARCH",
    "DRNAS",
    "EIGENVALUE_EARLY_STOPPING",
    "FAIRDARTS",
    "GDAS",
    "IMAGE_TRAINING",
    "LANGUAGE_MODEL_TRAINING",
    "LANGUAGE_MODEL_TRAINING_COMMON",
    "PTB_SEARCH",
    "RANDOM_SMOOTHING",
]
