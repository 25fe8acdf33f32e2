"""The residual unit of He et al. 2016 (Eq. 1-2), composed as ordering x branch x shortcut.

``ResidualUnit`` computes ``y = merge(h(x), F(x))`` and ``x' = f(y)``: the ordering
(``orderings.py``) places BN/ReLU around the branch's convolutions (``branches.py``) and after
the addition; the shortcut variant (``shortcuts.py``) picks ``h`` and the merge rule. Analysis
code reads the two halves separately through ``parts`` and ``merge`` (Jastrzebski et al. 2018
need ``F_j(h_j)``, and dropping a block is merging a zero branch). A unit records where it sits
(``stage``) and the widths it maps (``in_filters`` -> ``filters``, ``strides``), so that code
reading a built model asks the unit (``changes_shape``) instead of parsing layer names or
kernel shapes.

Convolution geometry (``strided_padding``). A 3x3 convolution with stride 2 pads its input by
one pixel on every side in the papers' Torch code (fb.resnet.torch, He et al. 2016) and in
PyTorch (``padding=1``): output pixel ``i`` reads input rows ``2i-1 .. 2i+1``, centred on the
pixel ``2i`` that the shortcut subsamples. Keras's ``padding="same"`` pads an even-sized input
only at the bottom and right when the stride is 2, so output ``i`` reads rows ``2i .. 2i+2``,
half a pixel off the shortcut. ``strided_padding="symmetric"`` (the default) pads explicitly,
``(k - 1) / 2`` zeros on every side of a ``k x k`` kernel, and convolves with
``padding="valid"`` (as keras.applications' ResNetV2 does); ``"same"`` is Keras's padding, the
geometry of every model and weights file made before the setting existed. Both give the same
output size (``ceil(n / stride)``) and the same weights; only strided convolutions with kernels
larger than 1x1 differ (a 1x1 kernel is never padded, and stride 1 pads symmetrically either
way). A unit config without ``strided_padding`` (a ``.keras`` file saved before units recorded
it) means ``"same"`` (``ResidualUnit.from_config``).

Option A's channel placement (``pad_placement``). The parameter-free shortcut of He et al.
2015 keeps the input's channels and adds zero channels up to the new width: after them
(``"identity-first"``, as fb.resnet.torch concatenates the zeros; the default), or split
evenly before and after (``"centred"``, as akamaster/pytorch_resnet_cifar10 pads
``planes // 4`` zeros on both sides).
"""

from typing import Any, NamedTuple

import keras
from keras import layers, ops

from keras_resnets.branches import ConvShape, branch_convs
from keras_resnets.normalization import BatchNormalization
from keras_resnets.orderings import get_ordering
from keras_resnets.shortcuts import resolve_shortcut

BN_MOMENTUM = 0.9  # Torch's 0.1 in Keras's convention, as in the papers' Torch code.
BN_EPSILON = 1e-5
PROJECTIONS = ("conv", "pad")
STRIDED_PADDINGS = ("symmetric", "same")
STRIDED_PADDING = "symmetric"  # new models: the papers' geometry
PAD_PLACEMENTS = ("identity-first", "centred")


def check_choice(name: str, value, accepted: tuple) -> str:
    """``value`` if it is one of ``accepted``, else a ``ValueError`` that lists them."""
    if value not in accepted:
        raise ValueError(f"Unknown {name} {value!r}; accepted: {', '.join(accepted)}.")
    return value


class UnitParts(NamedTuple):
    """The two paths of one unit before they merge, and the gate if the variant has one."""

    shortcut: Any  # h(x)
    residual: Any  # F(x)
    gate: Any = None  # g(x), the sigmoid gate of Table 1's gated rows


