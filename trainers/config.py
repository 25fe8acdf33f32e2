"""The training configuration: plain data that round-trips to JSON and names a whole run.

``TrainConfig.for_recipe("he2016", ...)`` fills in He et al. 2016's CIFAR recipe (appendix):
SGD with momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1 (0.01 for the first 400
iterations, every depth), divided by 10 at 50% and 75% of training, 64k iterations. The
``jastrzebski2018-*`` recipes are Jastrzebski et al. 2018's, one per network (see
``jastrzebski2018``). Every field stays overridable; ``epochs`` shortens a recipe without
changing its shape (the drops and the warm-up stay at the same fractions of training).

Plain data: this module imports no Keras, so a command line is parsed before TensorFlow loads.
"""

import math
import os
from dataclasses import dataclass, field

from trainers.jsonconfig import JsonConfig

REFERENCE_BATCH = 128  # The papers' mini-batch; the learning rate scales linearly from it.
PAPER_ITERATIONS = 64_000  # He et al. 2016's CIFAR training length
PAPER_WARMUP_ITERATIONS = 400  # at 0.01, "for all CIFAR experiments"


def jastrzebski2018(epochs: int, rates: dict, weight_decay: float = 1e-4) -> dict:
    """Jastrzebski et al. 2018's recipe for one network (their training details):
    SGD with momentum 0.9, flip + translation augmentation, learning rate 0.1 then
    ``rates`` (``{first epoch: rate}``) over ``epochs`` epochs, no warm-up (none is mentioned).

    The drops are stored as fractions of training and the rates as multiples of 0.1, so
    ``epochs`` (``--epochs``) shortens the recipe keeping its shape. The paper gives neither
    weight decay nor batch size: batch 128 (the rate 0.1 at 128, as in He et al. 2016) and
    weight decay 1e-4 (He et al. 2016's CIFAR value; the wide ResNet takes 5e-4, Zagoruyko
    and Komodakis 2016's CIFAR value).
    """
    return {"epochs": epochs, "batch_size": REFERENCE_BATCH, "learning_rate": 0.1,
            "momentum": 0.9, "weight_decay": weight_decay, "warmup_iterations": 0,
            "lr_drops": tuple(epoch / epochs for epoch in rates),
            "lr_multipliers": tuple(round(rate / 0.1, 12) for rate in rates.values()),
            "augment": True}


# Jastrzebski et al. 2018's printed schedules (experimental setup), one recipe per network of
# keras_resnets.registry.NETWORKS. ResNet-110: the printed numbers as they are, 0.00001 from
# epoch 200 then 0.000011 from 240 (a slight rise, kept as printed).
# Wide ResNet: "0.1 until epoch 60, 0.02 until 100" read as 100 epochs with one drop at 60.
J18_SINGLE_AVGPOOL_RATES = {40: 0.02, 60: 0.004, 80: 0.0008}
# Recipe name -> the settings it fixes (the dataclass defaults are He et al. 2016's recipe).
RECIPES = {
    "he2016": {"iterations": PAPER_ITERATIONS, "batch_size": REFERENCE_BATCH, "learning_rate": 0.1,
               "momentum": 0.9, "weight_decay": 1e-4, "lr_drops": (0.5, 0.75),
               "lr_drop_factor": 0.1, "warmup_learning_rate": 0.01, "augment": True},
    "jastrzebski2018-resnet": jastrzebski2018(  # j18-resnet110
        300, {80: 0.01, 120: 0.001, 200: 0.00001, 240: 0.000011}),
    "jastrzebski2018-single": jastrzebski2018(200, J18_SINGLE_AVGPOOL_RATES),  # j18-single
    "jastrzebski2018-avgpool": jastrzebski2018(100, J18_SINGLE_AVGPOOL_RATES),  # j18-avgpool
    "jastrzebski2018-wrn": jastrzebski2018(100, {60: 0.02}, weight_decay=5e-4),  # j18-wrn
}
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
# mixed_precision: the compute dtype -> the Keras dtype policy of the model (variables stay
# float32). float16 needs loss scaling (its narrow range underflows small gradients), bfloat16
# has float32's range and needs none. Unset: float32 throughout.
PRECISION_POLICIES = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
# What a config saved when mixed_precision was a switch meant by it: trainers.train's float16.
LEGACY_PRECISIONS = {False: None, True: "float16"}
# Where a run's files lie, not what it computes: a run folder moved or cloned elsewhere, or
# reading the same data from another folder, is still the same run.
LOCATION_FIELDS = ("out", "data_dir")
# What a run measures along the way, not what it trains: the weights are the same whatever
# the test set's evaluation schedule (evaluation changes no state and draws no random numbers).
OBSERVATION_FIELDS = ("validation_every",)
# The geometry of strided convolutions (``keras_resnets.units``) that every run records in its
# model_overrides: the papers' symmetric padding; a run config without it trained with Keras's
# "same" padding.
STRIDED_PADDING = "symmetric"
UNRECORDED_STRIDED_PADDING = "same"


