"""Port akamaster/pytorch_resnet_cifar10's checkpoints (PyTorch) into the zoo's models.

    python -m keras_resnets.convert resnet56-4bfd9763.th --model resnet56 --out resnet56.weights.h5

akamaster/pytorch_resnet_cifar10 (Yerlan Idelbayev, BSD-2-Clause) trains He et al. 2015's CIFAR
ResNets (ResNet-20 ... 1202: post-activation basic units, option A zero-padding shortcuts) in
PyTorch. Its networks are the zoo's ``resnet{depth}`` with two settings of how the layers are
computed (``keras_resnets.units``): PyTorch's ``padding=1`` strided convolutions
(``strided_padding="symmetric"``) and option A's zero channels on both sides of the identity
(``pad_placement="centred"``; its ``F.pad(..., planes // 4, planes // 4)``). Its images are
scaled to [0, 1] and normalised per channel with mean (0.485, 0.456, 0.406) and std (0.229,
0.224, 0.225) (its trainer.py): the zoo model does the same on 0..255 images as its
``standardize`` layer. The converted model gives the PyTorch model's logits
(``tests/test_convert.py``; ``results/pretrained/akamaster.md``).

The checkpoint is read with ``torch.load(weights_only=True)`` (tensors only, never an
arbitrary pickle). PyTorch is an optional dependency, imported only here
(``pip install "keras-resnets[torch]"``).
"""

import argparse
import re
import sys

import numpy as np

from keras_resnets.pretrained import AKAMASTER_SETTINGS, AKAMASTER_STANDARDIZE

TORCH_MISSING = ("Converting PyTorch checkpoints needs PyTorch, an optional dependency of "
                 "keras-resnets: pip install -r requirements-torch.txt (the CPU build tested "
                 "here) or pip install 'keras-resnets[torch]'.")


def load_state_dict(path) -> dict[str, np.ndarray]:
    """The tensors of an akamaster checkpoint (``{"state_dict": ...}`` of a ``DataParallel``
    model, keys prefixed ``module.``; a bare state dict works too) as float32 NumPy arrays,
    without the prefix. BN's ``num_batches_tracked`` counters are dropped."""
    try:
        import torch
    except ImportError:
        raise ImportError(TORCH_MISSING) from None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a PyTorch state dict or a checkpoint holding one.")
    return {re.sub(r"^module\.", "", key): value.detach().cpu().numpy().astype(np.float32)
            for key, value in state.items() if not key.endswith("num_batches_tracked")}


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch's conv weight (out, in, kh, kw) as Keras's kernel (kh, kw, in, out)."""
    return np.transpose(weight, (2, 3, 1, 0))


def zoo_weights(state: dict[str, np.ndarray], model) -> None:
    """Assign an akamaster ``state`` (``load_state_dict``) to the zoo ``model`` in place:
    conv kernels transposed OIHW -> HWIO, BN gamma/beta/moving statistics as they are, the
    linear layer's weight transposed. Every tensor must find its place and every place a
    tensor of its shape, or a ``ValueError`` says what is left over."""
    from keras_resnets.chain import ResidualChain

    left = dict(state)

    def take(key, shape_of, transform=lambda w: w):
        if key not in left:
            raise ValueError(f"The checkpoint has no {key!r}: not an akamaster ResNet of "
                             f"this depth (option A shortcuts), or another model.")
        value = transform(left.pop(key))
        if tuple(value.shape) != tuple(shape_of.shape):
            raise ValueError(f"{key}: shape {value.shape} does not fit the zoo's "
                             f"{tuple(shape_of.shape)}; is --model the right depth?")
        shape_of.assign(value)

    def conv(prefix, layer):
        take(f"{prefix}.weight", layer.kernel, conv_kernel)

    def batchnorm(prefix, layer):
        for name, variable in (("weight", layer.gamma), ("bias", layer.beta),
                               ("running_mean", layer.moving_mean),
                               ("running_var", layer.moving_variance)):
            take(f"{prefix}.{name}", variable)

    conv("conv1", model.get_layer("stem_conv1"))
    batchnorm("bn1", model.get_layer("stem1_bn"))
    for block in ResidualChain(model).blocks:
        unit, prefix = block.unit, f"layer{block.stage}.{block.index_in_stage}"
        for index, (layer, norm) in enumerate(
                zip(unit.convolutions(), unit.batchnorms(), strict=True), start=1):
            conv(f"{prefix}.conv{index}", layer)
            batchnorm(f"{prefix}.bn{index}", norm)
    dense = model.get_layer("logits")
    take("linear.weight", dense.kernel, np.transpose)
    take("linear.bias", dense.bias)
    if left:
        raise ValueError(f"Tensors of the checkpoint with no place in {model.name}: "
                         f"{sorted(left)[:6]}{' ...' if len(left) > 6 else ''}; is --model the "
                         f"right depth (option B shortcuts are not supported)?")


def convert(source, model_name: str):
    """The zoo model ``model_name`` (``resnet20``, ``resnet56``...) with the weights of the
    akamaster checkpoint ``source``; it takes raw 0..255 images."""
    from keras_resnets.registry import build

    state = load_state_dict(source)
    model = build(model_name, standardize=AKAMASTER_STANDARDIZE, **AKAMASTER_SETTINGS)
    zoo_weights(state, model)
    return model


def main(argv=None) -> int:
    """The command line: convert one checkpoint, write its ``.weights.h5``; exit status 1
    with the reason on stderr when the checkpoint does not fit or PyTorch is missing."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_resnets.convert",
        description="Convert an akamaster/pytorch_resnet_cifar10 checkpoint (.th) into "
                    "zoo weights (.weights.h5) for build(MODEL, standardize=..., "
                    "strided_padding='symmetric', pad_placement='centred').")
    parser.add_argument("source", help="the checkpoint, e.g. resnet56-4bfd9763.th (a local file)")
    parser.add_argument("--model", required=True, help="the zoo model, e.g. resnet56")
    parser.add_argument("--out", required=True, help="where to write the .weights.h5 file")
    args = parser.parse_args(argv)
    if not args.out.endswith(".weights.h5"):
        parser.error("--out must end with .weights.h5 (Keras's weights format).")
    try:
        model = convert(args.source, args.model)
    except (ImportError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model.save_weights(args.out)
    print(f"{args.source} -> {args.out} ({args.model}, {model.count_params():,} weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
