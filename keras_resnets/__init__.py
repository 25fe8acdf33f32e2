"""keras-resnets: the residual networks of He et al. 2016 and Jastrzebski et al. 2018 in Keras 3.

    import keras_resnets
    model = keras_resnets.build("preact110")
    keras_resnets.list_models("resnet110-*")
    keras_resnets.describe("resnet110-gate-exclusive")
    model = keras_resnets.build("resnet56", weights="akamaster")  # ported from PyTorch
    keras_resnets.list_models(pretrained=True)                    # the nets with shipped weights
    model = keras_resnets.build("preact20", weights="cifar10", num_classes=2)  # fresh classifier
    features = keras_resnets.build("preact20", weights="cifar10", include_top=False, pooling="avg")
    stages = keras.Model(model.input, model.pyramid_outputs)  # {"P0": .., "P1": .., "P2": ..}

Strided convolutions pad symmetrically, as the papers' code does (``strided_padding``;
``keras_resnets.units``); models and weights made before keep Keras's ``"same"`` padding.

The lowest layer of the project: it imports none of its other packages
(``tests/test_layering.py``).
"""

from keras_resnets.architectures import pyramid_outputs, standardization_of
from keras_resnets.augment import PadCropFlip
from keras_resnets.chain import Block, ResidualChain
from keras_resnets.normalization import BatchNormalization
from keras_resnets.parameters import count_parameters
from keras_resnets.registry import build, describe, list_models
from keras_resnets.schedules import step_schedule
from keras_resnets.shared import SharedResidualStack
from keras_resnets.units import ResidualUnit, UnitParts, ZeroPadShortcut

__all__ = ["build", "describe", "list_models", "BatchNormalization", "Block", "PadCropFlip",
           "ResidualChain", "ResidualUnit", "SharedResidualStack", "UnitParts", "ZeroPadShortcut",
           "count_parameters", "pyramid_outputs", "standardization_of", "step_schedule"]
__version__ = "0.1.0"
