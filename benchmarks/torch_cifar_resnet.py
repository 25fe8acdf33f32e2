"""He et al. 2015's CIFAR ResNet in PyTorch, as akamaster/pytorch_resnet_cifar10 builds it: the
reference that the zoo's converted weights are checked against.

A re-implementation written for this project from the papers' description and the behaviour of
akamaster/pytorch_resnet_cifar10's ``resnet.py`` (Yerlan Idelbayev, BSD-2-Clause; see
``keras_resnets/weights/LICENSE-akamaster.txt``), so that its checkpoints load unchanged
(``load_state_dict`` with the same parameter names): a 3x3 stem conv with 16 filters, BN,
ReLU; three stages of ``n`` post-activation basic units (conv-BN-ReLU-conv-BN, add, ReLU) at
16/32/64 filters, the first unit of stages 2 and 3 with stride 2; every 3x3 conv with
``padding=1``; option A shortcuts where the shape changes: ``x[:, :, ::2, ::2]`` with the new
channels as zeros on both sides (``planes // 4`` before and after); global average pooling and
a linear layer. Depth 6n+2: ``cifar_resnet(20)`` ... ``cifar_resnet(1202)``.

Imports PyTorch: a benchmark and test helper, never imported by the package.
"""

import torch
from torch import nn
from torch.nn import functional


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by 2 and put ``pad`` zero channels before and ``pad`` after."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicUnit(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        reshapes = stride != 1 or in_planes != planes
        self.shortcut = ZeroPadShortcut(planes // 4) if reshapes else nn.Identity()

    def forward(self, x):
        out = functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return functional.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The stem, three stages of ``units`` basic units, pooling and the linear classifier;
    parameter names as akamaster's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``linear``)."""

    def __init__(self, units: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes_in = 16
        for stage, planes in enumerate((16, 32, 64), start=1):
            stride = 1 if stage == 1 else 2
            stage_units = []
            for index in range(units):
                stage_units.append(BasicUnit(planes_in, planes, stride if index == 0 else 1))
                planes_in = planes
            setattr(self, f"layer{stage}", nn.Sequential(*stage_units))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = functional.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = functional.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def cifar_resnet(depth: int, num_classes: int = 10) -> CifarResNet:
    """ResNet-``depth`` (6n+2) in inference mode."""
    units, remainder = divmod(depth - 2, 6)
    if remainder or units < 1:
        raise ValueError(f"A CIFAR ResNet has depth 6n+2; got {depth}.")
    return CifarResNet(units, num_classes).eval()


def load_checkpoint(model: CifarResNet, path) -> CifarResNet:
    """An akamaster checkpoint (``{"state_dict": ...}`` of a ``DataParallel`` model) into
    ``model``, tensors only (``weights_only=True``)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state = saved.get("state_dict", saved)
    model.load_state_dict({key.removeprefix("module."): value for key, value in state.items()})
    return model.eval()


# akamaster's trainer.py: torchvision's Normalize on images scaled to [0, 1].
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def preprocess(images_uint8):
    """(N, 32, 32, 3) uint8 images as akamaster's test loader gives them: ToTensor (scale to
    [0, 1], NCHW) and Normalize."""
    x = torch.as_tensor(images_uint8).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std
