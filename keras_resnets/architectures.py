"""The CIFAR residual network of He et al. (Sec. 4 of the 2015 paper, reused in 2016).

Stem (3x3 conv, 16 filters), three stages of ``units_per_stage`` units at 32x32, 16x16 and 8x8,
then global average pooling and a dense layer. The same assembly gives every model of the zoo:
the unit's ordering, branch and shortcut vary, and so do the width (wide ResNets), the way of
downsampling (strided units, average pooling, or all in the stem for the single-representation
ResNet of Jastrzebski et al. 2018) and weight sharing of the top blocks of each stage.
"""

import keras
from keras import layers

from keras_resnets.branches import BOTTLENECK_EXPANSION
from keras_resnets.orderings import get_ordering
from keras_resnets.shared import SharedResidualStack
from keras_resnets.units import ResidualUnit, he_normal, kernel_regularizer, norm_op

STEM_WIDTH = 16
BASE_WIDTHS = (16, 32, 64)  # Unit output widths per stage; bottleneck units expand them x4.
DOWNSAMPLING = ("conv", "avgpool", "stem")


def resnet(units_per_stage, *, branch="basic", ordering="post", widen=1, downsample="conv",
           shared_blocks=0, share_batchnorm=True, num_classes=10, input_shape=(32, 32, 3),
           weight_decay=0.0, standardize=None, name="resnet", **unit_options):
    """A CIFAR ResNet with ``units_per_stage`` units in each of its three stages.

    Args:
        units_per_stage: n, so that depth = 3 * n * convs_per_unit + 2.
        branch, ordering, **unit_options: passed to every ``ResidualUnit`` (shortcut variant,
            its options, ``dropout_rate``).
        widen: width multiplier k of wide ResNets (stage widths 16k, 32k, 64k).
        downsample: ``conv`` (stride 2 in the first unit of stages 2 and 3, as the papers),
            ``avgpool`` (2x2 average pooling between stages) or ``stem`` (the stem downsamples
            to 8x8 and every unit keeps one representation size).
        shared_blocks: the top ``shared_blocks`` units of each stage share their conv weights.
        share_batchnorm: with sharing, share BN too (naive) or keep one BN per step.
        weight_decay: SGD weight decay on every conv and dense kernel.
        standardize: ``(mean, std)`` per channel on the images' own scale (0..255): the model
            starts with that standardisation (a ``Normalization`` layer saved with it) and
            takes raw images. ``None``: it takes images already standardised.
    Returns:
        A ``keras.Model`` mapping images to ``num_classes`` logits.
    """
    check_architecture(units_per_stage, downsample, shared_blocks)
    expansion = BOTTLENECK_EXPANSION if branch == "bottleneck" else 1
    widths = [width * widen * expansion for width in BASE_WIDTHS]
    unit_options.update(branch=branch, ordering=ordering, weight_decay=weight_decay)
    order = get_ordering(ordering)

    inputs = keras.Input(shape=input_shape, name="images")
    x = standardization(inputs, standardize)
    x = stem(x, order.stem, widths[-1] if downsample == "stem" else None, weight_decay)
    for stage, width in enumerate(widths, start=1):
        if downsample == "stem":
            width = widths[-1]
        if downsample == "avgpool" and stage > 1:
            x = layers.AveragePooling2D(2, name=f"stage{stage}_pool")(x)
        strides = 2 if downsample == "conv" and stage > 1 else 1
        x = residual_stage(x, stage, units_per_stage, width, strides, shared_blocks,
                           share_batchnorm, bool(order.preactivation), unit_options)
    outputs = head(x, order.head, num_classes, weight_decay)
    return keras.Model(inputs, outputs, name=name)


def check_architecture(units_per_stage, downsample="conv", shared_blocks=0):
    """Raise ``ValueError`` for settings no network can have, before any layer is built."""
    if int(units_per_stage) != units_per_stage or units_per_stage < 1:
        raise ValueError(f"units_per_stage must be a positive integer; got {units_per_stage}.")
    if downsample not in DOWNSAMPLING:
        raise ValueError(f"Unknown downsample {downsample!r}; accepted: {', '.join(DOWNSAMPLING)}.")
    if not 0 <= shared_blocks < units_per_stage:
        raise ValueError(
            f"shared_blocks must be in [0, {units_per_stage - 1}] for {units_per_stage} units per "
            f"stage (the first unit of a stage changes shape and cannot share); got {shared_blocks}.")


def standardization(images, standardize):
    """``(images - mean) / std`` per channel, the recipe's input scaling, inside the model."""
    if standardize is None:
        return images
    mean, std = (tuple(float(v) for v in values) for values in standardize)
    channels = images.shape[-1]
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ValueError(f"standardize must be (mean, std) with {channels} values each and "
                         f"std > 0; got {standardize}.")
    return layers.Normalization(mean=mean, variance=[s * s for s in std],
                                name="standardize")(images)


def stem(x, words, downsample_to_width, weight_decay):
    """3x3 conv with 16 filters, then the ordering's stem words. For the single-representation
    ResNet, two stride-2 3x3 convs then reach 8x8 at the final width before any unit."""
    widths = [STEM_WIDTH]
    if downsample_to_width:
        widths += [downsample_to_width // 2, downsample_to_width]
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, strides=1 if i == 0 else 2, padding="same", use_bias=False,
                          kernel_initializer=he_normal(),
                          kernel_regularizer=kernel_regularizer(weight_decay),
                          name=f"stem_conv{i + 1}")(x)
        is_last = i == len(widths) - 1
        for word in words if is_last else ("bn", "relu"):
            x = norm_op(word, name=f"stem{i + 1}_{word}")(x)
    return x


def residual_stage(x, stage, units, width, strides, shared_blocks, share_batchnorm,
                   preactivation, unit_options):
    """``units`` residual units; the first may change the shape, the top ``shared_blocks`` share
    weights. Pre-activation nets share the leading BN-ReLU with the shortcut on the very first
    unit (He et al. 2016, Sec. 4.1) and on projection units (the authors' code)."""
    for index in range(1, units - shared_blocks + 1):
        changes_shape = index == 1 and (strides != 1 or x.shape[-1] != width)
        first_of_net = stage == 1 and index == 1
        x = ResidualUnit(width, strides=strides if index == 1 else 1,
                         preactivate_shortcut=preactivation and (first_of_net or changes_shape),
                         name=f"stage{stage}_unit{index}", **unit_options)(x)
    if shared_blocks:
        x = SharedResidualStack(shared_blocks, width, share_batchnorm, unit_options,
                                name=f"stage{stage}_shared")(x)
    return x


def head(x, words, num_classes, weight_decay):
    """The final BN-ReLU of pre-activation nets, global average pooling, dense logits."""
    for word in words:
        x = norm_op(word, name=f"final_{word}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return layers.Dense(num_classes, kernel_regularizer=kernel_regularizer(weight_decay),
                        name="logits")(x)
