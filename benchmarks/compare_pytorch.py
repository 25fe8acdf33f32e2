"""The project's trainer against a plain PyTorch peer, preact ResNet-20 on the CPU, side by side.

    pip install -r benchmarks/requirements.txt      # PyTorch, for this benchmark only
    python benchmarks/compare_pytorch.py            # synthetic and real CIFAR-10 (../shared/data)
    python benchmarks/compare_pytorch.py --datasets synthetic --train-size 2560

Both sides read the same CIFAR python batches (random images for ``synthetic``; the real
CIFAR-10 of ``../shared/data`` built into a temporary folder, or ``--data-dir``), standardise
per channel, pad-crop-flip every training batch and train with SGD (momentum 0.9, weight decay
1e-4, batch 128). The project side is ``python -m trainers.train`` end to end (its tf.data
pipeline, ``fit``, callbacks, checkpoints); its rate is the median of ``history.csv``'s
training images/s after the first epoch (which traces). The PyTorch side is a hand-written
pre-activation ResNet-20 with the same widths and zero-padding shortcuts, channels_last, timed
over its second epoch. Each runs in its own process, one after the other, interleaved
``--repeats`` times (this machine's speed drifts by 20% between runs); the table gives the
medians, their ratio and the ranges. ``--out`` also writes it as JSON.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "build.py"
BATCH = 128
# Trainer settings measured against the peer: (TrainConfig overrides, environment).
TRAINER_VARIANTS = {
    "default": ({}, {}),
    "fused BN off": ({"fused_batchnorm": False}, {}),
    "oneDNN and fused BN off": ({"fused_batchnorm": False}, {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "jit_compile": ({"jit_compile": True}, {}),
    "steps_per_execution=8": ({"steps_per_execution": 8}, {}),
    # One op at a time: TensorFlow otherwise runs a conv's two gradients side by side, each
    # on the same two cores (profile_step.py shows their op times overlapping).
    "inter-op threads=1": ({}, {"TF_NUM_INTEROP_THREADS": "1"}),
}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_random_cifar(folder: Path, train_size: int, test_size: int, seed: int = 0) -> Path:
    """Random uint8 images and labels in the official CIFAR-10 python layout."""
    import pickle

    rng = np.random.default_rng(seed)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    for name, size in (("data_batch_1", train_size), ("test_batch", test_size)):
        batch = {b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size).tolist()}
        (batches / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def real_cifar(data_dir: str | None, scratch: Path) -> Path:
    """A folder holding the real CIFAR-10 batches: ``data_dir`` or one built from shared/."""
    if data_dir:
        return Path(data_dir)
    if not SHARED_CIFAR.is_file():
        raise SystemExit(f"No real CIFAR-10: pass --data-dir or provide {SHARED_CIFAR}.")
    subprocess.run([sys.executable, str(SHARED_CIFAR), str(scratch)], check=True,
                   stdout=subprocess.DEVNULL)
    return scratch


# ---------------------------------------------------------------------------------------------
# The project's trainer


def keras_worker(data_dir: str, train_size: int, epochs: int, overrides: dict) -> dict:
    """``trainers.train`` end to end on the first ``train_size`` images of ``data_dir``."""
    import trainers  # noqa: F401  (first: oneDNN on before TensorFlow loads)
    from trainers.callbacks import read_history
    from trainers.config import TrainConfig
    from trainers.train import train

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig.for_recipe(model="preact20", dataset="cifar10", data_dir=data_dir,
                                        train_size=train_size, test_size=1000, epochs=epochs,
                                        out=out, **overrides)
        metrics = train(config)
        history = read_history(Path(out) / "history.csv")
    return {"images_per_s": float(history["images_per_s"].iloc[1:].median()),
            "parameters": metrics["parameters"]}


# ---------------------------------------------------------------------------------------------
# The PyTorch peer


def torch_preact20():
    """He et al. 2016's pre-activation ResNet-20 for CIFAR, as a PyTorch user writes it."""
    import torch
    from torch import nn

    class Unit(nn.Module):
        def __init__(self, cin, cout, stride, preactivate_shortcut):
            super().__init__()
            self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.stride, self.extra = stride, cout - cin
            self.preactivate_shortcut = preactivate_shortcut

        def forward(self, x):
            out = torch.relu(self.bn1(x))
            shortcut = out if self.preactivate_shortcut else x
            if self.stride > 1 or self.extra:  # option A: subsample, zero-pad channels
                shortcut = nn.functional.pad(shortcut[:, :, ::self.stride, ::self.stride],
                                             (0, 0, 0, 0, 0, self.extra))
            out = self.conv2(torch.relu(self.bn2(self.conv1(out))))
            return out + shortcut

    class PreactResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            units, cin = [], 16
            for stage, width in enumerate((16, 32, 64)):
                for index in range(3):
                    stride = 2 if stage and not index else 1
                    units.append(Unit(cin, width, stride, preactivate_shortcut=index == 0))
                    cin = width
            self.units = nn.Sequential(*units)
            self.bn, self.fc = nn.BatchNorm2d(64), nn.Linear(64, 10)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            x = torch.relu(self.bn(self.units(self.stem(x))))
            return self.fc(x.mean(dim=(2, 3)))

    return PreactResNet20()


