"""The training configuration: plain data that round-trips to JSON and names a whole run.

``TrainConfig.for_recipe("he2016", ...)`` fills in He et al. 2016's CIFAR recipe (papers.md):
SGD with momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1 (0.01 for the first 400
iterations, every depth), divided by 10 at 50% and 75% of training, 64k iterations. Every field
stays overridable; ``epochs`` shortens a recipe without changing its shape (the drops and the
warm-up stay at the same fractions of training).
"""

from dataclasses import dataclass, field

from trainers.jsonconfig import JsonConfig

REFERENCE_BATCH = 128  # The papers' mini-batch; the learning rate scales linearly from it.
PAPER_ITERATIONS = 64_000  # He et al. 2016's CIFAR training length
PAPER_WARMUP_ITERATIONS = 400  # at 0.01, "for all CIFAR experiments"
# Recipe name -> the settings it fixes (the dataclass defaults are He et al. 2016's recipe).
RECIPES = {
    "he2016": {"iterations": PAPER_ITERATIONS, "batch_size": REFERENCE_BATCH, "learning_rate": 0.1,
               "momentum": 0.9, "weight_decay": 1e-4, "lr_drops": (0.5, 0.75),
               "lr_drop_factor": 0.1, "warmup_learning_rate": 0.01, "augment": True},
}
STRATEGIES = ("auto", "default", "mirrored", "multiworker")


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
    lr_drops: tuple = (0.5, 0.75)  # fractions of training where the learning rate drops
    lr_drop_factor: float = 0.1
    warmup_iterations: int | None = None  # None: 400 of 64k, scaled with a shortened recipe
    warmup_learning_rate: float = 0.01
    augment: bool = True
    strategy: str = "auto"
    mixed_precision: bool = False
    jit_compile: bool = False
    steps_per_execution: int = 1  # training steps per compiled call (fewer host round trips)
    fused_batchnorm: bool = True  # TensorFlow's fused BN kernel while training (trainers.fused)
    seed: int = 0
    checkpoint_every: int = 1  # epochs between checkpoints
    record_every: int = 0  # epochs between iterative-inference measurements (0: never)
    # BatchNorm batch statistics over the global batch (synchronized across replicas, so every
    # replica keeps the same moving statistics), or per replica (False: the papers' 2-GPU
    # setup, each GPU normalising its half of the 128; Keras then keeps one set of moving
    # statistics per replica and saves the first replica's).
    sync_batchnorm: bool = True

    def __post_init__(self):
        self.lr_drops = tuple(self.lr_drops)
        if self.recipe not in RECIPES:
            raise ValueError(f"Unknown recipe {self.recipe!r}; accepted: {', '.join(RECIPES)}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy {self.strategy!r}; accepted: {', '.join(STRATEGIES)}.")
        positive = {"batch_size": self.batch_size, "iterations": self.iterations,
                    "steps_per_execution": self.steps_per_execution,
                    "learning_rate": self.learning_rate, "checkpoint_every": self.checkpoint_every}
        bad = {k: v for k, v in positive.items() if v is None or v <= 0}
        for name in ("epochs", "train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                bad[name] = value
        if bad:
            raise ValueError(f"These settings must be positive: {bad}.")
        if list(self.lr_drops) != sorted(self.lr_drops) or not all(
                0 < d < 1 for d in self.lr_drops):
            raise ValueError(f"lr_drops must be increasing fractions of training in (0, 1); "
                             f"got {self.lr_drops}.")
        if self.record_every < 0 or (self.warmup_iterations or 0) < 0:
            raise ValueError("record_every and warmup_iterations must be >= 0.")

    @classmethod
    def for_recipe(cls, recipe: str = "he2016", **overrides) -> "TrainConfig":
        """The config of ``recipe`` (see ``RECIPES``) with ``overrides`` on top."""
        if recipe not in RECIPES:
            raise ValueError(f"Unknown recipe {recipe!r}; accepted: {', '.join(RECIPES)}.")
        return cls(recipe=recipe, **{**RECIPES[recipe], **overrides})

    @property
    def scaled_learning_rate(self) -> float:
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
        return self.warmup_learning_rate * self.batch_size / REFERENCE_BATCH

    def resolved_epochs(self, steps_per_epoch: int) -> int:
        """``epochs`` if given, else enough whole epochs to cover ``iterations`` (64k
        iterations of 390 steps: 165 epochs)."""
        if self.epochs is not None:
            return self.epochs
        return -(-self.iterations // steps_per_epoch)

    def schedule_iterations(self, steps_per_epoch: int) -> int:
        """The iteration count the learning-rate drops are fractions of: ``iterations`` for the
        paper's length, ``epochs * steps_per_epoch`` when ``epochs`` shortens the recipe."""
        if self.epochs is not None:
            return self.epochs * steps_per_epoch
        return self.iterations
