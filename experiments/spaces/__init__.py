"""Search spaces for tuning the zoo: a small JSON file the user edits, checked before any trial.

    {"model":  {"base": ["resnet", "preact"], "depth": [8, 14, 20],
                "variant": ["", "gate-exclusive"],
                "gate_bias": {"min": -7, "max": 0, "step": 1}},
     "recipe": {"learning_rate": {"min": 0.01, "max": 0.2, "sampling": "log"},
                "batch_size": [64, 128]}}

Each entry is one hyperparameter: a list is a choice, a single value is fixed, and
``{"min", "max"[, "step"][, "sampling"]}`` is a range (integers when min, max and step are
integers: write ``0.0`` for a float; sampling ``linear``, ``log`` or ``reverse_log``, where, as in
KerasTuner, the step multiplies). The model is named as in the zoo,
``{base}{depth}[-{widen}][-{variant}]`` (``widen`` only for ``wrn``); a shortcut option
(``gate_bias``, ``shortcut_scale``, ``branch_scale``, ``shortcut_dropout``: He et al. 2016,
Table 1) applies only to the variants whose shortcut takes it, so it is a conditional
hyperparameter; ``dropout_rate`` (between a unit's convolutions, as in wide ResNets) applies to
all. Recipe entries (``RECIPE_KEYS``) replace fields of ``TrainConfig``; ``learning_rate`` is the
rate at the papers' batch of 128 and scales linearly with the swept ``batch_size``.

``load("smoke")`` reads a file bundled here (``smoke.json``, ``ablation.json``); any other value is
a path.
"""

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from keras_resnets.names import format_name
from keras_resnets.registry import FAMILIES, VARIANTS, resolve
from keras_resnets.shortcuts import SHORTCUT_OPTIONS, SHORTCUTS
from trainers.config import TrainConfig

BUNDLED = Path(__file__).parent
NAME_KEYS = ("base", "depth", "widen", "variant")  # the parts of a zoo model name
OVERRIDE_KEYS = SHORTCUT_OPTIONS + ("dropout_rate",)  # builder overrides (dropout: WRN's)
MODEL_KEYS = NAME_KEYS + OVERRIDE_KEYS
RECIPE_KEYS = ("learning_rate", "weight_decay", "batch_size", "momentum", "warmup_iterations",
               "warmup_learning_rate", "lr_drop_factor")
INTEGER_RECIPE_KEYS = ("batch_size", "warmup_iterations")
RANGE_KEYS = {"min", "max", "step", "sampling"}
SAMPLINGS = ("linear", "log", "reverse_log")


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter: a choice among ``values`` (fixed when there is one) or a range."""

    name: str
    values: tuple | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    sampling: str = "linear"

    @property
    def is_int(self) -> bool:
        """Whether the range is over integers (bounds and step all integers), for ``hp.Int``."""
        return all(isinstance(v, int) for v in (self.min, self.max, self.step or 1))

    @property
    def swept(self) -> bool:
        """Whether the tuner chooses a value (a range or several values), not fixed."""
        return self.values is None or len(self.values) > 1

    def candidates(self) -> tuple:
        """Every value an integer range or choice can take; a float range's two ends."""
        if self.values is not None:
            return self.values
        if not self.is_int:
            return (self.min, self.max)
        if self.sampling == "linear" or not self.step:
            return tuple(range(self.min, self.max + 1, self.step or 1))
        values = [self.min]  # KerasTuner: on a log scale the step multiplies
        while values[-1] * self.step <= self.max:
            values.append(values[-1] * self.step)
        return tuple(values)

    def declare(self, hp):
        """Register this dimension on a ``keras_tuner.HyperParameters`` and return its value."""
        if self.values is not None:
            if len(self.values) == 1:
                return hp.Fixed(self.name, self.values[0])
            return hp.Choice(self.name, list(self.values))
        kind = hp.Int if self.is_int else hp.Float
        return kind(self.name, self.min, self.max, step=self.step, sampling=self.sampling)

    def to_json(self):
        """The JSON form the dimension was parsed from: a value, a list or a range dict."""
        if self.values is not None:
            return self.values[0] if len(self.values) == 1 else list(self.values)
        spec = {"min": self.min, "max": self.max, "step": self.step, "sampling": self.sampling}
        return {k: v for k, v in spec.items() if v is not None}


