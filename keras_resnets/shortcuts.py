"""Shortcut variants of He et al. 2016, Table 1 and Fig. 2, as merge rules.

Every unit computes a shortcut ``s = h(x)`` (identity, or a 1x1 projection when the shape
changes or the variant asks for it) and a branch ``r = F(x)``; the variant decides how they
merge. ``g = sigmoid(conv1x1(x) + b_g)`` is the per-channel, per-position gate of Sec. 3.1.
"""

from dataclasses import dataclass, field
from typing import Callable


def _add(shortcut, residual, gate, options):
    return shortcut + residual


def _scale(shortcut, residual, gate, options):
    """Constant scaling (Fig. 2b): lambda_s * h(x) + lambda_F * F(x)."""
    return options["shortcut_scale"] * shortcut + options["branch_scale"] * residual


def _gate_exclusive(shortcut, residual, gate, options):
    """Exclusive gating (Fig. 2c): (1 - g) * h(x) + g * F(x)."""
    return (1.0 - gate) * shortcut + gate * residual


def _gate_shortcut(shortcut, residual, gate, options):
    """Shortcut-only gating (Fig. 2d): (1 - g) * h(x) + F(x)."""
    return (1.0 - gate) * shortcut + residual


@dataclass(frozen=True)
class ShortcutKind:
    """How one variant builds its shortcut path and merges it with the branch."""

    merge: Callable
    options: dict[str, float] = field(default_factory=dict)  # accepted options, with defaults
    always_project: bool = False  # a 1x1 conv on every unit, not only where the shape changes
    gated: bool = False
    dropout: bool = False  # dropout on the shortcut path (Fig. 2f)


SHORTCUTS: dict[str, ShortcutKind] = {
    "identity": ShortcutKind(_add),
    "conv": ShortcutKind(_add, always_project=True),
    "scale": ShortcutKind(_scale, {"shortcut_scale": 1.0, "branch_scale": 1.0}),
    "gate-exclusive": ShortcutKind(_gate_exclusive, {"gate_bias": 0.0}, gated=True),
    "gate-shortcut": ShortcutKind(_gate_shortcut, {"gate_bias": 0.0}, gated=True),
    "dropout": ShortcutKind(_add, {"shortcut_dropout": 0.5}, dropout=True),
}

SHORTCUT_OPTIONS = ("shortcut_scale", "branch_scale", "gate_bias", "shortcut_dropout")


def resolve_shortcut(name: str, **given) -> tuple[ShortcutKind, dict[str, float]]:
    """The variant ``name`` and its options: defaults filled in, foreign options refused.

    ``given`` maps each of ``SHORTCUT_OPTIONS`` to a value or ``None`` (not given). An option
    that the variant does not use is an error rather than a silent no-op.
    """
    if name not in SHORTCUTS:
        raise ValueError(
            f"Unknown shortcut {name!r}; accepted: {', '.join(sorted(SHORTCUTS))}.")
    kind = SHORTCUTS[name]
    foreign = sorted(k for k, v in given.items() if v is not None and k not in kind.options)
    if foreign:
        users = sorted(n for n, k in SHORTCUTS.items() if set(foreign) & set(k.options))
        raise ValueError(
            f"shortcut={name!r} takes no {', '.join(foreign)}; "
            f"{'it takes ' + ', '.join(kind.options) if kind.options else 'it takes no options'}. "
            f"{', '.join(foreign)} belongs to shortcut={' / '.join(map(repr, users))}.")
    options = {k: float(given.get(k) if given.get(k) is not None else v)
               for k, v in kind.options.items()}
    if kind.dropout and not 0.0 <= options["shortcut_dropout"] < 1.0:
        raise ValueError(f"shortcut_dropout must be in [0, 1); got {options['shortcut_dropout']}.")
    return kind, options

