"""The CIFAR residual network of He et al. (Sec. 4 of the 2015 paper, reused in 2016).

Stem (3x3 conv, 16 filters), three stages of ``units_per_stage`` units at 32x32, 16x16 and 8x8,
then global average pooling and a dense layer. The same assembly gives every model of the zoo:
the unit's ordering, branch and shortcut vary, and so do the widths and units of each stage
(wide ResNets; Jastrzebski et al. 2018's networks, whose convs also carry biases and whose
classifier is AvgPool-Flatten-Dense), the way of downsampling (strided units or average
pooling) and weight sharing of the top blocks of each stage.

Geometry: every convolution pads as the papers' Torch code (fb.resnet.torch) and PyTorch do,
``(k - 1) / 2`` zeros on every side; for the strided 3x3 convolutions that open stages 2 and 3
this is explicit symmetric zero padding followed by a ``padding="valid"`` conv, so output
pixel ``i`` is centred on input pixel ``2i``, the one the shortcut keeps. Keras's
``padding="same"`` would pad only the bottom and right of an even-sized map (output ``i``
reading rows ``2i .. 2i+2``). ``strided_padding="same"`` builds that older geometry, the one of
models and weights made before the setting (``keras_resnets.units``; the shipped ``cifar10``
weights use it, ``keras_resnets.pretrained``). Same output sizes, same weights either way.
"""

import math

import keras
from keras import layers

from keras_resnets.branches import BOTTLENECK_EXPANSION
from keras_resnets.orderings import get_ordering
from keras_resnets.shared import SharedResidualStack
from keras_resnets.units import (ResidualUnit, changes_shape, he_normal, kernel_regularizer,
                                 ordering_layer)

STEM_WIDTH = 16
BASE_WIDTHS = (16, 32, 64)  # Unit output widths per stage; bottleneck units expand them x4.
DOWNSAMPLING = ("conv", "avgpool")
# ``pooling`` without the top (keras.applications' values and layer names: avg_pool, max_pool).
FEATURE_POOLING = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}


def resnet(units_per_stage, *, widths=BASE_WIDTHS, stem_width=STEM_WIDTH, branch="basic",
           ordering="post", widen=1, downsample="conv", conv_bias=False, head_grid=None,
           shared_blocks=0, share_batchnorm=True, num_classes=10, input_shape=(32, 32, 3),
           weight_decay=0.0, standardize=None, sync_batchnorm=False, include_top=True,
           pooling=None, classifier_activation=None, name="resnet", **unit_options):
    """A CIFAR ResNet: a stem conv, one stage of units per entry of ``widths``, a classifier.

    Args:
        units_per_stage: n units in every stage (depth = 3 * n * convs_per_unit + 2), or one
            count per stage.
        widths: output width of each stage's units before ``widen`` and the bottleneck's x4.
        stem_width: filters of the stem's 3x3 conv.
        branch, ordering, **unit_options: passed to every ``ResidualUnit`` (shortcut variant,
            its options, ``projection``, ``dropout_rate``, ``strided_padding``: ``"symmetric"``
            by default or ``"same"``, ``pad_placement``: ``"identity-first"`` by default or
            ``"centred"``).
        widen: width multiplier k of wide ResNets (stage widths 16k, 32k, 64k).
        downsample: ``conv`` (stride 2 in the first unit of every stage after the first, as
            the papers) or ``avgpool`` (2x2 average pooling between stages).
        conv_bias: every conv (stem, branches, projections) has a bias, as in Jastrzebski et
            al. 2018.
        head_grid: ``None``: global average pooling (He et al.); ``g``: Jastrzebski et al.'s
            AvgPool-Flatten, average pooling down to a g x g map (see ``pooling``).
        shared_blocks: the top ``shared_blocks`` units of each stage share their conv weights.
        share_batchnorm: with sharing, share BN too (naive) or keep one BN per step.
        weight_decay: SGD weight decay on every conv and dense kernel.
        standardize: ``(mean, std)`` per channel on the images' own scale (0..255): the model
            starts with that standardisation (a ``Normalization`` layer saved with it) and
            takes raw images. ``None``: it takes images already standardised.
        sync_batchnorm: every BN layer computes its batch statistics over all replicas of a
            ``tf.distribute`` strategy, not per replica (``use_sync_bn`` of tensorflow/models'
            ResNet; Keras's ``synchronized``, TensorFlow only).
        include_top, pooling, classifier_activation: as ``keras.applications``' (see
            ``check_top``). The top is the classifier (the model's pooling, ``flatten`` where
            it has one, ``logits``); pre-activation nets' final BN-ReLU is part of the body.
    Returns:
        A ``keras.Model`` mapping images to ``num_classes`` logits (or the
        ``classifier_activation`` of them), or to the body's features without the top.
    """
    check_top(include_top, pooling, classifier_activation)
    units = check_architecture(units_per_stage, widths, downsample, shared_blocks)
    expansion = BOTTLENECK_EXPANSION if branch == "bottleneck" else 1
    widths = [width * widen * expansion for width in widths]
    unit_options.update(branch=branch, ordering=ordering, weight_decay=weight_decay,
                        conv_bias=conv_bias, sync_batchnorm=sync_batchnorm)
    order = get_ordering(ordering)

    inputs = keras.Input(shape=input_shape, name="images")
    x = standardization(inputs, standardize)
    x = stem(x, order.stem, stem_width, conv_bias, weight_decay, sync_batchnorm)
    for stage, (count, width) in enumerate(zip(units, widths), start=1):
        if downsample == "avgpool" and stage > 1:
            x = layers.AveragePooling2D(2, name=f"stage{stage}_pool")(x)
        strides = 2 if downsample == "conv" and stage > 1 else 1
        x = residual_stage(x, stage, count, width, strides, shared_blocks, share_batchnorm,
                           bool(order.preactivation), unit_options)
    x = final_activation(x, order.head, sync_batchnorm)
    if include_top:
        outputs = classifier(x, num_classes, head_grid, weight_decay, classifier_activation)
    else:
        outputs = feature_pooling(x, pooling)
    return keras.Model(inputs, outputs, name=name)