def parse_dimension(name: str, spec) -> Dimension:
    """A ``Dimension`` from its JSON form (list, single value or range dict)."""
    if isinstance(spec, dict):
        unknown = set(spec) - RANGE_KEYS
        if unknown or not {"min", "max"} <= set(spec):
            raise ValueError(f"{name}: a range takes min, max and optionally step and sampling; "
                             f"got keys {sorted(spec)}.")
        low, high, step = spec["min"], spec["max"], spec.get("step")
        sampling = spec.get("sampling", "linear")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                   for v in (low, high, step or 1)):
            raise ValueError(f"{name}: min, max and step must be numbers; got {spec}.")
        if low > high or (step is not None and step <= 0):
            raise ValueError(f"{name}: need min <= max and step > 0; got {spec}.")
        if sampling not in SAMPLINGS or (sampling != "linear" and (
                low <= 0 or (step is not None and step <= 1))):
            raise ValueError(f"{name}: sampling must be one of {', '.join(SAMPLINGS)} (log "
                             f"scales need min > 0 and a step, a multiplier, > 1); got {spec}.")
        return Dimension(name, None, low, high, step, sampling)
    values = tuple(spec) if isinstance(spec, list) else (spec,)
    if {type(v) for v in values} == {int, float}:
        values = tuple(map(float, values))  # KerasTuner wants one type: [0, 1e-4] is floats
    if not values or len({type(v) for v in values}) != 1 or type(values[0]) not in (
            str, int, float):
        raise ValueError(f"{name}: a choice is a non-empty list of strings or of numbers; got "
                         f"{spec!r}.")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: repeated values in {list(values)}.")
    return Dimension(name, values)


