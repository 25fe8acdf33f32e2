"""Builds each zoo model once per test session: deep models take seconds to build."""

import functools

import keras_resnets

SMALL_INPUT = (8, 8, 3)  # Parameter counts do not depend on the image size; builds are cheaper.


@functools.lru_cache(maxsize=None)
def _cached(name, overrides):
    return keras_resnets.build(name, input_shape=SMALL_INPUT, **dict(overrides))


def built(name, **overrides):
    """The zoo model ``name`` built on 8x8x3 inputs, shared across tests."""
    return _cached(name, tuple(sorted(overrides.items())))
