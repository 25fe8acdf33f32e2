"""``PadCropFlip``: every output is a crop of the zero-padded image or its mirror, drawn per image."""

import keras
import numpy as np
import pytest

from keras_resnets.augment import PadCropFlip


def windows(image, pad):
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)])
    size = image.shape[0]
    return [padded[i:i + size, j:j + size] for i in range(2 * pad + 1)
            for j in range(2 * pad + 1)]


def test_outputs_are_crops_or_mirrored_crops_drawn_per_image():
    image = np.arange(1, 8 * 8 + 1, dtype="float32").reshape(8, 8, 1)
    batch = np.stack([image] * 64)
    out = keras.ops.convert_to_numpy(PadCropFlip(pad=4, seed=0)(batch, training=True))
    crops = windows(image, 4)
    kinds = set()
    for result in out:
        plain = any(np.array_equal(result, w) for w in crops)
        mirrored = any(np.array_equal(result[:, ::-1], w) for w in crops)
        assert plain or mirrored
        kinds.add((plain, mirrored))
    assert len({result.tobytes() for result in out}) > 32  # one draw per image
    assert (True, False) in kinds and (False, True) in kinds


def test_identity_at_inference_and_round_trips():
    batch = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    layer = PadCropFlip(pad=2, seed=3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(batch)), batch)
    again = PadCropFlip.from_config(layer.get_config())
    assert (again.pad, again.seed) == (2, 3)


def test_bad_pad_is_refused():
    with pytest.raises(ValueError, match="pad must be a non-negative integer"):
        PadCropFlip(pad=1.5)
