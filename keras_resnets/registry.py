"""Model names as data: ``{family}{depth}[-{widen}][-{variant}]`` -> builder settings.

A family (``resnet``, ``preact``, ``wrn``) fixes the unit ordering and how depth maps to units
per stage; a variant (Tables 1-3 of He et al. 2016, architectures of Jastrzebski et al. 2018)
adds settings on top. ``build``, ``describe``, the ablation runner and the tuner all read the
tables below; adding a model is adding a row.
"""

import dataclasses
import difflib
import inspect
import re
from dataclasses import dataclass, field

from keras_resnets import paper, pretrained
from keras_resnets.architectures import check_architecture, resnet
from keras_resnets.branches import CONVS_PER_UNIT
from keras_resnets.shortcuts import SHORTCUT_OPTIONS, resolve_shortcut


@dataclass(frozen=True)
class Family:
    summary: str
    settings: dict
    depth_offset: int = 2  # depth = 3 * units_per_stage * convs_per_unit + depth_offset
    widened: bool = False  # the name carries the widen factor: wrn28-10


@dataclass(frozen=True)
class Variant:
    summary: str
    settings: dict = field(default_factory=dict)


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
    "1conv": Variant("Table 3: one 3x3 conv per unit (depth 3n+2)", {"branch": "single"}),
    "single": Variant("Jastrzebski et al.: single representation, downsampling in the stem",
                      {"downsample": "stem", "projection": "conv"}),
    "avgpool": Variant("Jastrzebski et al.: average-pooling downsampling between stages",
                       {"downsample": "avgpool", "projection": "conv"}),
    "shared": Variant("Jastrzebski et al. Fig. 8: top 13 units of each stage share weights",
                      {"shared_blocks": 13, "share_batchnorm": True, "projection": "conv"}),
    "shared-bn": Variant("Jastrzebski et al. Fig. 8: shared convs, unshared BN per step",
                         {"shared_blocks": 13, "share_batchnorm": False,
                          "projection": "conv"}),
}

PAPER_DEPTHS = {"basic": (20, 32, 44, 56, 110, 1202), "bottleneck": (164, 1001)}
EXTRA_MODELS = ("resnet38", "wrn16-4", "wrn16-8", "wrn28-10", "wrn40-4")
# Builder arguments a user may override; units_per_stage and name come from the model name.
OVERRIDABLE = tuple(p for p in inspect.signature(resnet).parameters
                    if p not in ("units_per_stage", "name", "unit_options")) + (
    "shortcut", "projection", "dropout_rate") + SHORTCUT_OPTIONS


def list_models(pattern: str = "*") -> list[str]:
    """The zoo's named models (every paper row and architecture), filtered by a glob pattern.

    Any depth that fits a family's rule also builds (``resnet74``, ``preact47-gate-exclusive``);
    this list holds the ones the papers use.
    """
    import fnmatch

    names = [f"{base}{depth}" for base in ("resnet", "preact")
             for depth in PAPER_DEPTHS["basic"] + PAPER_DEPTHS["bottleneck"]]
    names += [row.model_name() for row in paper.RESULTS]
    names += [f"resnet110-{v}" for v in ("single", "avgpool", "shared", "shared-bn")]
    names += EXTRA_MODELS
    unique = list(dict.fromkeys(names))
    return [name for name in unique if fnmatch.fnmatchcase(name, pattern)]


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _parse(name: str) -> tuple[str, Family, int, int, str]:
    match = re.fullmatch(r"(resnet|preact|wrn)(\d+)((?:-\d+)?)(?:-(.+))?", name)
    if not match:
        raise ValueError(
            f"Unknown model {name!r}: names are {{resnet,preact}}{{depth}}[-variant] or "
            f"wrn{{depth}}-{{widen}}[-variant].{_suggest(name)} See keras_resnets.list_models().")
    prefix, depth, widen, variant = match.groups()
    family = FAMILIES[prefix]
    if family.widened != bool(widen):
        expected = "wrn{depth}-{widen}, e.g. wrn28-10" if family.widened else f"{prefix}{{depth}}"
        raise ValueError(f"Bad model name {name!r}: expected {expected}.{_suggest(name)}")
    if variant is not None and variant not in VARIANTS:
        raise ValueError(
            f"Unknown variant {variant!r} in {name!r}; accepted: {', '.join(VARIANTS)}."
            f"{_suggest(name)}")
    return prefix, family, int(depth), int(widen[1:]) if widen else 1, variant or ""