def he_normal():
    """He initialisation as in the authors' Torch code: N(0, 2 / (k * k * out_channels))."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def kernel_regularizer(weight_decay: float):
    """SGD weight decay ``wd`` as an L2 loss: d/dw (wd/2 * ||w||^2) = wd * w."""
    return keras.regularizers.L2(weight_decay / 2) if weight_decay else None


def ordering_layer(word: str, name=None, synchronized=False):
    """The layer an ordering's word other than ``conv`` stands for: ``bn`` (BatchNormalization)
    or ``relu``; ``synchronized`` BN computes its batch statistics over all replicas
    (TensorFlow only)."""
    if word == "bn":
        return BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                  synchronized=synchronized, name=name)
    if word == "relu":
        return layers.ReLU(name=name)
    raise ValueError(f"Unknown operation {word!r}; accepted: bn, relu.")


def apply_layers(sequence, x, training=None):
    """``x`` through each layer of ``sequence`` in turn: the paths of a unit are plain lists."""
    for layer in sequence:
        x = layer(x, training=training)
    return x


@keras.saving.register_keras_serializable(package="keras_resnets")
class ZeroPadShortcut(layers.Layer):
    """He et al. 2015's parameter-free "option A" shortcut: subsample by ``strides`` and
    zero-pad the new channels, so the shortcut stays an identity on the old ones.

    ``placement``: ``"identity-first"`` puts the input's channels first and the zeros after
    them (fb.resnet.torch); ``"centred"`` splits the zeros evenly before and after (the extra
    one after, for an odd count), as akamaster/pytorch_resnet_cifar10 does.
    """

    def __init__(self, filters, strides=1, placement="identity-first", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides = int(filters), int(strides)
        self.placement = check_choice("pad_placement", placement, PAD_PLACEMENTS)

    def call(self, inputs):
        """Subsample by ``strides``, then add zero channels up to ``filters`` (after the
        input's, or on both sides: ``placement``).

        The subsampling is ``inputs[:, ::s, ::s, :]`` written as a 1x1 average pool with stride
        ``s``: the same numbers and gradients (a window of one pixel divides by one), and on
        TensorFlow a pooling kernel instead of the generic strided slice, whose forward and
        backward passes cost 3-4x as much (``benchmarks/profile_step.py``)."""
        x = inputs
        if self.strides > 1:
            x = ops.average_pool(inputs, pool_size=1, strides=self.strides, padding="valid",
                                 data_format="channels_last")
        extra = self.filters - x.shape[-1]
        if extra < 0:
            raise ValueError(f"Zero-padding cannot shrink {x.shape[-1]} channels to "
                             f"{self.filters}.")
        before = extra // 2 if self.placement == "centred" else 0
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, extra - before]])

    def compute_output_shape(self, input_shape):
        """The input's map subsampled by ``strides``, with ``filters`` channels."""
        batch, height, width = input_shape[:3]
        return (batch, _strided(height, self.strides), _strided(width, self.strides),
                self.filters)

    def get_config(self):
        """The ``__init__`` arguments, so ``from_config`` rebuilds the layer."""
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "placement": self.placement}


