"""Trained zoo models as TF SavedModels for TF Serving (``python -m saved_models.export``).

Exported artifacts live in ``saved_models/NAME/VERSION/`` and are git-ignored.
"""

import trainers  # noqa: F401  (first: switches oneDNN on before TensorFlow loads)
