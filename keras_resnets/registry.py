"""Model names as data: ``{family}{depth}[-{widen}][-{variant}]`` -> builder settings, and
the networks a paper gives whole (``j18-resnet110``, ...) -> their blocks and widths per stage.

A family (``resnet``, ``preact``, ``wrn``) fixes the unit ordering and how depth maps to units
per stage; a variant (Tables 1-3 of He et al. 2016, weight sharing of Jastrzebski et al. 2018)
adds settings on top. ``build``, ``describe``, the ablation runner and the tuner all read the
tables below; adding a model is adding a row.
"""

import dataclasses
import difflib
import inspect
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

from keras_resnets import paper
from keras_resnets import pretrained as shipped_weights
from keras_resnets.architectures import (check_architecture, check_top, pyramid_outputs,
                                         resnet)
from keras_resnets.branches import CONVS_PER_UNIT
from keras_resnets.names import has_widen, parse_name
from keras_resnets.parameters import estimate_size
from keras_resnets.shortcuts import SHORTCUT_OPTIONS, resolve_shortcut
from keras_resnets.units import (PAD_PLACEMENTS, STRIDED_PADDING, STRIDED_PADDINGS,
                                 check_choice)

# ``build`` refuses a model beyond these sizes, estimated from its settings before any layer is
# built (``parameters.estimate_size``), unless ``allow_large=True``: the largest networks of the
# papers are far below (ResNet-1202: 19.4M parameters and 1,202 layers; Jastrzebski et al.'s
# wide ResNet: 45.7M), while a mistyped depth such as ``preact100001`` would take minutes and
# gigabytes before failing.
MAX_PARAMETERS = 100_000_000
MAX_LAYERS = 5_000


@dataclass(frozen=True)
class Family:
    """A model family (``resnet``, ``preact``, ``wrn``): its unit settings and how depth maps to
    units."""
    summary: str
    settings: dict
    depth_offset: int = 2  # depth = 3 * units_per_stage * convs_per_unit + depth_offset
    widened: bool = False  # the name carries the widen factor: wrn28-10


@dataclass(frozen=True)
class Variant:
    """A name suffix (``-gate-exclusive``...): the builder settings it adds to its family's."""
    summary: str
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Network:
    """A network its paper gives whole: residual blocks and filters per stage, plus settings.
    ``blocks`` and ``filters`` are also the overrides that shrink it for reduced-scale runs."""

    summary: str
    blocks: tuple[int, ...]
    filters: tuple[int, ...]
    settings: dict
    stem_width: int | None = None  # None: the first stage's width


FAMILIES = {
    "resnet": Family("original post-activation units (He et al. 2015)", {"ordering": "post"}),
    "preact": Family("full pre-activation units (He et al. 2016)", {"ordering": "preact"}),
    "wrn": Family("wide ResNet, pre-activation basic units, depth 6n+4 (Zagoruyko & Komodakis)",
                  {"ordering": "preact", "branch": "basic"}, depth_offset=4, widened=True),
}

