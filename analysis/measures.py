"""Per-batch measurements of Jastrzebski et al. 2018 on a ``ResidualChain`` (a zoo model or
any Keras functional residual network: its blocks offer the zoo unit's ``parts`` and ``merge``).

Each ``*_sums`` function maps one batch to per-block SUMS over its examples (plus ``count``),
so that a loop can add them over batches and replicas and divide once at the end
(``analysis.loop``). Everything runs in inference mode (``training=False``): BN uses its
moving statistics, so examples do not interact and per-example quantities are well defined.

Conventions (the paper's chain ``h_{j+1} = h_j + F_j(h_j)`` and its Eq. 3):

- ``F_j(h_j)`` is ``unit.parts(h_j).residual``, the branch output before the merge (for gated
  or scaled shortcuts, before the gate or scale is applied; for a foreign model, the Add input
  that is not the shortcut).
- The gradient ``dL/dh_j`` is that of the summed cross-entropy of the batch, so each example's
  slice is the gradient of its own loss. All of them come from ONE ``tape.gradient`` call.
- A block whose branch has another shape than its input (the first unit of a downsampling or
  widening stage) has no ``dL/dh_j`` of F's shape: for it the gradient is taken with respect to
  the block's shortcut output ``h(h_j)`` (``parts.shortcut``, same shape as F), and the l2 ratio
  divides by ``||h(h_j)||``. For an identity block ``dL/dh_j = dL/dh_{j+1} (I + dF/dh_j)``, so
  both readings agree to first order in F. The frame says which was used (``gradient_wrt``).
"""

import tensorflow as tf


def _float(x):
    """float32 for half-precision tensors (mixed precision); float32/64 kept as they are."""
    return x if x.dtype in (tf.float32, tf.float64) else tf.cast(x, tf.float32)


def _flat(x):
    x = _float(x)
    return tf.reshape(x, [tf.shape(x)[0], -1])


def cosine_per_example(a, b):
    """``cos(a_i, b_i)`` per example, flattened over positions and channels (0 if either is 0)."""
    a, b = _flat(a), _flat(b)
    dot = tf.reduce_sum(a * b, axis=1)
    return tf.math.divide_no_nan(dot, tf.norm(a, axis=1) * tf.norm(b, axis=1))


def l2_ratio_per_example(residual, reference):
    """``||F_i|| / ||h_i||`` per example (0 where the reference is 0)."""
    return tf.math.divide_no_nan(tf.norm(_flat(residual), axis=1),
                                 tf.norm(_flat(reference), axis=1))


