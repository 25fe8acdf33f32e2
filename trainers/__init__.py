"""Training of zoo models with tf.distribute and the papers' recipe.

Importing this package first switches TensorFlow's oneDNN kernels on for x86 CPUs
(``trainers.onednn``; ``TF_ENABLE_ONEDNN_OPTS=0`` keeps them off).

Layer 1 of the project (``tests/test_layering.py``): imports only the zoo, ``keras_resnets``;
``analysis``, ``saved_models`` and ``experiments`` build on it, never the other way round.
"""

from trainers import onednn

onednn.enable()
