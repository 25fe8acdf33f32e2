"""He et al. 2016's CIFAR augmentation as one batched Keras layer.

"4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded image
or its horizontal flip" (He et al. 2015, Sec. 4.2; He et al. 2016 follow that recipe). The
authors' Torch code pads images already standardised, so the padded zeros are the training
images' mean colour. ``PadCropFlip`` takes raw images (the zoo's models standardise inside) and
pads them with ``fill``, the training mean, as ``trainers.data`` does: once standardised by the
model, the border pixels are those zeros.

It works on a whole batch at once with ``keras.ops``, so it runs on the accelerator under every
backend (no per-image host work). Each crop is two batched products with one-hot row and column
selectors, and a flip is a reversed column selector. Output rows and columns that fall on the
border have an all-zero selector and get ``fill`` added elementwise. So every output pixel is
one input pixel times 1 or exactly ``fill``: no product ever rounds ``fill``, and the raw
0..255 pixels stay exact even where the accelerator multiplies float32 in reduced precision
(TF32 keeps 11 significant bits).
"""

import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_resnets")
class PadCropFlip(layers.Layer):
    """Pad by ``pad`` pixels of colour ``fill`` (one value, or one per channel: the training
    images' per-channel mean), crop back to the input size at a random offset, and flip
    horizontally with probability 1/2; one draw per image. The identity at inference."""

    def __init__(self, pad=4, seed=None, *, fill, **kwargs):
        super().__init__(**kwargs)
        if int(pad) != pad or pad < 0:
            raise ValueError(f"pad must be a non-negative integer number of pixels; got {pad}.")
        fill = tuple(float(v) for v in (fill if isinstance(fill, (list, tuple)) else [fill]))
        if not fill or not all(math.isfinite(v) for v in fill):
            raise ValueError(f"fill must be one finite colour value or one per channel (the "
                             f"training images' mean); got {fill}.")
        self.pad, self.seed, self.fill = int(pad), seed, fill
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        """Check that ``fill`` has one value or one per channel of the images."""
        channels = input_shape[-1]
        if len(self.fill) not in (1, channels):
            raise ValueError(f"fill has {len(self.fill)} values for images with {channels} "
                             f"channels; give one value or one per channel.")

    def call(self, images, training=False):
        """Pad, crop and flip every image of the batch while training; the images unchanged
        otherwise."""
        if not training:
            return images
        height, width = images.shape[1], images.shape[2]
        batch = ops.shape(images)[0]
        rows = ops.cast(self._selector(batch, height, flip=None), images.dtype)
        columns = ops.cast(self._selector(batch, width, flip=self._coin(batch)), images.dtype)
        cropped = ops.einsum("bip,bpqc->biqc", rows, images)
        cropped = ops.einsum("bjq,biqc->bijc", columns, cropped)
        inside = ops.sum(rows, axis=-1)[:, :, None] * ops.sum(columns, axis=-1)[:, None, :]
        fill = ops.convert_to_tensor(self.fill, images.dtype)
        return cropped + (1 - inside)[..., None] * fill

    def _coin(self, batch):
        return keras.random.uniform((batch,), seed=self.seed_generator) < 0.5

    def _selector(self, batch, size, flip):
        """(batch, size, size) one-hot: output position i reads input position
        ``offset + i - pad`` (``offset + size - 1 - i - pad`` where ``flip``); an all-zero row
        where that position is in the border. ``offset`` is uniform in 0..2 * pad."""
        offset = keras.random.randint((batch, 1), 0, 2 * self.pad + 1, seed=self.seed_generator)
        position = ops.arange(size)[None, :]
        if flip is not None:
            position = ops.where(flip[:, None], size - 1 - position, position)
        padded = ops.one_hot(offset + position, size + 2 * self.pad)
        return padded[:, :, self.pad:self.pad + size]

    def compute_output_shape(self, input_shape):
        """The input's shape: the crop is back to the input size."""
        return input_shape

    def get_config(self):
        """The ``__init__`` arguments, so ``from_config`` rebuilds the layer."""
        return {**super().get_config(), "pad": self.pad, "seed": self.seed,
                "fill": list(self.fill)}
