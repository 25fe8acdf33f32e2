"""Shared fixtures. Tests run on CPU, offline, with the TensorFlow backend."""

import os
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

import trainers  # noqa: E402,F401  (oneDNN on, as in every entry point)

SMALL_INPUT = (8, 8, 3)  # Parameter counts do not depend on the image size; builds are cheaper.


@pytest.fixture(scope="session")
def zoo_model():
    """``zoo_model(name, **overrides)``: the zoo model ``name`` built on 8x8x3 inputs, once per
    test session and shared between tests (deep models take seconds to build)."""
    import keras_resnets

    cache = {}

    def built(name, **overrides):
        key = (name, tuple(sorted(overrides.items())))
        if key not in cache:
            cache[key] = keras_resnets.build(name, input_shape=SMALL_INPUT, **overrides)
        return cache[key]

    return built


@pytest.fixture
def free_ports():
    """``free_ports(count)``: distinct TCP ports on 127.0.0.1 that were free a moment ago (all
    held open until chosen), for the multi-process tests (workers, KerasTuner's oracle)."""
    def choose(count: int) -> list[int]:
        sockets = [socket.socket() for _ in range(count)]
        try:
            for s in sockets:
                s.bind(("127.0.0.1", 0))
            return [s.getsockname()[1] for s in sockets]
        finally:
            for s in sockets:
                s.close()

    return choose
