"""Every command line answers ``--help`` and refuses a malformed flag before TensorFlow or
Keras load: no TensorFlow start-up lines, nothing but the usage (or the one ``error:`` line)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Runs ``python -m MODULE ARGS...`` in this interpreter, then reports the exit code and which
# heavy modules were imported, on the last line of stdout.
RUN_AS_MAIN = """
import json, runpy, sys
module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_module(module, run_name="__main__")
    code = 0
except SystemExit as done:
    code = done.code
heavy = [name for name in ("tensorflow", "keras", "pandas") if name in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""
# Each command line, and a flag of it that argparse refuses.
COMMANDS = {
    "trainers.train": ["--epochs", "two"],
    "trainers.array_fit": ["--epochs", "two"],
    "analysis.run": ["--split", "validation"],
    "analysis.record": ["--record-every", "one"],
    "saved_models.export": ["model.keras", "--format", "pdf"],
}


def run_as_main(module: str, *args: str) -> tuple[dict, str, str]:
    """(exit code and heavy modules imported, the rest of stdout, stderr) of ``python -m
    module args`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", RUN_AS_MAIN, module, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    *printed, report = done.stdout.rstrip("\n").split("\n")
    return json.loads(report), "\n".join(printed), done.stderr


@pytest.mark.parametrize("module", list(COMMANDS))
def test_help_is_printed_before_tensorflow_or_keras_load(module):
    report, printed, stderr = run_as_main(module, "--help")
    assert report == {"code": 0, "heavy": []}
    assert printed.startswith(f"usage: python -m {module} ") and "options:" in printed
    assert stderr == ""


@pytest.mark.parametrize("module, flags", list(COMMANDS.items()))
def test_a_malformed_flag_is_refused_before_tensorflow_or_keras_load(module, flags):
    report, printed, stderr = run_as_main(module, *flags)
    assert report == {"code": 2, "heavy": []}
    assert printed == "" and stderr.startswith("error: ") and stderr.count("\n") == 1
