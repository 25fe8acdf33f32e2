"""Trained zoo models as TF SavedModels for TF Serving (``python -m saved_models.export``).

Exported artifacts live in ``saved_models/NAME/VERSION/`` and are git-ignored. Imports only
``trainers`` and ``keras_resnets`` (``tests/test_layering.py``); ``experiments.tune`` exports
its best model with it.
"""

import trainers  # noqa: F401  (first: switches oneDNN on before TensorFlow loads)