def option_variants(option: str) -> tuple[str, ...]:
    """The zoo variants whose shortcut takes ``option`` (e.g. gate_bias: the gated ones)."""
    return tuple(name for name, variant in VARIANTS.items()
                 if option in SHORTCUTS[variant.settings.get("shortcut", "identity")].options)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: model dimensions and recipe dimensions, by name."""

    model: dict
    recipe: dict

    def dimensions(self) -> dict:
        """Every dimension, model and recipe, by name."""
        return {**self.model, **self.recipe}

    def condition(self, name: str) -> tuple[str, tuple] | None:
        """``(parent, values)`` under which dimension ``name`` is active; ``None``: always."""
        if name == "widen":
            return "base", ("wrn",)
        if name in SHORTCUT_OPTIONS:
            users = option_variants(name)
            return "variant", tuple(v for v in self.model["variant"].candidates() if v in users)
        return None

    def active(self, name: str, values: dict) -> bool:
        """Whether dimension ``name`` applies, given the values of its parent dimensions."""
        condition = self.condition(name)
        return condition is None or values[condition[0]] in condition[1]

    def to_json(self) -> dict:
        """The space as JSON, ``{"model": ..., "recipe": ...}``, in one canonical form."""
        return {part: {name: dim.to_json() for name, dim in getattr(self, part).items()}
                for part in ("model", "recipe")}


def from_dict(data: dict, source: str = "search space") -> SearchSpace:
    """Parse and validate a search space; every error is raised here, before any trial."""
    try:
        space = _parse(data)
        _check_recipe(space)
        _check_models(space)
    except ValueError as error:
        raise ValueError(f"Bad search space ({source}): {error}") from None
    return space


def load(name_or_path) -> SearchSpace:
    """A bundled space by name (``smoke``, ``ablation``) or a JSON file by path."""
    path = Path(name_or_path)
    bundled = BUNDLED / f"{name_or_path}.json"
    if not path.is_file() and bundled.is_file():
        path = bundled
    if not path.is_file():
        names = sorted(p.stem for p in BUNDLED.glob("*.json"))
        raise ValueError(f"No search space {str(name_or_path)!r}: give a JSON file or one of the "
                         f"bundled spaces: {', '.join(names)}.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"Search space {path} is not valid JSON: {error}") from None
    return from_dict(data, str(path))


def _parse(data) -> SearchSpace:
    if not isinstance(data, dict) or set(data) - {"model", "recipe"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"the top level takes the keys model and recipe; got {keys}.")
    parts = {}
    for part, accepted in (("model", MODEL_KEYS), ("recipe", RECIPE_KEYS)):
        given = data.get(part, {})
        if not isinstance(given, dict):
            raise ValueError(f"{part} must be an object of hyperparameters; got {given!r}.")
        if part == "model":
            given = {"variant": "", **given}  # no variant: the family's plain units
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise ValueError(f"unknown {part} keys {unknown}; accepted: {', '.join(accepted)}.")
        # Parents before the dimensions conditional on them: the order of ``accepted``.
        parts[part] = {name: parse_dimension(name, given[name])
                       for name in accepted if name in given}
    missing = [k for k in ("base", "depth") if k not in parts["model"]]
    if missing:
        raise ValueError(f"model needs {' and '.join(missing)} (e.g. \"base\": [\"preact\"], "
                         f"\"depth\": [20]).")
    return SearchSpace(**parts)


def _check_recipe(space: SearchSpace) -> None:
    """Every recipe value must make a valid ``TrainConfig``; counts must be integers."""
    for name, dim in space.recipe.items():
        for value in dim.candidates():
            if name in INTEGER_RECIPE_KEYS and not isinstance(value, int):
                raise ValueError(f"recipe {name} takes integers; got {value!r}.")
            try:
                dataclasses.replace(TrainConfig(), **{name: value})
            except ValueError as error:
                raise ValueError(f"recipe {name}={value!r}: {error}") from None


def _check_models(space: SearchSpace) -> None:
    """Resolve every model the space can name, with every option value it can take."""
    model = space.model
    bases, variants = model["base"].candidates(), model["variant"].candidates()
    unknown = [b for b in bases if b not in FAMILIES] + [v for v in variants
                                                         if v and v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown base or variant {unknown}; bases: {', '.join(FAMILIES)}; "
                         f"variants: '' (none), {', '.join(VARIANTS)}.")
    if ("wrn" in bases) != ("widen" in model):
        raise ValueError("widen is required with base 'wrn' (wrn{depth}-{widen}) and only then.")
    for option in SHORTCUT_OPTIONS:
        if option in model and not space.condition(option)[1]:
            raise ValueError(f"{option} is swept but no variant in the space takes it; it "
                             f"belongs to the variants {', '.join(option_variants(option))}.")
    widens = model["widen"].candidates() if "widen" in model else (None,)
    errors = []
    for base, depth, widen, variant in itertools.product(
            bases, model["depth"].candidates(), widens, variants):
        name = format_name(base, depth, widen, variant)
        values = {"base": base, "variant": variant}
        settings = [{}] + [{option: value} for option in OVERRIDE_KEYS
                           if option in model and space.active(option, values)
                           for value in model[option].candidates()]
        for overrides in settings:
            try:
                resolve(name, **overrides)  # every impossible setting, shared depth included
            except ValueError as error:
                errors.append(str(error))
    if errors:
        unique = list(dict.fromkeys(errors))
        more = f" (and {len(unique) - 3} more)" if len(unique) > 3 else ""
        raise ValueError(f"{len(unique)} invalid model setting(s) in the space: "
                         f"{' | '.join(unique[:3])}{more}")