def _default_branch(depth: int, offset: int) -> str:
    """Basic units where depth = 6n+2 (ResNet-20 ... 1202), bottleneck where 9n+2 (164, 1001)."""
    if depth in PAPER_DEPTHS["bottleneck"]:
        return "bottleneck"
    return "bottleneck" if (depth - offset) % 6 and not (depth - offset) % 9 else "basic"


def _default_projection(branch: str, family: Family) -> str:
    """The shortcut where the shape changes (papers.md, CIFAR architecture): He et al. 2016
    use 1x1 projections for bottleneck nets and follow He et al. 2015's parameter-free
    zero-padding ("option A") for basic-unit nets; wide ResNets project (Zagoruyko &
    Komodakis), as do Jastrzebski et al.'s networks (their variants say so)."""
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


def resolve(name: str, **overrides) -> dict:
    """The full builder settings of model ``name`` with ``overrides`` applied (validated)."""
    prefix, family, depth, widen, variant = _parse(name)
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        hints = {k: difflib.get_close_matches(k, OVERRIDABLE, n=1) for k in unknown}
        raise ValueError(
            f"{name!r} takes no override {', '.join(unknown)}"
            + "".join(f" (did you mean {h[0]!r}?)" for h in hints.values() if h)
            + f"; accepted: {', '.join(OVERRIDABLE)}.")
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
        check_architecture(settings["units_per_stage"], settings.get("downsample", "conv"),
                           settings.get("shared_blocks", 0))
    except ValueError as error:
        raise ValueError(f"{name!r}: {error}") from None
    return settings


def describe(name: str, **overrides) -> dict:
    """A plain dict: the architecture settings of ``name`` and the papers' numbers for it.

    ``paper_error`` maps dataset -> test error (%) for every paper row of exactly this model
    (``None`` where the paper reports that training failed); ``reference_errors`` lists He et
    al. 2015's and He et al. 2016 Table 4's errors for it (with mean and std over runs);
    ``paper_parameters`` is the parameter count the paper prints, where it prints one.
    """
    prefix, family, depth, _, variant = _parse(name)
    settings = resolve(name, **overrides)
    description = {"name": name, "family": prefix, "family_summary": family.summary,
                   "depth": depth, "variant": variant or None,
                   "variant_summary": VARIANTS[variant].summary if variant else None,
                   **settings}
    rows = [] if overrides else paper.results_for(name)
    description["paper_error"] = {row.dataset: row.error for row in rows}
    description["reference_errors"] = [] if overrides else [
        dataclasses.asdict(row) for row in paper.reference_errors(name)]
    counted = paper.PARAMETERS.get(name)
    description["paper_parameters"] = counted.figure if counted and not overrides else None
    return description


def build(name: str, num_classes: int = 10, input_shape=(32, 32, 3), weights=None,
          **overrides):
    """Build the zoo model ``name`` as a ``keras.Model`` returning logits.

    ``weights``: ``None`` (random initialisation) or the name of shipped pretrained weights
    (``"cifar10"``); those models take raw 0..255 images (``keras_resnets.pretrained``).

    >>> model = build("preact110")                        # doctest: +SKIP
    >>> model = build("resnet110-gate-exclusive", gate_bias=-7)  # doctest: +SKIP
    >>> model = build("preact20", weights="cifar10")      # doctest: +SKIP
    """
    if weights is None:
        settings = resolve(name, num_classes=num_classes, input_shape=tuple(input_shape),
                           **overrides)
        return resnet(name=name, **settings)
    entry = pretrained.find(name, weights)
    pretrained.check_compatible(entry, num_classes, input_shape, overrides)
    model = build(name, num_classes, input_shape, standardize=entry.standardize)
    model.load_weights(entry.path)
    return model