def check_architecture(units_per_stage, widths=BASE_WIDTHS, downsample="conv",
                       shared_blocks=0) -> tuple[int, ...]:
    """Units per stage as one count per stage; ``ValueError`` for settings no network can
    have, before any layer is built."""
    units = (units_per_stage,) * len(widths) if _is_int(units_per_stage) else tuple(
        units_per_stage)
    if not widths or len(units) != len(widths) or not all(
            _is_int(n) and n >= 1 for n in (*units, *widths)):
        raise ValueError(
            f"units_per_stage must be a positive integer or one per stage, and widths positive "
            f"integers; got {units_per_stage} units for widths {widths}.")
    if downsample not in DOWNSAMPLING:
        raise ValueError(f"Unknown downsample {downsample!r}; accepted: {', '.join(DOWNSAMPLING)}.")
    if not 0 <= shared_blocks < min(units):
        raise ValueError(
            f"shared_blocks must be in [0, {min(units) - 1}] for {min(units)} units per "
            f"stage (the first unit of a stage changes shape and cannot share); got "
            f"{shared_blocks}.")
    return units


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def standardization(images, standardize):
    """``(images - mean) / std`` per channel, the recipe's input scaling, inside the model.
    Computed in float32 under any dtype policy, as a float32 input pipeline would: a float16
    mean would shift every image by up to 1/16 of a grey level."""
    if standardize is None:
        return images
    mean, std = (tuple(float(v) for v in values) for values in standardize)
    channels = images.shape[-1]
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ValueError(f"standardize must be (mean, std) with {channels} values each and "
                         f"std > 0; got {standardize}.")
    return layers.Normalization(mean=mean, variance=[s * s for s in std], dtype="float32",
                                name="standardize")(images)


def standardization_of(model) -> tuple | None:
    """The ``(mean, std)`` a zoo model built with ``standardize`` applies to its raw images;
    ``None`` for a model that takes images already standardised."""
    layer = next((layer for layer in model.layers if layer.name == "standardize"), None)
    if not isinstance(layer, layers.Normalization):
        return None
    config = layer.get_config()
    return tuple(config["mean"]), tuple(v ** 0.5 for v in config["variance"])


def stem(x, words, width, use_bias, weight_decay, sync_batchnorm):
    """A 3x3 conv with ``width`` filters, then the ordering's stem words."""
    x = layers.Conv2D(width, 3, padding="same", use_bias=use_bias, kernel_initializer=he_normal(),
                      kernel_regularizer=kernel_regularizer(weight_decay), name="stem_conv1")(x)
    for word in words:
        x = ordering_layer(word, name=f"stem1_{word}", synchronized=sync_batchnorm)(x)
    return x


def residual_stage(x, stage, units, width, strides, shared_blocks, share_batchnorm,
                   preactivation, unit_options):
    """``units`` residual units; the first may change the shape, the top ``shared_blocks`` share
    weights. Each unit records its stage and input width, decided here once. Pre-activation nets
    share the leading BN-ReLU with the shortcut on the very first unit (He et al. 2016, Sec. 4.1)
    and on projection units (the authors' code)."""
    for index in range(1, units - shared_blocks + 1):
        in_filters, unit_strides = int(x.shape[-1]), strides if index == 1 else 1
        first_of_net = stage == 1 and index == 1
        reshapes = changes_shape(in_filters, width, unit_strides)
        x = ResidualUnit(width, strides=unit_strides, in_filters=in_filters, stage=stage,
                         preactivate_shortcut=preactivation and (first_of_net or reshapes),
                         name=f"stage{stage}_unit{index}", **unit_options)(x)
    if shared_blocks:
        x = SharedResidualStack(shared_blocks, width, share_batchnorm, unit_options,
                                stage=stage, name=f"stage{stage}_shared")(x)
    return x