VARIANTS = {
    "scale0": Variant("Table 1: shortcut scaled by 0 (a plain net)",
                      {"shortcut": "scale", "shortcut_scale": 0.0}),
    "scale0.5": Variant("Table 1: shortcut scaled by 0.5",
                        {"shortcut": "scale", "shortcut_scale": 0.5}),
    "scale0.5-both": Variant("Table 1: shortcut and branch scaled by 0.5",
                             {"shortcut": "scale", "shortcut_scale": 0.5, "branch_scale": 0.5}),
    "gate-exclusive": Variant("Table 1: exclusive gating (1-g)x + gF, b_g = -6",
                              {"shortcut": "gate-exclusive", "gate_bias": -6.0}),
    "gate-shortcut": Variant("Table 1: shortcut-only gating (1-g)x + F, b_g = -6",
                             {"shortcut": "gate-shortcut", "gate_bias": -6.0}),
    "conv-shortcut": Variant("Table 1: 1x1 conv shortcut on every unit", {"shortcut": "conv"}),
    "dropout-shortcut": Variant("Table 1: dropout 0.5 on the shortcut",
                                {"shortcut": "dropout", "shortcut_dropout": 0.5}),
    "bn-after-add": Variant("Table 2: BN after addition", {"ordering": "bn-after-add"}),
    "relu-before-add": Variant("Table 2: ReLU before addition", {"ordering": "relu-before-add"}),
    "relu-preact": Variant("Table 2: ReLU-only pre-activation", {"ordering": "relu-preact"}),
    "1conv": Variant("Table 3: one 3x3 conv per unit (depth 3n+2)", {"branch": "1conv"}),
    "shared": Variant("Jastrzebski et al. Fig. 8: top 13 units of each stage share weights",
                      {"shared_blocks": 13, "share_batchnorm": True, "projection": "conv"}),
    "shared-bn": Variant("Jastrzebski et al. Fig. 8: shared convs; unshared BN (per-step "
                         "statistics, per-step gamma and beta, gamma initialised to 0.1)",
                         {"shared_blocks": 13, "share_batchnorm": False,
                          "projection": "conv"}),
    # Fig. 9: the remedy with one of its three parts turned off (keras_resnets.shared).
    "shared-bn-shared-stats": Variant(
        "Jastrzebski et al. Fig. 9: unshared BN without per-step statistics",
        {"shared_blocks": 13, "share_batchnorm": {"unshared_statistics": False},
         "projection": "conv"}),
    "shared-bn-shared-affine": Variant(
        "Jastrzebski et al. Fig. 9: unshared BN without per-step gamma and beta",
        {"shared_blocks": 13, "share_batchnorm": {"unshared_affine": False},
         "projection": "conv"}),
    "shared-bn-gamma1": Variant(
        "Jastrzebski et al. Fig. 9: unshared BN with gamma initialised to 1, not 0.1",
        {"shared_blocks": 13, "share_batchnorm": {"gamma_init": 1.0}, "projection": "conv"}),
}
SHARING_VARIANTS = ("shared", "shared-bn", "shared-bn-shared-stats", "shared-bn-shared-affine",
                    "shared-bn-gamma1")

# Jastrzebski et al. 2018 (experimental setup): pre-activation blocks BN-ReLU-conv-BN-ReLU-conv
# whose convs have biases, 1x1 projection shortcuts, classifier BN-ReLU-AvgPool(8,8)-Flatten-FC
# (on 32x32 images: a 1x1 grid after an 8x8 last stage, 4x4 after a 32x32 one).
JASTRZEBSKI = {"ordering": "preact", "branch": "basic", "projection": "conv", "conv_bias": True,
               "head_grid": 1}

