"""He et al. 2016's CIFAR augmentation as one batched Keras layer (papers.md, training recipe).

"4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded image
or its horizontal flip." ``PadCropFlip`` does this for a whole batch at once with ``keras.ops``,
so it runs on the accelerator under every backend (no per-image host work): each crop is two
batched products with one-hot row and column selectors, which is exact (every output pixel is
one input pixel times 1) and lets a flip be a reversed column selector.
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_resnets")
class PadCropFlip(layers.Layer):
    """Zero-pad by ``pad`` pixels, crop back to the input size at a random offset, and flip
    horizontally with probability 1/2; one draw per image. The identity at inference."""

    def __init__(self, pad=4, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(pad) != pad or pad < 0:
            raise ValueError(f"pad must be a non-negative integer number of pixels; got {pad}.")
        self.pad, self.seed = int(pad), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, images, training=False):
        """Pad, crop and flip every image of the batch while training; the images unchanged
        otherwise."""
        if not training:
            return images
        height, width = images.shape[1], images.shape[2]
        batch = ops.shape(images)[0]
        padded = ops.pad(images, [[0, 0], [self.pad] * 2, [self.pad] * 2, [0, 0]])
        rows = self._selector(batch, height, flip=None)
        columns = self._selector(batch, width, flip=self._coin(batch))
        cropped = ops.einsum("bip,bpqc->biqc", ops.cast(rows, padded.dtype), padded)
        return ops.einsum("bjq,biqc->bijc", ops.cast(columns, padded.dtype), cropped)

    def _coin(self, batch):
        return keras.random.uniform((batch,), seed=self.seed_generator) < 0.5

    def _selector(self, batch, size, flip):
        """One-hot (batch, size, size + 2 * pad): output position i reads padded position
        ``offset + i`` (``offset + size - 1 - i`` where ``flip``)."""
        offset = keras.random.randint((batch, 1), 0, 2 * self.pad + 1, seed=self.seed_generator)
        position = ops.arange(size)[None, :]
        if flip is not None:
            position = ops.where(flip[:, None], size - 1 - position, position)
        return ops.one_hot(offset + position, size + 2 * self.pad)

    def compute_output_shape(self, input_shape):
        """The input's shape: the crop is back to the input size."""
        return input_shape

    def get_config(self):
        """The ``__init__`` arguments, so ``from_config`` rebuilds the layer."""
        return {**super().get_config(), "pad": self.pad, "seed": self.seed}
