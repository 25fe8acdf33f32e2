"""Counting parameters the way the papers do (see ``paper.PaperParameters``)."""

import math

BATCHNORM_WEIGHTS = ("gamma", "beta")


def count_parameters(model, include_batchnorm: bool = True) -> int:
    """Trainable parameters of ``model``, each shared weight counted once.

    With ``include_batchnorm=False`` only the conv and dense weights count (BN's scale and
    shift are left out), the convention that reproduces He et al. 2016's ResNet-1001 figure.
    """
    return sum(math.prod(weight.shape) for weight in model.trainable_weights
               if include_batchnorm or weight.name not in BATCHNORM_WEIGHTS)


def format_millions(count: int, like: str) -> str:
    """``count`` in millions with as many decimals as the paper's figure ``like`` (``"1.7M"``)."""
    decimals = len(like.rstrip("M").partition(".")[2])
    return f"{count / 1e6:.{decimals}f}M"
