"""Training of zoo models with tf.distribute and the papers' recipe."""
