"""Counting parameters the way the papers do (see ``paper.PaperParameters``)."""

import math

BATCHNORM_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def count_parameters(model, include_batchnorm: bool = True,
                     include_statistics: bool = False) -> int:
    """Parameters of ``model``, each shared weight counted once.

    By default the trainable ones. With ``include_batchnorm=False`` only the conv and dense
    weights count (no BN at all), the convention that reproduces He et al. 2016's ResNet-1001
    figure. With ``include_statistics=True`` BN's moving mean and variance count too: every
    weight Keras holds (``model.count_params()``), as Jastrzebski et al. 2018 count.
    """
    weights = model.weights if include_statistics else model.trainable_weights
    return sum(math.prod(weight.shape) for weight in weights
               if include_batchnorm or weight.name not in BATCHNORM_WEIGHTS)


def format_like(count: int, figure: str) -> str:
    """``count`` written as the paper writes ``figure``: in millions with as many decimals
    (``"1.7M"``), or in full with thousands separators (``"1,742,762"``)."""
    if not figure.endswith("M"):
        return f"{count:,}"
    decimals = len(figure.rstrip("M").partition(".")[2])
    return f"{count / 1e6:.{decimals}f}M"
