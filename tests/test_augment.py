"""``PadCropFlip``: every output is a crop of the image padded with the fill colour, or its
mirror, drawn per image; the padding is ``trainers.data``'s, pixel for pixel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resnets.augment import PadCropFlip
from trainers import data

FILL = (125.27184295654297, 122.933837890625, 113.8616714477539)  # not exact in TF32/bfloat16


def windows(padded, size):
    """Every ``size`` x ``size`` window of one padded image."""
    offsets = range(padded.shape[0] - size + 1)
    return [padded[i:i + size, j:j + size] for i in offsets for j in offsets]


def augmented(image, pad=4, fill=FILL, count=64, seed=0):
    batch = np.stack([image] * count)
    layer = PadCropFlip(pad=pad, seed=seed, fill=fill)
    return keras.ops.convert_to_numpy(layer(batch, training=True))


def test_outputs_are_crops_or_mirrored_crops_of_the_fill_padded_image_drawn_per_image():
    image = np.arange(1, 8 * 8 * 3 + 1, dtype="float32").reshape(8, 8, 3)
    padded = np.concatenate([np.pad(image[..., c:c + 1], [(4, 4), (4, 4), (0, 0)],
                                    constant_values=FILL[c]) for c in range(3)], axis=-1)
    crops = windows(padded, 8)
    kinds = set()
    for result in augmented(image):
        plain = any(np.array_equal(result, w) for w in crops)
        mirrored = any(np.array_equal(result[:, ::-1], w) for w in crops)
        assert plain or mirrored
        kinds.add((plain, mirrored))
    assert (True, False) in kinds and (False, True) in kinds


def test_draws_differ_per_image():
    image = np.arange(1, 8 * 8 + 1, dtype="float32").reshape(8, 8, 1)
    assert len({result.tobytes() for result in augmented(image, fill=0.0)}) > 32


def test_border_is_the_tf_pipelines_padding_of_the_same_image():
    """The padding rule of ``trainers.data.pad_with`` (the tf.data trainer) and of this layer
    (the array trainer) give the same pixels: every output is a window of data's padded image."""
    images = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    padded = data.pad_with(tf.constant(images), FILL).numpy()[0]
    crops = windows(padded, 32)
    results = augmented(images[0], count=16)
    assert all(any(np.array_equal(r, w) or np.array_equal(r[:, ::-1], w) for w in crops)
               for r in results)
    corners = results[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # a border pixel unless offset is 4
    assert np.isin(corners, np.float32(FILL)).any()


def test_identity_at_inference_and_round_trips():
    batch = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    layer = PadCropFlip(pad=2, seed=3, fill=FILL)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(batch)), batch)
    again = PadCropFlip.from_config(layer.get_config())
    assert (again.pad, again.seed, again.fill) == (2, 3, FILL)


@pytest.mark.parametrize("kwargs, message", [
    ({"pad": 1.5, "fill": 0}, "pad must be a non-negative integer"),
    ({"fill": float("nan")}, "fill must be one finite colour value"),
    ({"fill": (1.0, 2.0)}, "fill has 2 values for images with 3 channels"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PadCropFlip(**kwargs)(np.zeros((1, 8, 8, 3), "float32"), training=True)
