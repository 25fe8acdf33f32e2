"""Training of zoo models with tf.distribute and the papers' recipe.

Importing this package first switches TensorFlow's oneDNN kernels on for x86 CPUs
(``trainers.onednn``; ``TF_ENABLE_ONEDNN_OPTS=0`` keeps them off).
"""

from trainers import onednn

onednn.enable()
