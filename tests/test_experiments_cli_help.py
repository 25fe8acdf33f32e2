"""Every experiments command line answers ``--help`` before Keras and TensorFlow load: the flags
are parsed first, the studies import what trains inside their commands."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("ablate", "sharing", "reproduce", "tune", "fullscale")
# Runs the module as ``python -m`` does, then says which heavy modules the help imported.
PROBE = """
import runpy, sys
sys.argv = ["experiments.{name}", "--help"]
try:
    runpy.run_module("experiments.{name}", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    print("exit", stop.code)
print("loaded", sorted(m for m in ("keras", "tensorflow") if m in sys.modules))
"""


@pytest.mark.parametrize("name", COMMANDS)
def test_help_answers_without_keras_or_tensorflow(name):
    done = subprocess.run([sys.executable, "-c", PROBE.format(name=name)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0].startswith(f"usage: python -m experiments.{name}"), done.stdout[:200]
    assert lines[-2:] == ["exit 0", "loaded []"], done.stdout[-500:]


def test_the_probe_sees_keras_when_a_module_loads_it():
    """The check can fail: a module that imports Keras at the top is caught."""
    probe = PROBE.replace('runpy.run_module("experiments.{name}", run_name="__main__", '
                          'alter_sys=True)', "import keras; raise SystemExit(0)")
    done = subprocess.run([sys.executable, "-c", probe.format(name="x")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "loaded ['keras', 'tensorflow']"
