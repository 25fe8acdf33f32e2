"""Shared fixtures. Tests run on CPU, offline, with the TensorFlow backend."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import trainers  # noqa: E402,F401  (oneDNN on, as in every entry point)