def _strided(size, strides):
    """Spatial size after a strided conv, either geometry (``ceil(size / strides)``); None
    stays unknown."""
    return None if size is None else -(-size // strides)


def changes_shape(in_filters: int, filters: int, strides: int) -> bool:
    """Whether a unit mapping ``in_filters`` to ``filters`` channels with ``strides`` changes
    the shape: then its shortcut cannot be the identity (a projection or zero-padding)."""
    return strides != 1 or in_filters != filters


def build_layers(sequence, shape):
    """Build each layer of a chain from its input shape; returns the chain's output shape."""
    for layer in sequence:
        if not layer.built:
            layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


@keras.saving.register_keras_serializable(package="keras_resnets")
class ResidualUnit(layers.Layer):
    """One residual unit: ``f(merge(h(x), F(x)))``.

    Args:
        filters: output channels of the unit (bottleneck: the expanded width).
        strides: stride of the unit; 2 at the first unit of a downsampling stage.
        branch: ``basic`` (two 3x3), ``bottleneck`` (1x1-3x3-1x1, x4) or ``1conv`` (one 3x3).
        ordering: ``post``, ``bn-after-add``, ``relu-before-add``, ``relu-preact`` or
            ``preact`` (Table 2).
        shortcut: ``identity``, ``conv``, ``scale``, ``gate-exclusive``, ``gate-shortcut`` or
            ``dropout`` (Table 1).
        projection: the shortcut where the shape changes: ``conv`` (a 1x1 projection, as in
            He et al. 2016) or ``pad`` (He et al. 2015's parameter-free zero-padding, option A).
        shortcut_scale, branch_scale: the constants of ``shortcut="scale"``.
        gate_bias: initial bias ``b_g`` of the gate conv, for the two gated shortcuts.
        shortcut_dropout: dropout rate on the shortcut, for ``shortcut="dropout"``.
        dropout_rate: dropout between the branch's convolutions (wide ResNets).
        preactivate_shortcut: pre-activation orderings only: apply the unit's leading
            activation once, before the split, so both paths see it. He et al. do this for the
            first unit after the stem (Sec. 4.1) and, in their code, for projection units.
        weight_decay: SGD weight decay on this unit's conv kernels (as an L2 penalty).
        conv_bias: the branch and projection convs have biases (initialised to 0), as in
            Jastrzebski et al. 2018; He et al.'s convs have none (BN follows or precedes them).
        sync_batchnorm: BN statistics over the global batch of all replicas rather than each
            replica's own (Keras's ``synchronized``; TensorFlow only).
        in_filters: channels of the unit's input, as the builder knows it; ``None``: the
            width of the input the unit is first built on. With ``strides`` and ``filters``
            it says whether the unit changes the shape (``changes_shape``).
        stage: 1-based stage of the network the unit belongs to (``None`` outside a zoo
            network); ``keras_resnets.ResidualChain`` reads it.
        strided_padding: ``"symmetric"`` (the papers' geometry: explicit zero padding on every
            side before a strided conv, then ``padding="valid"``) or ``"same"`` (Keras's
            padding, the geometry of models made before the setting; see the module
            docstring).
        pad_placement: where option A's zero channels go: ``"identity-first"`` (after the
            input's channels) or ``"centred"``.
    """

    def __init__(self, filters, strides=1, branch="basic", ordering="post", shortcut="identity",
                 projection="conv", shortcut_scale=None, branch_scale=None, gate_bias=None,
                 shortcut_dropout=None, dropout_rate=0.0, preactivate_shortcut=False,
                 weight_decay=0.0, conv_bias=False, sync_batchnorm=False, in_filters=None,
                 stage=None, strided_padding=STRIDED_PADDING, pad_placement="identity-first",
                 **kwargs):
        super().__init__(**kwargs)
        if int(filters) != filters or filters < 1 or int(strides) != strides or strides < 1:
            raise ValueError(
                f"filters and strides must be positive integers; got {filters}, {strides}.")
        if not 0.0 <= dropout_rate < 1.0 or weight_decay < 0:
            raise ValueError(
                f"dropout_rate must be in [0, 1) and weight_decay >= 0; "
                f"got {dropout_rate}, {weight_decay}.")
        if in_filters is not None and (int(in_filters) != in_filters or in_filters < 1):
            raise ValueError(f"in_filters must be a positive integer; got {in_filters}.")
        self.filters, self.strides = int(filters), int(strides)
        self.in_filters = None if in_filters is None else int(in_filters)
        self.stage = None if stage is None else int(stage)
        self.branch, self.ordering, self.shortcut = branch, ordering, shortcut
        self.shortcut_scale, self.branch_scale = shortcut_scale, branch_scale
        self.gate_bias, self.shortcut_dropout = gate_bias, shortcut_dropout
        self.dropout_rate, self.weight_decay = float(dropout_rate), float(weight_decay)
        self.preactivate_shortcut = bool(preactivate_shortcut)
        self.conv_bias = bool(conv_bias)
        self.sync_batchnorm = bool(sync_batchnorm)
        if projection not in PROJECTIONS:
            raise ValueError(
                f"Unknown projection {projection!r}; accepted: {', '.join(PROJECTIONS)}.")
        self.projection = projection
        self.strided_padding = check_choice("strided_padding", strided_padding, STRIDED_PADDINGS)
        self.pad_placement = check_choice("pad_placement", pad_placement, PAD_PLACEMENTS)
        self._order = get_ordering(ordering)
        self._convs = branch_convs(branch, self.filters, self.strides)
        self._kind, self._options = resolve_shortcut(
            shortcut, shortcut_scale=shortcut_scale, branch_scale=branch_scale,
            gate_bias=gate_bias, shortcut_dropout=shortcut_dropout)
        self._shares = None

    @property
    def changes_shape(self) -> bool:
        """Whether the output has another shape than the input (stride or width): the first
        unit of a downsampling or widening stage."""
        if self.in_filters is None:
            raise ValueError(f"{self.name}: the input width is unknown until the unit is built.")
        return changes_shape(self.in_filters, self.filters, self.strides)

    def share_with(self, other: "ResidualUnit", batchnorm_variables=()) -> None:
        """Use ``other``'s conv layers instead of new ones, and its BN layers' variables
        ``batchnorm_variables`` (``gamma``, ``moving_mean``...): the weight sharing of
        Jastrzebski et al. 2018, Sec. 6. Call before ``build``; ``other`` is built first."""
        names = tuple(batchnorm_variables)
        # Behind a function: Keras would track a unit held in an attribute as a sublayer.
        self._shares = lambda: (other, names)

    def convolutions(self) -> list:
        """Every conv layer of the unit, in a fixed order (branch, projection, gate)."""
        candidates = self.branch_layers + self.shortcut_layers + [self.gate_layer]
        return [layer for layer in candidates if isinstance(layer, layers.Conv2D)]

    def batchnorms(self) -> list:
        """Every BN layer of the unit, in a fixed order."""
        candidates = (self.preactivation_layers + self.branch_layers + self.shortcut_layers
                      + self.after_add_layers)
        return [layer for layer in candidates if isinstance(layer, BatchNormalization)]

    def build(self, input_shape):
        """Create the sub-layers of the three paths (borrowing a sharing unit's convs) and
        build each from the shape it will see."""
        self._record_input_width(input_shape[-1])
        other, shared_bn = self._shares() if self._shares else (None, ())
        borrowed = iter(other.convolutions()) if other is not None else None
        shared_pre = self._order.preactivation if self.preactivate_shortcut else ()
        self.preactivation_layers = [self._ordering_layer(word) for word in shared_pre]
        self.branch_layers = self._branch_ops(len(shared_pre), borrowed)
        self.shortcut_layers = self._shortcut_ops(self.changes_shape, borrowed)
        self.gate_layer = None
        if self._kind.gated:
            self.gate_layer = self._conv(
                ConvShape(self.filters, 1, self.strides), borrowed, use_bias=True,
                activation="sigmoid",
                bias_initializer=keras.initializers.Constant(self._options["gate_bias"]))
        self.after_add_layers = [self._ordering_layer(word) for word in self._order.after_add]
        if other is not None:
            for layer, source in zip(self.batchnorms(), other.batchnorms(), strict=True):
                layer.share_variables(source, shared_bn)

        shape = build_layers(self.preactivation_layers, input_shape)
        out_shape = build_layers(self.branch_layers, shape)
        build_layers(self.shortcut_layers, shape)
        build_layers([self.gate_layer] if self.gate_layer else [], shape)
        build_layers(self.after_add_layers, out_shape)

    def _record_input_width(self, width) -> None:
        """Learn ``in_filters`` from the first input, or refuse an input of another width."""
        if self.in_filters is None:
            self.in_filters = int(width)
        elif width != self.in_filters:
            raise ValueError(f"{self.name} was built for inputs of {self.in_filters} channels; "
                             f"got {width}.")

    def _branch_ops(self, skip_leading: int, borrowed) -> list:
        """The branch F: each conv wrapped in the ordering's words; dropout between convs."""
        sequence = []
        for i, shape in enumerate(self._convs):
            is_last = i == len(self._convs) - 1
            words = self._order.last if is_last else self._order.inner
            words = words[skip_leading:] if i == 0 else words
            for word in words:
                if word == "conv":
                    sequence += self._padding(shape)
                    sequence.append(self._conv(shape, borrowed))
                else:
                    sequence.append(self._ordering_layer(word))
            if self.dropout_rate and not is_last:
                sequence.append(layers.Dropout(self.dropout_rate))
        return sequence

    def _shortcut_ops(self, reshapes: bool, borrowed) -> list:
        """h(x): identity, zero-padding, or a 1x1 projection (plus BN when the ordering is
        post-activation, whose branch also ends in BN); then dropout for the dropout variant."""
        sequence = []
        if reshapes and self.projection == "pad" and not self._kind.always_project:
            sequence.append(ZeroPadShortcut(self.filters, self.strides, self.pad_placement))
        elif reshapes or self._kind.always_project:
            sequence.append(self._conv(ConvShape(self.filters, 1, self.strides), borrowed))
            if not self._order.preactivation:
                sequence.append(self._ordering_layer("bn"))
        if self._kind.dropout:
            sequence.append(layers.Dropout(self._options["shortcut_dropout"]))
        return sequence

    def _ordering_layer(self, word: str):
        return ordering_layer(word, synchronized=self.sync_batchnorm)

    def _symmetric(self, shape: ConvShape) -> bool:
        """Whether this conv pads explicitly on every side (a strided kernel larger than 1x1
        under ``strided_padding="symmetric"``) rather than with Keras's ``"same"``."""
        return (self.strided_padding == "symmetric" and shape.strides > 1
                and shape.kernel_size > 1)

    def _padding(self, shape: ConvShape) -> list:
        """The explicit zero padding before a conv that pads symmetrically (none otherwise):
        ``(k - 1) / 2`` on every side, PyTorch's ``padding=1`` for a 3x3 kernel."""
        return [layers.ZeroPadding2D((shape.kernel_size - 1) // 2)] if self._symmetric(
            shape) else []

    def _conv(self, shape: ConvShape, borrowed, **overrides):
        if borrowed is not None:
            return next(borrowed)
        padding = "valid" if self._symmetric(shape) else "same"
        options = dict(padding=padding, use_bias=self.conv_bias, kernel_initializer=he_normal(),
                       kernel_regularizer=kernel_regularizer(self.weight_decay))
        options.update(overrides)
        return layers.Conv2D(shape.filters, shape.kernel_size, strides=shape.strides, **options)

    def parts(self, inputs, training=None) -> UnitParts:
        """The shortcut ``h(x)``, the branch ``F(x)`` and the gate, before merging."""
        x = apply_layers(self.preactivation_layers, inputs, training)
        shortcut = apply_layers(self.shortcut_layers, x, training)
        residual = apply_layers(self.branch_layers, x, training)
        gate = self.gate_layer(x) if self.gate_layer is not None else None
        return UnitParts(shortcut, residual, gate)

    def merge(self, parts: UnitParts, training=None):
        """``f(merge(h(x), F(x)))``: the variant's merge rule, then the after-addition ops."""
        y = self._kind.merge(parts.shortcut, parts.residual, parts.gate, self._options)
        return apply_layers(self.after_add_layers, y, training)

    def call(self, inputs, training=None):
        """``x' = f(merge(h(x), F(x)))``, He et al. 2016 Eq. 1-2."""
        return self.merge(self.parts(inputs, training), training)

    def compute_output_shape(self, input_shape):
        """The input's map subsampled by ``strides``, with ``filters`` channels."""
        batch, height, width = input_shape[:3]
        return (batch, _strided(height, self.strides), _strided(width, self.strides),
                self.filters)

    @classmethod
    def from_config(cls, config):
        """Rebuild a unit. A config without ``strided_padding`` was saved before units
        recorded it, from a unit built with Keras's ``"same"`` padding: it loads with that
        geometry, not the default one, so that its weights compute what they were trained to."""
        return super().from_config({"strided_padding": "same", **config})

    def get_config(self):
        """The ``__init__`` arguments, so ``from_config`` rebuilds the same unit."""
        config = super().get_config()
        config.update(
            filters=self.filters, strides=self.strides, branch=self.branch,
            ordering=self.ordering, shortcut=self.shortcut, projection=self.projection,
            shortcut_scale=self.shortcut_scale,
            branch_scale=self.branch_scale, gate_bias=self.gate_bias,
            shortcut_dropout=self.shortcut_dropout, dropout_rate=self.dropout_rate,
            preactivate_shortcut=self.preactivate_shortcut, weight_decay=self.weight_decay,
            conv_bias=self.conv_bias, sync_batchnorm=self.sync_batchnorm,
            in_filters=self.in_filters, stage=self.stage, strided_padding=self.strided_padding,
            pad_placement=self.pad_placement)
        return config