NETWORKS = {
    "j18-resnet110": Network(
        "Jastrzebski et al. 2018: original ResNet-110, 3 stages of 18 blocks at 16/32/64 filters "
        "(32/16/8 px), 1x1 projection shortcuts at the stage changes",
        (18, 18, 18), (16, 32, 64), JASTRZEBSKI),
    "j18-single": Network(
        "Jastrzebski et al. 2018: single representation, 3x3 conv then 10 blocks, all 100 "
        "filters at 32x32 (no downsampling); AvgPool(8,8) -> 4x4x100 -> FC",
        (10,), (100,), {**JASTRZEBSKI, "head_grid": 4}),
    # Table 1 (sharing): the same blocks at other depths, and ResNet-110/146/182 whose top
    # 13/19/25 blocks of each stage share their convs with unshared BN (6 distinct blocks per
    # stage, as ResNet-38). Their trainable parameters (conv biases, BN gamma and beta; not the
    # moving statistics) fall in Table 1's ranges (paper.SHARING_PARAMETER_RANGES); the same
    # count of j18-resnet110 is 1,734,666, while the 1,742,762 the paper prints for it elsewhere
    # also counts the moving statistics.
    **{f"j18-resnet{6 * n + 2}": Network(
        f"Jastrzebski et al. 2018 Table 1: ResNet-{6 * n + 2}, the j18-resnet110 blocks, "
        f"{n} per stage", (n, n, n), (16, 32, 64), JASTRZEBSKI) for n in (5, 6, 9)},
    **{f"j18-resnet{6 * n + 2}-ubn": Network(
        f"Jastrzebski et al. 2018 Table 1: ResNet-{6 * n + 2}-UBN, {n} blocks per stage, the "
        f"top {n - 5} sharing convs, unshared BN per step (gamma initialised to 0.1)",
        (n, n, n), (16, 32, 64), {**JASTRZEBSKI, "shared_blocks": n - 5,
                                  "share_batchnorm": False}) for n in (18, 24, 30)},
    "j18-resnet110-shared": Network(
        "Jastrzebski et al. 2018 Fig. 8: ResNet-110 whose top 13 blocks of each stage share "
        "everything (naive sharing; BN statistics, gamma and beta too)",
        (18, 18, 18), (16, 32, 64), {**JASTRZEBSKI, "shared_blocks": 13,
                                     "share_batchnorm": True}),
    # The single-representation net 3 times at 150 filters: one stem conv, the 2x2 average
    # pooling after sets 1 and 2 (32 -> 16 -> 8 px), and after set 3 the classifier's own
    # AvgPool(8,8) -> 1x1x150 -> FC. Exactly the paper's 12,201,310 parameters (a third 2x2
    # pooling before a 4x4 classifier pooling would count the same).
    "j18-avgpool": Network(
        "Jastrzebski et al. 2018: avg-pooling, 3 sets of 10 blocks at 150 filters with 2x2 "
        "average pooling between sets (32/16/8 px)",
        (10, 10, 10), (150, 150, 150), {**JASTRZEBSKI, "downsample": "avgpool"}),
    # "3 stages of 4 blocks with 160/320/640 filters" after a 16-filter 3x3 conv; stages 2
    # and 3 open with one more block, strided with a 1x1 projection (4 + 5 + 5 blocks). This
    # gives the paper's 45,732,842 parameters exactly, with the conventions of the three
    # other nets; 4 + 4 + 4 blocks (WRN-28-10 with biases) would give 36,507,242.
    "j18-wrn": Network(
        "Jastrzebski et al. 2018: wide ResNet, 3 stages of 4 blocks at 160/320/640 filters, "
        "stages 2 and 3 opened by a strided 1x1-projection block (4 + 5 + 5 blocks)",
        (4, 5, 5), (160, 320, 640), JASTRZEBSKI, stem_width=16),
}

PAPER_DEPTHS = {"basic": (20, 32, 44, 56, 110, 1202), "bottleneck": (164, 1001)}
EXTRA_MODELS = ("resnet38", "wrn16-4", "wrn16-8", "wrn28-10", "wrn40-4")
# Builder arguments the model name fixes: units per stage (from the depth), and the structure of
# the NETWORKS (from their rows; ``blocks`` and ``filters`` resize them).
FIXED_BY_NAME = ("units_per_stage", "widths", "stem_width", "conv_bias", "head_grid", "name",
                 "unit_options")
# The top (keras.applications' arguments): ``build`` takes them besides the model's settings.
TOP_ARGUMENTS = ("include_top", "pooling", "classifier_activation")
# The top the shipped weights were trained with: dense logits.
FULL_TOP = {"include_top": True, "pooling": None, "classifier_activation": None}
# Builder arguments a user may override.
OVERRIDABLE = tuple(p for p in inspect.signature(resnet).parameters
                    if p not in FIXED_BY_NAME + TOP_ARGUMENTS) + (
    "shortcut", "projection", "dropout_rate", "strided_padding", "pad_placement"
) + SHORTCUT_OPTIONS
# What a network of NETWORKS takes: its size per stage, and what leaves its structure alone.
NETWORK_OVERRIDES = ("blocks", "filters", "dropout_rate", "weight_decay", "standardize",
                     "sync_batchnorm", "num_classes", "input_shape", "strided_padding")