def crossentropy(labels, logits):
    """Per-example softmax cross-entropy of integer ``labels``."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, _float(logits))


def correct(labels, logits):
    """1.0 where the arg-max class is the label, per example."""
    predicted = tf.argmax(logits, axis=-1, output_type=labels.dtype)
    return tf.cast(tf.equal(predicted, labels), tf.float32)


def entropy(logits):
    """Per-example entropy (nats) of the softmax prediction."""
    log_p = tf.nn.log_softmax(_float(logits))
    return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)


def total(x):
    """The batch sum of a per-example quantity, as float32 (one dtype for every output)."""
    return tf.cast(tf.reduce_sum(x), tf.float32)


def prepare(images, labels):
    """Float images and flat integer labels, whatever the dataset yields."""
    return tf.cast(images, tf.float32), tf.reshape(tf.cast(labels, tf.int32), [-1])


def readable_blocks(chain) -> int:
    """How many of the last blocks' outputs the model's head can read: those after the last
    transition, i.e. the last block that changes the shape or has layers before it (such as
    the avg-pooling net's 2x2 pooling). The last stage (Jastrzebski et al. 2018), or every
    block of a single-representation net; ``_intermediate`` finds the same blocks by shape."""
    transitions = [block.index for block in chain.blocks[1:]
                   if block.unit.changes_shape or block.before]
    return len(chain) - max(transitions, default=0)


def _classify(chain, labels, h):
    """Correct predictions and summed loss of the model's own head on the state ``h``."""
    logits = chain.head(h, training=False)
    return total(correct(labels, logits)), total(crossentropy(labels, logits))


def block_gradients(chain, images, labels, gradients: bool = True):
    """One forward pass and (with ``gradients``) one backward pass over all blocks.

    Returns ``(inputs, parts, references, grads, logits)``: per block ``h_j``, its
    ``UnitParts``, the reference state of F's shape (``h_j``, or the shortcut output for a
    shape-changing block) and ``dL/d reference`` of the summed cross-entropy (``None`` without
    ``gradients``), all from a single ``tape.gradient`` call.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)  # records every op, so the tape can reach any h_j
        inputs, parts, logits = chain.hidden_states(images, training=False)
        loss = tf.reduce_sum(crossentropy(labels, logits))
    references = [p.shortcut if block.unit.changes_shape else h
                  for block, h, p in zip(chain.blocks, inputs, parts)]
    grads = tape.gradient(loss, references,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO) if gradients else None
    return inputs, parts, references, grads, logits


def probe_sums(chain, images, labels, gradients: bool = True) -> dict:
    """Cosine loss, l2 ratio and intermediate accuracy of EVERY block from one forward pass
    (``chain.hidden_states``) and, with ``gradients``, one backward pass (``block_gradients``).

    Returns sums over the batch, each stacked over blocks (shape ``[L]``): ``cosine``,
    ``cosine_sq`` (with ``gradients``), ``l2_ratio``, ``l2_ratio_sq``;
    ``input_correct``/``input_loss`` (the head on ``h_j``) and ``output_correct``/
    ``output_loss`` (the head on block j's output), NaN where that state's shape differs from
    the last block's output; and ``count``, ``model_correct``, ``model_loss`` for the whole
    model.
    """
    images, labels = prepare(images, labels)
    inputs, parts, references, grads, logits = block_gradients(chain, images, labels, gradients)
    sums = {"count": tf.cast(tf.shape(labels)[0], tf.float32),
            "model_correct": total(correct(labels, logits)),
            "model_loss": total(crossentropy(labels, logits))}
    sums.update(_moments("l2_ratio", [l2_ratio_per_example(p.residual, ref)
                                      for p, ref in zip(parts, references)]))
    if gradients:
        sums.update(_moments("cosine", [cosine_per_example(p.residual, g)
                                        for p, g in zip(parts, grads)]))
    sums.update(_intermediate(chain, labels, inputs, parts))
    return sums


def _moments(name, per_block) -> dict:
    """Sum and sum of squares over the batch, stacked over blocks (for mean and std)."""
    return {name: tf.stack([total(v) for v in per_block]),
            f"{name}_sq": tf.stack([total(v * v) for v in per_block])}


def _intermediate(chain, labels, inputs, parts) -> dict:
    """The model's own head on ``h_j`` and on block j's output, where that state has the shape
    the head reads, the last block's output's: the last stage (Jastrzebski et al. 2018), or
    every block of a single-representation net. NaN elsewhere (it survives summing over
    batches and replicas): the dense layer reads one width and, after an AvgPool-Flatten
    classifier, one map size."""
    outputs = [block.unit.merge(p, training=False) for block, p in zip(chain.blocks, parts)]
    readable, missing = tuple(outputs[-1].shape[1:]), tf.constant(float("nan"))
    results = {}
    for where, states in (("input", inputs), ("output", outputs)):
        pairs = [_classify(chain, labels, state) if tuple(state.shape[1:]) == readable
                 else (missing, missing) for state in states]
        results[f"{where}_correct"] = tf.stack([hit for hit, _ in pairs])
        results[f"{where}_loss"] = tf.stack([lost for _, lost in pairs])
    return results


def drop_sums(chain, images, labels) -> dict:
    """Accuracy and loss with each block dropped in turn (``F_j = 0``, shortcut kept).

    One forward pass caches every ``h_j``; dropping block j then re-runs only the blocks after
    it (``chain.run_from(j, h_j, drop=j)``). Sums stacked over blocks: ``drop_correct``,
    ``drop_loss``; plus ``count``.
    """
    images, labels = prepare(images, labels)
    inputs, _, _ = chain.hidden_states(images, training=False)
    hits, losses = [], []
    for j, h in enumerate(inputs):
        logits = chain.run_from(j, h, training=False, drop=j)
        hits.append(total(correct(labels, logits)))
        losses.append(total(crossentropy(labels, logits)))
    return {"count": tf.cast(tf.shape(labels)[0], tf.float32),
            "drop_correct": tf.stack(hits), "drop_loss": tf.stack(losses)}
