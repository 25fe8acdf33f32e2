"""The papers' step learning-rate schedules as Keras's own ``PiecewiseConstantDecay``: a
``.keras`` file saved with its optimizer loads with Keras alone, on every backend."""

import math

import keras


def step_schedule(learning_rate, total_iterations, drops=(0.5, 0.75), drop_factor=0.1,
                  warmup_iterations=0, warmup_learning_rate=0.01, multipliers=None):
    """A constant rate that changes at fractions ``drops`` of ``total_iterations``, after
    ``warmup_iterations`` at ``warmup_learning_rate``
    (a ``keras.optimizers.schedules.PiecewiseConstantDecay``).

    He et al. 2016 (appendix): ``learning_rate`` multiplied by ``drop_factor`` at each drop
    (0.1 at 32k and 48k of 64k iterations), 400 iterations at 0.01 first. Jastrzebski et al.
    2018 (Sec. 4) drop by uneven factors (0.1 -> 0.01 -> 0.001 -> 0.00001 -> 0.000011):
    ``multipliers`` gives the rate after each drop as a multiple of ``learning_rate`` (one per
    drop; it replaces ``drop_factor``). A drop at fraction ``f`` takes effect at the first
    iteration ``>= f * total_iterations``, so a schedule keeps its shape at any length.
    """
    pieces = step_pieces(learning_rate, total_iterations, drops, drop_factor, warmup_iterations,
                         warmup_learning_rate, multipliers)
    # PiecewiseConstantDecay takes values[i] while step <= boundaries[i]: a piece from
    # iteration ``start`` on follows the boundary ``start - 1``. It needs one boundary at
    # least: a constant rate is split in two equal pieces.
    boundaries = [start - 1 for start, _ in pieces[1:]] or [0]
    values = [rate for _, rate in pieces] * (2 if len(pieces) == 1 else 1)
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def step_pieces(learning_rate, total_iterations, drops=(0.5, 0.75), drop_factor=0.1,
                warmup_iterations=0, warmup_learning_rate=0.01,
                multipliers=None) -> list[tuple[int, float]]:
    """``(first iteration, rate)`` of every constant piece of ``step_schedule``, in order: the
    warm-up, then the rate in force when it ends, then each later drop."""
    drops = tuple(float(d) for d in drops)
    if list(drops) != sorted(drops):
        raise ValueError(f"drops must be increasing fractions of training; got {drops}.")
    if multipliers is None:
        multipliers = tuple(drop_factor ** (i + 1) for i in range(len(drops)))
    if len(multipliers) != len(drops):
        raise ValueError(f"multipliers must give one rate per drop: {len(drops)} drops "
                         f"{drops}, got {len(multipliers)} {tuple(multipliers)}.")
    rates = {0: float(learning_rate)}  # first iteration -> rate; a later drop there wins
    for fraction, multiplier in zip(drops, multipliers):
        # Rounded first: 80/300 of 3000 iterations is 800, not 800.0000000000001.
        rates[math.ceil(round(fraction * total_iterations, 6))] = learning_rate * multiplier
    if warmup_iterations <= 0:
        return list(rates.items())
    after = [rate for start, rate in rates.items() if start <= warmup_iterations][-1]
    return [(0, float(warmup_learning_rate)), (warmup_iterations, after),
            *((start, rate) for start, rate in rates.items() if start > warmup_iterations)]