# Overrides that set how the papers' layers are computed, not which layers a model has: a
# model with only these still is the papers' row (``describe``'s paper numbers).
GEOMETRY_OVERRIDES = ("strided_padding", "pad_placement")


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """The zoo's named models (every paper row and architecture), filtered by a glob pattern;
    with ``pretrained=True`` only those with shipped weights (``describe(name)["pretrained"]``
    says which and how they were made).

    Any depth that fits a family's rule also builds (``resnet74``, ``preact47-gate-exclusive``);
    this list holds the ones the papers use.
    """
    import fnmatch

    names = [f"{base}{depth}" for base in ("resnet", "preact")
             for depth in PAPER_DEPTHS["basic"] + PAPER_DEPTHS["bottleneck"]]
    names += [row.model_name() for row in paper.RESULTS]
    names += [f"resnet110-{v}" for v in SHARING_VARIANTS]
    names += EXTRA_MODELS
    names += list(NETWORKS)
    unique = list(dict.fromkeys(names))
    shipped = {model for model, _ in shipped_weights.PRETRAINED}
    return [name for name in unique if fnmatch.fnmatchcase(name, pattern)
            and (name in shipped or not pretrained)]


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _parse(name: str) -> tuple[str, Family, int, int, str]:
    parts = parse_name(name)
    if parts is None:
        raise ValueError(
            f"Unknown model {name!r}: names are {{resnet,preact}}{{depth}}[-variant], "
            f"wrn{{depth}}-{{widen}}[-variant] or a paper's network ({', '.join(NETWORKS)})."
            f"{_suggest(name)} See keras_resnets.list_models().")
    family = FAMILIES[parts.family]
    if family.widened != has_widen(name):
        expected = ("wrn{depth}-{widen}, e.g. wrn28-10" if family.widened
                    else f"{parts.family}{{depth}}")
        raise ValueError(f"Bad model name {name!r}: expected {expected}.{_suggest(name)}")
    if parts.variant and parts.variant not in VARIANTS:
        raise ValueError(
            f"Unknown variant {parts.variant!r} in {name!r}; accepted: {', '.join(VARIANTS)}."
            f"{_suggest(name)}")
    return parts.family, family, parts.depth, parts.widen, parts.variant


def _default_branch(depth: int, offset: int) -> str:
    """Basic units where depth = 6n+2 (ResNet-20 ... 1202), bottleneck where 9n+2 (164, 1001)."""
    if depth in PAPER_DEPTHS["bottleneck"]:
        return "bottleneck"
    return "bottleneck" if (depth - offset) % 6 and not (depth - offset) % 9 else "basic"


def _default_projection(branch: str, family: Family) -> str:
    """The shortcut where the shape changes: He et al. 2016 (appendix, CIFAR)
    use 1x1 projections for bottleneck nets and follow He et al. 2015's parameter-free
    zero-padding ("option A") for basic-unit nets; wide ResNets project (Zagoruyko &
    Komodakis), as do Jastrzebski et al.'s shared variants (their rows say so)."""
    return "conv" if branch == "bottleneck" or family.widened else "pad"


def _units_per_stage(name: str, depth: int, branch: str, offset: int) -> int:
    per_unit = 3 * CONVS_PER_UNIT[branch]
    units, remainder = divmod(depth - offset, per_unit)
    if remainder or units < 1:
        lower = max(units, 1) * per_unit + offset
        near = sorted({lower, lower + per_unit} | ({lower - per_unit} if units > 1 else set()))
        raise ValueError(
            f"Impossible depth {depth} in {name!r}: {branch} units need depth = {per_unit}n+"
            f"{offset} (n >= 1 units per stage); nearest valid depths: "
            f"{', '.join(map(str, near))}. Paper depths: basic {PAPER_DEPTHS['basic']}, "
            f"bottleneck {PAPER_DEPTHS['bottleneck']}.")
    return units


def resolve(name: str, allow_large: bool = False, **overrides) -> dict:
    """The full builder settings of model ``name`` with ``overrides`` applied (validated).

    Refused with a ``ValueError`` before any work: an unknown name or override, a setting no
    network can have, a non-finite number anywhere in the overrides, ``num_classes`` or
    ``input_shape`` that are not positive integers, and a network estimated beyond
    ``MAX_PARAMETERS`` parameters or ``MAX_LAYERS`` weighted layers unless ``allow_large``.
    The settings always hold ``strided_padding`` (``"symmetric"`` unless overridden; see
    ``keras_resnets.units``) and, for the families' models, ``pad_placement``.
    """
    if not isinstance(name, str):
        raise ValueError(f"A model name must be a string such as 'preact20' (see "
                         f"keras_resnets.list_models()); got {name!r}.")
    _check_values(name, overrides)
    if name in NETWORKS:
        settings = _resolve_network(name, NETWORKS[name], overrides)
    else:
        settings = _resolve_family(name, overrides)
        settings.setdefault("pad_placement", "identity-first")
    settings.setdefault("strided_padding", STRIDED_PADDING)
    try:
        check_choice("strided_padding", settings["strided_padding"], STRIDED_PADDINGS)
        if "pad_placement" in settings:
            check_choice("pad_placement", settings["pad_placement"], PAD_PLACEMENTS)
    except ValueError as error:
        raise ValueError(f"{name!r}: {error}") from None
    _check_size(name, settings, allow_large)
    return settings