def final_activation(x, words, sync_batchnorm):
    """The final BN-ReLU of pre-activation nets (nothing for the others): the body's last
    layers, kept without the top as ``keras.applications``' ResNetV2 keeps its ``post_bn``."""
    for word in words:
        x = ordering_layer(word, name=f"final_{word}", synchronized=sync_batchnorm)(x)
    return x


def classifier(x, num_classes, grid, weight_decay, activation=None):
    """The top: the model's pooling, dense ``logits``, then ``activation`` (a separate
    ``predictions`` layer, so the ``logits`` layer always holds logits)."""
    x = pooling(x, grid)
    x = layers.Dense(num_classes, kernel_regularizer=kernel_regularizer(weight_decay),
                     name="logits")(x)
    return x if activation is None else layers.Activation(activation, name="predictions")(x)


def feature_pooling(x, mode):
    """The body's output without the top: the last feature map (``mode=None``, 4D) or its
    global ``"avg"`` or ``"max"`` pooling (one vector per image), as ``keras.applications``."""
    return x if mode is None else FEATURE_POOLING[mode](name=f"{mode}_pool")(x)


def check_top(include_top, pooling, classifier_activation) -> None:
    """Refuse, before any layer is built, top settings that make no model or would do nothing:
    ``pooling`` is for ``include_top=False``, ``classifier_activation`` (``None``: logits, or a
    Keras activation such as ``"softmax"``) for ``include_top=True``."""
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be True or False; got {include_top!r}.")
    if pooling is not None and (include_top or pooling not in FEATURE_POOLING):
        raise ValueError(
            f"pooling={pooling!r}: with include_top=False, pooling is None (the last feature "
            f"map), {' or '.join(map(repr, FEATURE_POOLING))}; with include_top=True the "
            f"classifier pools, so pooling must be None.")
    if classifier_activation is None:
        return
    if not include_top:
        raise ValueError(f"classifier_activation={classifier_activation!r} needs "
                         f"include_top=True (there is no classifier without the top).")
    try:
        keras.activations.get(classifier_activation)
    except (ValueError, TypeError):
        raise ValueError(f"classifier_activation must be None (logits) or a Keras activation "
                         f"such as 'softmax'; got {classifier_activation!r}.") from None


def pooling(x, grid):
    """Global average pooling (He et al.), or Jastrzebski et al. 2018's AvgPool-Flatten: equal
    windows down to a ``grid`` x ``grid`` map. On their 32x32 images that is their AvgPool(8,8):
    grid 4 where the last stage is 32x32 (single representation), 1 where it is 8x8; other image
    sizes keep the grid, so the dense layer and the parameter count stay the paper's."""
    if grid is None:
        return layers.GlobalAveragePooling2D(name="pool")(x)
    size = tuple(x.shape[1:3])
    if not _is_int(grid) or grid < 1 or any(s is None or s % grid for s in size):
        raise ValueError(f"Average pooling to a {grid}x{grid} grid needs a final map whose "
                         f"sides are multiples of {grid}; got {size}.")
    x = layers.AveragePooling2D((size[0] // grid, size[1] // grid), name="pool")(x)
    return layers.Flatten(name="flatten")(x)


def pyramid_outputs(model) -> dict:
    """Each stage's output of a zoo model (built, or loaded from a file), keras-hub's
    ``pyramid_outputs``: ``{"P{level}": tensor}`` where the stage's maps are ``1/2**level`` of
    the input's size (the CIFAR nets' stages at 32, 16 and 8 px: P0, P1, P2). A stage ends at
    its last layer that records it (``ResidualUnit.stage``, ``SharedResidualStack.stage``),
    before pre-activation nets' final BN-ReLU, as keras-hub's ResNetV2 backbones.
    ``keras.Model(model.input, pyramid_outputs(model))`` extracts them."""
    ends = {}
    for layer in model.layers:  # in the order they are applied
        if getattr(layer, "stage", None) is not None:
            ends[layer.stage] = layer
    if not ends:
        raise ValueError(f"Model {model.name!r} has no layer that records its stage "
                         f"(ResidualUnit, SharedResidualStack): pyramid_outputs needs a zoo "
                         f"model (keras_resnets.build).")
    height = model.input_shape[1]
    return {f"P{round(math.log2(height / ends[stage].output.shape[1]))}": ends[stage].output
            for stage in sorted(ends)}
