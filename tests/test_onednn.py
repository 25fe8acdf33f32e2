"""oneDNN is switched on before TensorFlow loads, in every entry point, and can be turned off."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from trainers import onednn

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module

TENSORFLOW_SAYS_ON = "oneDNN custom operations are on"  # logged by TensorFlow as it loads


def onednn_on_after_importing(package: str, **env) -> bool:
    """Import ``package`` (and TensorFlow) in a fresh process; whether TensorFlow loaded with
    oneDNN, as it logs at start-up."""
    environment = {k: v for k, v in os.environ.items() if k != onednn.VARIABLE}
    environment.update(TF_CPP_MIN_LOG_LEVEL="0", **env)
    done = subprocess.run([sys.executable, "-c", f"import {package}; import tensorflow"],
                          capture_output=True, text=True, env=environment, check=True)
    return TENSORFLOW_SAYS_ON in done.stderr


x86_only = pytest.mark.skipif(platform.machine().lower() not in onednn.X86,
                              reason="oneDNN is switched on by this project on x86 only")


@x86_only
@pytest.mark.parametrize("package", ["trainers.train", "trainers.array_fit", "analysis",
                                     "analysis.run", "analysis.record", "saved_models.export",
                                     "experiments.ablate", "experiments.tune"])
def test_entry_points_load_tensorflow_with_onednn(package):
    assert onednn_on_after_importing(package)


# The CPU features with which TensorFlow turns oneDNN on by itself (its ``IsMKLEnabled``), as
# /proc/cpuinfo names them.
NEURAL_NETWORK_FLAGS = {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
                        "amx_bf16"}


def cpu_flags() -> set[str]:
    """The flags of the first processor in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


@x86_only
@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="CPU flags unknown")
def test_tensorflow_alone_decides_by_the_cpus_flags_and_the_user_can_turn_it_off():
    expected = bool(cpu_flags() & NEURAL_NETWORK_FLAGS)  # on AVX2-only CPUs: off
    assert onednn_on_after_importing("os") is expected
    assert not onednn_on_after_importing("trainers.train", TF_ENABLE_ONEDNN_OPTS="0")


def test_too_late_once_tensorflow_is_loaded(monkeypatch):
    monkeypatch.delenv(onednn.VARIABLE, raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    assert onednn.enable() is False and onednn.VARIABLE not in os.environ