def _check_values(name: str, overrides: dict) -> None:
    """Refuse a non-finite number anywhere in ``overrides`` (nested too: ``standardize``,
    ``share_batchnorm``), and ``num_classes`` or ``input_shape`` that are not positive
    integers, before anything is resolved or built."""
    def non_finite(value) -> bool:
        if isinstance(value, Mapping):
            return any(map(non_finite, value.values()))
        if isinstance(value, (tuple, list)):
            return any(map(non_finite, value))
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and not math.isfinite(value))

    bad = [key for key, value in overrides.items() if non_finite(value)]
    if bad:
        raise ValueError(f"{name!r}: " + ", ".join(f"{key}={overrides[key]!r}" for key in bad)
                         + ": every number of a model's settings must be finite.")
    if "num_classes" in overrides and not _positive_int(overrides["num_classes"]):
        raise ValueError(f"{name!r}: num_classes must be a positive integer (not a bool); got "
                         f"{overrides['num_classes']!r}.")
    shape = overrides.get("input_shape", (1, 1, 1))
    if not (isinstance(shape, (tuple, list)) and len(shape) == 3
            and all(map(_positive_int, shape))):
        raise ValueError(f"{name!r}: input_shape must be (height, width, channels), three "
                         f"positive integers such as (32, 32, 3); got {shape!r}.")


def _positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _check_size(name: str, settings: dict, allow_large: bool) -> None:
    """Refuse a network beyond ``MAX_PARAMETERS`` or ``MAX_LAYERS`` (estimated from its
    settings, nothing built) unless ``allow_large``."""
    parameters, layers = estimate_size(settings)
    if not allow_large and (parameters > MAX_PARAMETERS or layers > MAX_LAYERS):
        raise ValueError(
            f"{name!r} would have about {parameters:,} parameters in {layers:,} weighted "
            f"layers (estimated before building), beyond the zoo's limits of "
            f"{MAX_PARAMETERS:,} parameters and {MAX_LAYERS:,} layers (the papers' largest: "
            f"ResNet-1202, 19.4M parameters). Check the depth; pass allow_large=True to build "
            f"it anyway.")


def _resolve_family(name: str, overrides: dict) -> dict:
    """A ``{family}{depth}[-{variant}]`` model: its family's and variant's settings, then
    ``overrides``."""
    prefix, family, depth, widen, variant = _parse(name)
    _refuse_unknown(name, overrides, OVERRIDABLE)
    variant_settings = VARIANTS[variant].settings if variant else {}
    if "ordering" in variant_settings and "ordering" in family.settings and prefix != "resnet":
        raise ValueError(
            f"{name!r}: the {variant!r} variant sets the unit ordering, which {prefix!r} already "
            f"fixes; use resnet{depth}-{variant}.")
    if "widen" in overrides and not family.widened:
        raise ValueError(f"{name!r} takes no override widen: only wrn{{depth}}-{{widen}} models.")
    settings = {"widen": widen, **family.settings, **variant_settings, **overrides}
    settings.setdefault("branch", _default_branch(depth, family.depth_offset))
    settings.setdefault("projection", _default_projection(settings["branch"], family))
    settings["units_per_stage"] = _units_per_stage(
        name, depth, settings["branch"], family.depth_offset)
    options = {k: settings.get(k) for k in SHORTCUT_OPTIONS}
    try:
        resolve_shortcut(settings.get("shortcut", "identity"), **options)
        check_architecture(settings["units_per_stage"],
                           downsample=settings.get("downsample", "conv"),
                           shared_blocks=settings.get("shared_blocks", 0))
    except ValueError as error:
        raise ValueError(f"{name!r}: {error}") from None
    return settings


def _refuse_unknown(name: str, overrides: dict, accepted: tuple) -> None:
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        hints = {k: difflib.get_close_matches(k, accepted, n=1) for k in unknown}
        raise ValueError(
            f"{name!r} takes no override {', '.join(unknown)}"
            + "".join(f" (did you mean {h[0]!r}?)" for h in hints.values() if h)
            + f"; accepted: {', '.join(accepted)}.")