def torch_augment(images, generator):
    """Batched 4-pixel pad, random 32x32 crop, random horizontal flip (NCHW)."""
    import torch

    n = images.shape[0]
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    dy, dx = (torch.randint(0, 9, (n,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(32))[:, None, :, None].expand(n, 3, 32, 40)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(32))[:, None, None, :].expand(n, 3, 32, 32)
    cropped = cropped.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    cropped[flip] = cropped[flip].flip(3)
    return cropped


def torch_peer(images, labels):
    """The peer's set-up on uint8 NHWC ``images``: per-channel standardisation, the
    channels_last model, SGD (momentum 0.9, weight decay 1e-4) and a seeded generator.
    Returns ``(model, generator, step)``: ``step(index)`` trains on the rows ``index``,
    pad-crop-flipped."""
    import torch

    torch.manual_seed(0)
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2)
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    y = torch.from_numpy(np.asarray(labels)).long()
    model = torch_preact20().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)

    def step(index):
        batch = torch_augment(x[index], generator).contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(model(batch), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return model, generator, step


def cifar_train(data_dir, count: int):
    """The first ``count`` training images (uint8 NHWC) and labels of the CIFAR-10 python
    batches in ``data_dir``."""
    from trainers.cifar_files import find_cifar_files, read_arrays

    images, labels = read_arrays("cifar10", find_cifar_files("cifar10", Path(data_dir)))["train"]
    return images[:count], labels[:count]


def torch_worker(data_dir: str, train_size: int) -> dict:
    """Two epochs of the PyTorch peer on the same images; the second is timed."""
    import torch

    model, generator, step = torch_peer(*cifar_train(data_dir, train_size))
    steps = train_size // BATCH
    for _ in range(2):
        start = time.perf_counter()
        order = torch.randperm(train_size, generator=generator)
        for index in range(steps):
            step(order[index * BATCH:(index + 1) * BATCH])
        seconds = time.perf_counter() - start
    return {"images_per_s": steps * BATCH / seconds,
            "parameters": sum(p.numel() for p in model.parameters()),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


# ---------------------------------------------------------------------------------------------


def run_worker(kind: str, data_dir: Path, train_size: int, epochs: int, variant="default") -> dict:
    overrides, environment = TRAINER_VARIANTS[variant]
    command = [sys.executable, __file__, "--worker", kind, str(data_dir),
               "--train-size", str(train_size), "--epochs", str(epochs),
               "--overrides", json.dumps(overrides)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **environment}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(datasets, data_dir, train_size, epochs, variants=("default",),
            repeats: int = 3) -> list[dict]:
    """Interleaved runs (peer, then each trainer variant, ``repeats`` times), so that a machine
    whose speed drifts affects both sides alike; medians and ranges per side."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folders = {"synthetic": lambda: write_random_cifar(Path(scratch) / "random",
                                                           train_size, 1000),
                   "cifar10": lambda: real_cifar(data_dir, Path(scratch) / "real")}
        for dataset in datasets:
            folder = folders[dataset]()
            rates = {"pytorch": [], **{variant: [] for variant in variants}}
            for _ in range(repeats):
                peer = run_worker("torch", folder, train_size, epochs)
                rates["pytorch"].append(peer["images_per_s"])
                for variant in variants:
                    ours = run_worker("keras", folder, train_size, epochs, variant)
                    rates[variant].append(ours["images_per_s"])
                    print(dataset, variant, ours, peer, file=sys.stderr, flush=True)
            torch_rate = float(np.median(rates["pytorch"]))
            for variant in variants:
                rate = float(np.median(rates[variant]))
                rows.append({"data": dataset, "trainer": variant,
                             "trainer_images_per_s": round(rate, 1),
                             "trainer_range": _range(rates[variant]),
                             "pytorch_images_per_s": round(torch_rate, 1),
                             "pytorch_range": _range(rates["pytorch"]),
                             "ratio": round(rate / torch_rate, 2),
                             "trainer_parameters": ours["parameters"],
                             "pytorch_parameters": peer["parameters"], "repeats": repeats,
                             "cpu": cpu_name(), "cores": os.cpu_count(), "torch": peer["torch"]})
    return rows


def _range(values) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "cifar10"],
                        choices=["synthetic", "cifar10"])
    parser.add_argument("--data-dir", help="real CIFAR-10 python batches (default: build "
                                           "them from ../shared/data into a temporary folder)")
    parser.add_argument("--train-size", type=int, default=5120, help="images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="trainer epochs (first untimed)")
    parser.add_argument("--variants", nargs="+", default=["default"],
                        choices=list(TRAINER_VARIANTS),
                        help="trainer settings to measure against the same peer run")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved runs of each side; medians are reported")
    parser.add_argument("--out", help="also write the rows as JSON")
    parser.add_argument("--overrides", type=json.loads, default={}, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, folder = args.worker
        result = (keras_worker(folder, args.train_size, args.epochs, args.overrides)
                  if kind == "keras"
                  else torch_worker(folder, args.train_size))
        print(json.dumps(result))
        return 0
    rows = compare(args.datasets, args.data_dir, args.train_size, args.epochs, args.variants,
                   args.repeats)
    import pandas as pd

    from analysis.tables import markdown_table

    print(markdown_table(pd.DataFrame(rows)))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