@dataclass
class TrainConfig(JsonConfig):
    """Everything that determines a training run. Written to ``config.json`` in the run folder."""

    model: str = "preact20"
    model_overrides: dict = field(default_factory=dict)
    dataset: str = "cifar10"
    data_dir: str | None = None
    train_size: int | None = None  # keep only the first N training examples
    test_size: int | None = None
    out: str = "runs/preact20-cifar10"
    recipe: str = "he2016"
    iterations: int = 64_000  # the paper's length; used when epochs is None
    epochs: int | None = None  # shortens (or lengthens) the recipe, keeping its shape
    batch_size: int = REFERENCE_BATCH  # global batch, split over replicas
    learning_rate: float = 0.1  # at REFERENCE_BATCH; scaled by batch_size / REFERENCE_BATCH
    momentum: float = 0.9
    weight_decay: float = 1e-4  # SGD weight decay, as an L2 penalty on conv/dense kernels
    lr_drops: tuple[float, ...] = (0.5, 0.75)  # fractions of training where the learning rate drops
    lr_drop_factor: float = 0.1
    # The rate after each drop as a multiple of learning_rate, one per drop (uneven drops,
    # Jastrzebski et al. 2018); replaces lr_drop_factor. None: lr_drop_factor at every drop.
    lr_multipliers: tuple[float, ...] | None = None
    warmup_iterations: int | None = None  # None: 400 of 64k, scaled with a shortened recipe
    warmup_learning_rate: float = 0.01
    augment: bool = True
    strategy: str = "auto"
    mixed_precision: str | None = None  # compute dtype (PRECISION_POLICIES); None: float32
    jit_compile: bool = False
    steps_per_execution: int = 1  # training steps per compiled call (fewer host round trips)
    fused_batchnorm: bool = True  # TensorFlow's fused BN kernel while training (trainers.fused)
    seed: int = 0
    checkpoint_every: int = 1  # epochs between checkpoints
    validation_every: int = 1  # epochs between test-set evaluations (the last is always)
    record_every: int = 0  # epochs between iterative-inference measurements (0: never)
    # BatchNorm batch statistics over the global batch (synchronized across replicas, so every
    # replica keeps the same moving statistics), or per replica (False: the papers' 2-GPU
    # setup, each GPU normalising its half of the 128; Keras then keeps one set of moving
    # statistics per replica and saves the first replica's).
    sync_batchnorm: bool = True
    # A new run that starts from these weights (a checkpoint of another run, e.g. the last good
    # epoch of a diverged one, or a final.keras) with this config's fresh schedule.
    init_from: str | None = None

    def __post_init__(self):
        """Every setting checked here, before anything is written or loaded (a ``ValueError``
        that says what is accepted). ``out`` is normalised: ``runs/x/`` is ``runs/x``."""
        self.lr_drops = tuple(self.lr_drops)
        if self.lr_multipliers is not None:
            self.lr_multipliers = tuple(self.lr_multipliers)
        self.out = os.path.normpath(self.out)
        if self.recipe not in RECIPES:
            raise ValueError(f"Unknown recipe {self.recipe!r}; accepted: {', '.join(RECIPES)}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy {self.strategy!r}; accepted: {', '.join(STRATEGIES)}.")
        if self.mixed_precision is not None and self.mixed_precision not in PRECISION_POLICIES:
            raise ValueError(f"Unknown mixed_precision {self.mixed_precision!r}; accepted: "
                             f"{', '.join(PRECISION_POLICIES)}, or unset for float32.")
        if not isinstance(self.model_overrides, dict):
            raise ValueError(f"model_overrides must be a JSON object such as "
                             f"'{{\"gate_bias\": -7}}'; got {self.model_overrides!r}.")
        # Every run records the geometry of its strided convs (keras_resnets.units); a config
        # written before it did reads back with Keras's "same" padding (upgrade).
        self.model_overrides = {"strided_padding": STRIDED_PADDING, **self.model_overrides}
        problems = [f"{name} must be {rule} (got {value!r})"
                    for name, value, rule, valid in self._rules() if not valid(value)]
        if problems:
            raise ValueError("Bad settings: " + "; ".join(problems) + ".")

    def _rules(self) -> list:
        """(name, value, what is accepted, check) for every number of the config."""
        def positive(v):
            return v is not None and math.isfinite(v) and v > 0

        def optional_positive(v):
            return v is None or positive(v)

        def non_negative(v):
            return v is not None and math.isfinite(v) and v >= 0

        def fractions(v):
            return list(v) == sorted(v) and all(0 < d < 1 for d in v)

        return [
            ("batch_size", self.batch_size, "a positive integer", positive),
            ("iterations", self.iterations, "a positive integer", positive),
            ("steps_per_execution", self.steps_per_execution, "a positive integer", positive),
            ("checkpoint_every", self.checkpoint_every, "a positive integer", positive),
            ("validation_every", self.validation_every, "a positive integer", positive),
            ("learning_rate", self.learning_rate, "a positive finite number", positive),
            ("warmup_learning_rate", self.warmup_learning_rate, "a positive finite number",
             positive),
            ("momentum", self.momentum, "in [0, 1)",
             lambda v: non_negative(v) and v < 1),
            ("weight_decay", self.weight_decay, ">= 0 and finite", non_negative),
            ("lr_drop_factor", self.lr_drop_factor, "in (0, 1]",
             lambda v: positive(v) and v <= 1),
            ("lr_drops", self.lr_drops, "increasing fractions of training in (0, 1)", fractions),
            ("lr_multipliers", self.lr_multipliers,
             f"unset or {len(self.lr_drops)} positive finite numbers, one per lr_drops",
             lambda v: v is None or (len(v) == len(self.lr_drops)
                                     and all(positive(m) for m in v))),
            ("epochs", self.epochs, "a positive integer or unset", optional_positive),
            ("train_size", self.train_size, "a positive integer or unset", optional_positive),
            ("test_size", self.test_size, "a positive integer or unset", optional_positive),
            ("warmup_iterations", self.warmup_iterations, ">= 0 or unset",
             lambda v: v is None or v >= 0),
            ("record_every", self.record_every, ">= 0", lambda v: v >= 0),
        ]

    def differences(self, other: "TrainConfig") -> dict:
        """``{field: (self's, other's)}`` for every setting that changes what is trained
        (``LOCATION_FIELDS`` and ``OBSERVATION_FIELDS`` aside): empty when ``other`` is the same
        run."""
        ignored = LOCATION_FIELDS + OBSERVATION_FIELDS
        return {name: (getattr(self, name), getattr(other, name))
                for name in self.__dataclass_fields__
                if name not in ignored and getattr(self, name) != getattr(other, name)}

    @property
    def dtype_policy(self) -> str:
        """The Keras dtype policy the model is built under: ``mixed_float16``,
        ``mixed_bfloat16`` or ``float32``."""
        return PRECISION_POLICIES.get(self.mixed_precision, "float32")

    @classmethod
    def upgrade(cls, data: dict) -> dict:
        """A config whose ``model_overrides`` lack ``strided_padding`` was written before runs
        recorded it and trained with Keras's ``"same"`` padding: it reads back with
        ``strided_padding="same"``. One whose ``mixed_precision`` is ``true``/``false`` was
        written when it was a switch: it reads back as ``"float16"`` (what ``trainers.train``
        computed in) or unset (float32)."""
        if isinstance(data.get("model_overrides"), dict):
            data = {**data, "model_overrides": {"strided_padding": UNRECORDED_STRIDED_PADDING,
                                                **data["model_overrides"]}}
        if isinstance(data.get("mixed_precision"), bool):
            data = {**data, "mixed_precision": LEGACY_PRECISIONS[data["mixed_precision"]]}
        return data

    @classmethod
    def for_recipe(cls, recipe: str = "he2016", **overrides) -> "TrainConfig":
        """The config of ``recipe`` (see ``RECIPES``) with ``overrides`` on top."""
        if recipe not in RECIPES:
            raise ValueError(f"Unknown recipe {recipe!r}; accepted: {', '.join(RECIPES)}.")
        return cls(recipe=recipe, **{**RECIPES[recipe], **overrides})

    @property
    def scaled_learning_rate(self) -> float:
        """``learning_rate`` scaled linearly from the papers' batch of 128 to ``batch_size``."""
        return self.learning_rate * self.batch_size / REFERENCE_BATCH

    def resolved_warmup_iterations(self, steps_per_epoch: int) -> int:
        """He et al. 2016 (appendix): "for all CIFAR experiments we warm up the training by
        using a smaller learning rate of 0.01 at the beginning 400 iterations", every depth.
        400 of the paper's 64k iterations: a shortened recipe keeps that fraction (``epochs=
        82`` of 390 steps warms up for 200 iterations). An explicit value wins."""
        if self.warmup_iterations is not None:
            return self.warmup_iterations
        return round(PAPER_WARMUP_ITERATIONS * self.schedule_iterations(steps_per_epoch)
                     / PAPER_ITERATIONS)

    @property
    def scaled_warmup_learning_rate(self) -> float:
        """``warmup_learning_rate`` scaled linearly from the papers' batch of 128 to
        ``batch_size``."""
        return self.warmup_learning_rate * self.batch_size / REFERENCE_BATCH

    def resolved_epochs(self, steps_per_epoch: int) -> int:
        """``epochs`` if given, else enough whole epochs to cover ``iterations`` (64k
        iterations of 390 steps: 165 epochs)."""
        if self.epochs is not None:
            return self.epochs
        return -(-self.iterations // steps_per_epoch)

    def learning_rate_schedule(self, steps_per_epoch: int):
        """The recipe's step schedule (``keras_resnets.schedules.step_schedule``, a Keras
        ``PiecewiseConstantDecay``), rates scaled linearly by ``batch_size / 128``
        (``lr_multipliers`` are multiples of the scaled rate, so they scale with it)."""
        from keras_resnets.schedules import step_schedule  # Keras loads with a run, not a config

        return step_schedule(self.scaled_learning_rate, self.schedule_iterations(steps_per_epoch),
                             self.lr_drops, self.lr_drop_factor,
                             self.resolved_warmup_iterations(steps_per_epoch),
                             self.scaled_warmup_learning_rate, self.lr_multipliers)

    def schedule_iterations(self, steps_per_epoch: int) -> int:
        """The iteration count the learning-rate drops are fractions of: ``iterations`` for the
        paper's length, ``epochs * steps_per_epoch`` when ``epochs`` shortens the recipe."""
        if self.epochs is not None:
            return self.epochs * steps_per_epoch
        return self.iterations