def _resolve_network(name: str, network: Network, overrides: dict) -> dict:
    """A paper's network: its row, with ``blocks`` and ``filters`` per stage overridable."""
    _refuse_unknown(name, overrides, NETWORK_OVERRIDES)
    blocks = _per_stage(name, "blocks", overrides.get("blocks", network.blocks), network.blocks)
    filters = _per_stage(name, "filters", overrides.get("filters", network.filters),
                         network.filters)
    rest = {k: v for k, v in overrides.items() if k not in ("blocks", "filters")}
    return {**network.settings, **rest, "units_per_stage": blocks, "widths": filters,
            "stem_width": network.stem_width or filters[0]}


def _per_stage(name: str, key: str, value, paper_value: tuple) -> tuple[int, ...]:
    """``value`` as one positive integer per stage; a single integer is every stage's."""
    def positive(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    values = (value,) * len(paper_value) if positive(value) else value
    if not isinstance(values, (tuple, list)) or len(values) != len(paper_value) or not all(
            map(positive, values)):
        raise ValueError(
            f"{name!r}: {key} must be a positive integer (for every stage) or "
            f"{len(paper_value)} positive integers (one per stage; the paper's: {paper_value}); "
            f"got {value!r}.")
    return tuple(values)


def describe(name: str, **overrides) -> dict:
    """A plain dict: the architecture settings of ``name`` and the papers' numbers for it.

    ``paper_error`` maps dataset -> test error (%) for every paper row of exactly this model
    (``None`` where the paper reports that training failed); ``reference_errors`` lists He et
    al. 2015's and He et al. 2016 Table 4's errors for it (with mean and std over runs);
    ``paper_parameters`` is the parameter count the paper prints, where it prints one. The
    paper numbers stay with overrides that change only how the layers are computed
    (``GEOMETRY_OVERRIDES``). ``pretrained`` maps each shipped weights name of the model to
    how they were made and what they score (``keras_resnets.pretrained.Pretrained.metadata``:
    dataset, classes, measured test accuracy, epochs, recipe, training data, trainer, record,
    ``source``: trained here or ported and not trained here, and the settings they are built
    with).
    """
    settings = resolve(name, **overrides)
    description = {**_header(name), **settings}
    changed = set(overrides) - {*GEOMETRY_OVERRIDES, "allow_large"}  # still the papers' row
    rows = [] if changed else paper.results_for(name)
    description["paper_error"] = {row.dataset: row.error for row in rows}
    description["reference_errors"] = [] if changed else [
        dataclasses.asdict(row) for row in paper.reference_errors(name)]
    counted = paper.PARAMETERS.get(name)
    description["paper_parameters"] = counted.figure if counted and not changed else None
    description["pretrained"] = {weights: entry.metadata()
                                 for (model, weights), entry in shipped_weights.PRETRAINED.items()
                                 if model == name}
    return description


def _header(name: str) -> dict:
    """What the name says: a paper's network, or family, depth and variant."""
    if name in NETWORKS:
        return {"name": name, "summary": NETWORKS[name].summary}
    prefix, family, depth, _, variant = _parse(name)
    return {"name": name, "family": prefix, "family_summary": family.summary, "depth": depth,
            "variant": variant or None,
            "variant_summary": VARIANTS[variant].summary if variant else None}


class _NotGiven:
    """The default of ``num_classes`` and ``classes``: ``None`` is a value a caller can give
    (and is refused), so "not given" needs its own marker."""

    def __repr__(self) -> str:
        return "<not given>"


NOT_GIVEN = _NotGiven()


def build(name: str, num_classes: int = NOT_GIVEN, input_shape=(32, 32, 3), weights=None,
          allow_large: bool = False, *, include_top: bool = True, pooling=None,
          classes: int = NOT_GIVEN, classifier_activation=None, **overrides):
    """Build the zoo model ``name`` as a ``keras.Model`` returning logits, with
    ``keras.applications``' arguments.

    ``num_classes``: 10 unless given (with shipped weights: theirs); ``classes``,
    keras.applications' spelling, is an alias.
    ``include_top=False`` drops the classifier and returns the body's last feature map (4D),
    or with ``pooling="avg"`` / ``"max"`` one vector per image; ``classifier_activation``:
    ``None`` (logits) or a Keras activation such as ``"softmax"`` on them. ``weights``:
    ``None`` (random initialisation), the name of shipped pretrained weights (``"cifar10"``,
    trained here; ``"akamaster"``, ported from PyTorch: ``list_models(pretrained=True)``) or
    the path of a ``.weights.h5`` file, loaded whole into the model these arguments build.
    Models with shipped weights take raw 0..255 images and are built with the geometry their
    weights were made with (``keras_resnets.pretrained``); with another ``num_classes`` or
    without the top, the body loads and the classifier starts fresh.

    Every model built here carries ``model.pretrained_layers``, the names of the layers whose
    weights came from ``weights`` (empty without), and ``model.pyramid_outputs``, each stage's
    output as keras-hub's ``{"P0": ..., "P1": ..., "P2": ...}`` (``pyramid_outputs``), so
    ``keras.Model(model.input, model.pyramid_outputs)`` extracts them. Neither attribute is
    saved in a ``.keras`` file: ``pyramid_outputs(loaded_model)`` finds the stages again.
    Settings that make no model (see ``resolve``) are refused before any layer is built, and
    so is a model estimated beyond ``MAX_PARAMETERS`` parameters or ``MAX_LAYERS`` layers
    unless ``allow_large=True``.

    >>> model = build("preact110")                        # doctest: +SKIP
    >>> model = build("resnet110-gate-exclusive", gate_bias=-7)  # doctest: +SKIP
    >>> model = build("preact20", weights="cifar10")      # doctest: +SKIP
    >>> model = build("resnet56", weights="akamaster")    # doctest: +SKIP
    >>> model = build("preact20", weights="cifar10", num_classes=100)  # doctest: +SKIP
    >>> features = build("preact20", weights="cifar10", include_top=False,
    ...                  pooling="avg")                   # doctest: +SKIP
    """
    top = {"include_top": include_top, "pooling": pooling,
           "classifier_activation": classifier_activation}
    try:
        check_top(**top)
    except ValueError as error:
        raise ValueError(f"{name!r}: {error}") from None
    from_file = shipped_weights.is_weights_file(weights)
    entry = None if weights is None or from_file else shipped_weights.find(name, weights)
    num_classes = _class_count(name, num_classes, classes, entry.num_classes if entry else 10)
    _check_values(name, {"num_classes": num_classes, "input_shape": input_shape})
    if entry is None:
        model = _built(name, num_classes, input_shape, allow_large, top, overrides)
        model.pretrained_layers = shipped_weights.load_file(model, weights) if from_file else ()
    else:
        model = _built_pretrained(name, entry, num_classes, input_shape, top, overrides)
    model.pyramid_outputs = pyramid_outputs(model)
    return model


def _class_count(name: str, num_classes, classes, default: int):
    """``num_classes``, or ``classes`` (keras.applications' name for it), or ``default``."""
    given = [n for n in (num_classes, classes) if n is not NOT_GIVEN]
    if len(given) == 2 and num_classes != classes:
        raise ValueError(f"{name!r}: num_classes={num_classes!r} and classes={classes!r} "
                         f"differ; classes is an alias of num_classes, give one of them.")
    return given[0] if given else default


def _built(name: str, num_classes: int, input_shape, allow_large: bool, top: dict,
           overrides: dict):
    """The model ``name`` with random weights: its validated settings, then the top."""
    settings = resolve(name, allow_large=allow_large, num_classes=num_classes,
                       input_shape=tuple(input_shape), **overrides)
    return resnet(name=name, **settings, **top)


def _built_pretrained(name: str, entry, num_classes: int, input_shape, top: dict,
                      overrides: dict):
    """The model with shipped weights ``entry``: built as they were trained, with the top
    asked for; every layer whose weights fit (all but a classifier of another class count,
    or that has no classifier) takes them from the weights' own model."""
    shipped_weights.check_compatible(entry, input_shape, overrides)
    settings = {"standardize": entry.standardize, **entry.settings}
    model = _built(name, num_classes, input_shape, False, top, settings)
    trained = _built(name, entry.num_classes, input_shape, False, FULL_TOP, settings)
    trained.load_weights(entry.path)
    model.pretrained_layers = shipped_weights.copy_fitting_weights(trained, model)
    return model
