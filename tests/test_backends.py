"""The zoo is written with keras.ops and keras.layers only, so it runs on every Keras backend.

Models saved from the TensorFlow backend load in a JAX-backend process and give the same
outputs; the package itself never imports TensorFlow.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_resnets

PACKAGE = Path(keras_resnets.__file__).parent
MODELS = {"preact11": {}, "resnet8-gate-exclusive": {"gate_bias": -2.0},
          "resnet20-shared-bn": {"shared_blocks": 2}, "wrn10-2": {},
          "j18-avgpool": {"blocks": 1, "filters": 8}}

JAX_SCRIPT = """
import json, sys
import numpy as np, keras
import keras_resnets  # registers the zoo's layers for deserialisation
assert keras.backend.backend() == "jax"
folder = sys.argv[1]
images = np.load(f"{folder}/images.npy")
for name in json.loads(sys.argv[2]):
    model = keras.models.load_model(f"{folder}/{name}.keras")
    np.save(f"{folder}/{name}.jax.npy", np.asarray(model(images, training=False)))
"""


def test_package_never_imports_tensorflow():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("tensorflow", "tf") for n in names), path


@pytest.mark.slow
def test_tensorflow_saved_models_run_the_same_on_jax(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    expected = {}
    for name, overrides in MODELS.items():
        model = keras_resnets.build(name, input_shape=(16, 16, 3), **overrides)
        model.save(tmp_path / f"{name}.keras")
        expected[name] = np.asarray(model(images, training=False))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path), json.dumps(list(MODELS))],
                   env=env, check=True, timeout=300)
    for name, logits in expected.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.jax.npy"), logits, atol=1e-4)
