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


def estimate_size(settings: dict) -> tuple[int, int]:
    """``(parameters, weighted layers)`` of the network that ``settings`` (the builder settings
    of ``keras_resnets.registry.resolve``) would build, counted without building it: conv and
    dense weights (with biases where the convs have them) plus BN's gamma and beta, one BN per
    conv. Within a few percent of ``count_parameters`` (BN widths differ slightly between
    orderings); units sharing weights count their convs once. Weighted layers are the convs
    and the dense layer, each shared conv once per step (what building and running cost)."""
    from keras_resnets.architectures import BASE_WIDTHS, STEM_WIDTH
    from keras_resnets.branches import BOTTLENECK_EXPANSION, branch_convs

    widths = settings.get("widths", BASE_WIDTHS)
    units = settings["units_per_stage"]
    units = (units,) * len(widths) if isinstance(units, int) else tuple(units)
    branch = settings.get("branch", "basic")
    expansion = BOTTLENECK_EXPANSION if branch == "bottleneck" else 1
    widen = settings.get("widen", 1)
    bias = 1 if settings.get("conv_bias") else 0
    shortcut = settings.get("shortcut", "identity")
    shared = settings.get("shared_blocks", 0)
    unshared_bn = settings.get("share_batchnorm", True) is not True

    def conv(kernel, inputs, outputs):  # the conv and the BN that goes with it
        return kernel * kernel * inputs * outputs + bias * outputs + 2 * outputs

    channels = settings.get("input_shape", (32, 32, 3))[-1]
    width = settings.get("stem_width", STEM_WIDTH)
    parameters, layers = conv(3, channels, width), 1
    for stage, (count, stage_width) in enumerate(zip(units, widths), start=1):
        out = stage_width * widen * expansion
        strides = 2 if settings.get("downsample", "conv") == "conv" and stage > 1 else 1
        for index in range(count):
            first = index == 0
            unit_strides = strides if first else 1
            reshapes = unit_strides != 1 or width != out
            inputs, unit = width, 0
            for shape in branch_convs(branch, out, unit_strides):
                unit += conv(shape.kernel_size, inputs, shape.filters)
                inputs = shape.filters
            convs = len(branch_convs(branch, out, unit_strides))
            if shortcut == "conv" or (reshapes and settings.get("projection") != "pad"):
                unit, convs = unit + conv(1, width, out), convs + 1
            if shortcut.startswith("gate"):
                unit, convs = unit + width * out + out, convs + 1
            step_shared = index >= count - shared
            if step_shared and index > count - shared:  # a later step of a shared stack
                unit = 2 * out * convs if unshared_bn else 0
            parameters, layers, width = parameters + unit, layers + convs, out
    grid = settings.get("head_grid") or 1
    parameters += width * grid * grid * settings.get("num_classes", 10) + settings.get(
        "num_classes", 10)
    return parameters, layers + 1
