"""Jastrzebski et al. 2018, Sec. 6 and Fig. 8: what sharing blocks does to a model, measured.

``gradient_norm_ratio`` is Fig. 8's right-hand measurement, ``||dL/dh_1|| / ||dL/dh_{1+2n}||``:
how much the gradient grows from the first stage's start back to the last's (per epoch on one
fixed batch through ``gradient_ratio_callback``). ``activation_norms`` gives ``||h_j||`` and
``||F_j(h_j)||`` of every block, meant at initialisation: a shared stack adds the same branch
again and again, and the paper reads its effect off these norms. Any zoo model (or a foreign
one ``keras_resnets.ResidualChain`` reads) can be measured; a measurement leaves the model's BN
statistics as they were. ``experiments.sharing`` runs the study that uses them.
"""

import keras
import pandas as pd
import tensorflow as tf

from analysis.measures import crossentropy, prepare
from keras_resnets.chain import ResidualChain
from keras_resnets.shared import SharedResidualStack


def _stage_starts(chain) -> list[int]:
    """0-based index of the first block of every stage, in order."""
    return [block.index for block in chain.blocks if block.index_in_stage == 0]


def _keeping_statistics(model, measure, training):
    """``measure()``, with BN's moving statistics restored afterwards when ``training`` (a
    training-mode pass updates them; a measurement must leave the model as it was)."""
    saved = [(v, v.numpy()) for v in model.non_trainable_weights] if training else []
    try:
        return measure()
    finally:
        for variable, value in saved:
            variable.assign(value)


def gradient_norm_ratio(model, images, labels, training: bool = False) -> float:
    """Fig. 8 right: ``||dL/dh_1|| / ||dL/dh_{1+2n}||``, the gradient norm at the input of the
    first block of the first stage over that at the input of the first block of the last
    stage (block ``1 + 2n`` of a 3-stage net of ``n`` blocks per stage; a shared stack counts
    one block per step). ``L`` is the summed softmax cross-entropy of the batch (the ratio does
    not depend on that scale); the norms are over the whole batch. ``training``: BN uses batch
    statistics (the moving statistics are left untouched); default: inference mode, as
    ``analysis.measures``. Cheap enough to call once per epoch on a fixed batch."""
    chain = ResidualChain(model)
    images, labels = prepare(images, labels)
    first, last = _stage_starts(chain)[0], _stage_starts(chain)[-1]

    def measure():
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            inputs, _, logits = chain.hidden_states(images, training=training)
            loss = tf.reduce_sum(crossentropy(labels, logits))
        low, high = tape.gradient(loss, [inputs[first], inputs[last]],
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return float(tf.norm(low) / tf.norm(high))

    return _keeping_statistics(model, measure, training)


def activation_norms(model, images, training: bool = True) -> pd.DataFrame:
    """Fig. 8: per block ``j`` (0-based, in order), the mean over examples of ``||h_j||``
    (its input) and of ``||F_j(h_j)||`` (its branch output), and the logits' norm as the last
    row's ``output_norm``. Meant at initialisation: ``training=True`` (default) normalises with
    batch statistics, since untrained moving statistics say nothing; they are restored."""
    chain = ResidualChain(model)
    images = tf.cast(images, tf.float32)

    def norm(x):
        return float(tf.reduce_mean(tf.norm(tf.reshape(tf.cast(x, tf.float32),
                                                       [tf.shape(x)[0], -1]), axis=1)))

    def measure():
        inputs, parts, logits = chain.hidden_states(images, training=training)
        rows = [{"block": j, "stage": block.stage, "shared": _is_shared_step(model, block),
                 "input_norm": norm(h), "residual_norm": norm(p.residual)}
                for j, (block, h, p) in enumerate(zip(chain.blocks, inputs, parts))]
        table = pd.DataFrame(rows)
        table["output_norm"] = float("nan")
        table.loc[table.index[-1], "output_norm"] = norm(logits)
        return table

    return _keeping_statistics(model, measure, training)


def _is_shared_step(model, block) -> bool:
    return any(isinstance(layer, SharedResidualStack) and block.unit in layer.units
               for layer in model.layers)


def gradient_ratio_callback(images, labels, training: bool = False):
    """A Keras callback recording ``gradient_norm_ratio`` on one fixed batch before training
    (epoch 0) and after every epoch; its ``history`` is a list of ``(epoch, ratio)``."""

    class GradientRatioHistory(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history = []

        def _record(self, epoch):
            self.history.append(
                (epoch, gradient_norm_ratio(self.model, images, labels, training)))

        def on_train_begin(self, logs=None):
            self._record(0)

        def on_epoch_end(self, epoch, logs=None):
            self._record(epoch + 1)

    return GradientRatioHistory()
