"""oneDNN kernels for TensorFlow on x86 CPUs, switched on before TensorFlow is imported.

TensorFlow only turns oneDNN on by itself on CPUs with AVX512-VNNI, AVX512-BF16 or AMX; on the
AVX2 CPUs of this project's machines it stays off, and a 4096^3 matrix product then runs at
61 GFLOP/s instead of 119 (``results/speed/``). ``TF_ENABLE_ONEDNN_OPTS`` is read once, when
TensorFlow loads, so every entry point (``trainers``, ``analysis``, ``saved_models``, the
benchmarks, the tests) imports this module first. A value the user set wins:
``TF_ENABLE_ONEDNN_OPTS=0`` turns it off. oneDNN changes the order of floating-point sums, so
results differ from TensorFlow's own kernels within float32 rounding.
"""

import os
import platform
import sys

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
X86 = ("x86_64", "amd64", "i686", "x86")


def enable() -> bool:
    """Set ``TF_ENABLE_ONEDNN_OPTS=1`` unless the user set it, TensorFlow is already loaded
    (too late to matter) or the CPU is not x86. Returns whether oneDNN is requested."""
    if platform.machine().lower() in X86 and "tensorflow" not in sys.modules:
        os.environ.setdefault(VARIABLE, "1")
    return os.environ.get(VARIABLE) == "1"
