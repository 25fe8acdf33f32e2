"""``trainers.compat``: private Keras / TensorFlow / KerasTuner API lives there alone, and
each of its workarounds is guarded by the versions and the upstream report it names.

The rule, checked on the source (``private_uses``): outside ``trainers/compat.py`` no
code reads or sets an attribute whose name starts with one underscore (``x._name``, or
``getattr(x, "_name")`` and its kin), except on ``self`` or ``cls`` (the project's own
classes) or on a name imported from this project (``train_lib._finished_run``), and a
namedtuple's own methods (``_replace``, ``_fields``...); and no code imports ``keras.src``,
``keras_tuner.src`` or ``tensorflow.python``. Dunder names (``__class__``) are public Python.
"""

import ast
from pathlib import Path

import pytest

from trainers import compat

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("keras_resnets", "trainers", "analysis", "saved_models", "experiments", "benchmarks",
           "tests")
COMPAT = REPO / "trainers" / "compat.py"
PRIVATE_MODULES = ("keras.src", "keras_tuner.src", "tensorflow.python")
NAMEDTUPLE_API = {"_replace", "_fields", "_asdict", "_make", "_field_defaults"}
ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}
# Modules of this project: its packages, and the helper modules tests import by name.
PROJECT = set(SOURCES) | {path.stem for path in (REPO / "tests").glob("*.py")}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_private_module(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in PRIVATE_MODULES)


def project_names(tree: ast.AST) -> set[str]:
    """The names a file binds to this project's modules and their contents by importing."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names
                      if alias.name.split(".")[0] in PROJECT}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PROJECT:
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def module_aliases(tree: ast.AST) -> dict[str, str]:
    """Name -> module for the plain imports of a file (``tf`` -> ``tensorflow``)."""
    return {alias.asname or alias.name.split(".")[0]: alias.asname and alias.name
            or alias.name.split(".")[0]
            for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


def root(node: ast.AST) -> ast.AST:
    """The leftmost part of ``a.b.c``."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node


def private_module_path(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``keras.src`` (or ``tf.python``...) reached as an attribute rather than imported."""
    if not isinstance(node, ast.Attribute) or not isinstance(root(node), ast.Name):
        return None
    name = root(node).id
    dotted = aliases.get(name, name) + ast.unparse(node)[len(name):]
    return dotted if dotted in PRIVATE_MODULES else None


def private_imports(node: ast.AST) -> list[str]:
    """The private modules an import statement names (``from keras import src`` too)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if is_private_module(alias.name)]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [f"{node.module}.{alias.name}" for alias in node.names
                if is_private_module(node.module)
                or is_private_module(f"{node.module}.{alias.name}")]
    return []


def private_attribute(node: ast.AST, allowed: set[str]) -> str | None:
    """``base._name`` (or ``getattr(base, "_name")``) unless ``base`` is ``self`` or
    ``cls`` or reached from a name in ``allowed`` (``trainers.train._check_same_run``)."""
    if isinstance(node, ast.Attribute):
        base, name = node.value, node.attr
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id in ATTRIBUTE_FUNCTIONS and len(node.args) >= 2
          and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        base, name = node.args[0], node.args[1].value
    else:
        return None
    if not is_private(name) or name in NAMEDTUPLE_API:
        return None
    if isinstance(base, ast.Name) and base.id in ("self", "cls"):
        return None
    if isinstance(root(base), ast.Name) and root(base).id in allowed:
        return None
    return f"{ast.unparse(base)}.{name}"


def private_uses(source: str) -> list[str]:
    """``line: what`` for each use of private Keras / TensorFlow / KerasTuner API in
    ``source`` (the rule of the module docstring)."""
    tree = ast.parse(source)
    allowed, aliases = project_names(tree), module_aliases(tree)
    uses = []
    for node in ast.walk(tree):
        found = private_imports(node) + [private_attribute(node, allowed),
                                         private_module_path(node, aliases)]
        uses += [f"{node.lineno}: {what}" for what in found if what]
    return sorted(uses, key=lambda use: int(use.split(":")[0]))


def source_files() -> list[Path]:
    return sorted(path for folder in SOURCES for path in (REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("source", [
    "model._flatten_layers()",
    "layer._trainable_variables[0] = v",
    "model._maybe_symbolic_build = None",
    "super()._build_at_init()",
    "getattr(layer, '_layers')",
    "setattr(model, '_jit_compile', False)",
    "import keras.src.backend",
    "from keras.src.backend.tensorflow import trainer",
    "from keras import src",
    "from keras_tuner.src.distribute import utils",
    "from tensorflow.python.distribute import values",
    "import tensorflow as tf\ntf._api",
    "import keras\nkeras.src.backend.tensorflow.trainer.reduce_per_replica",
    "import tensorflow as tf\ntf.python.distribute",
    "self.model._jit_compile",
])
def test_the_checker_finds_private_api(source):
    assert private_uses(source), source


@pytest.mark.parametrize("source", [
    "self._convs = []",
    "cls._registry",
    "parts._replace(residual=0)",
    "row._fields",
    "from trainers import train as train_lib\ntrain_lib._finished_run(config, run_dir, True)",
    "import trainers.train\ntrainers.train._finished_run",
    "x.__class__.__name__",
    "getattr(weight.value, 'values', ())",
    "from keras import layers\nimport keras_tuner",
])
def test_the_checker_allows_public_and_own_names(source):
    assert private_uses(source) == [], source


def test_private_api_is_used_only_in_the_compat_module():
    files = source_files()
    assert len(files) > 50 and COMPAT in files
    found = {str(path.relative_to(REPO)): private_uses(path.read_text()) for path in files
             if path != COMPAT}
    assert {path: uses for path, uses in found.items() if uses} == {}
    assert private_uses(COMPAT.read_text())  # the checker sees the compat module's own uses


def test_every_workaround_cites_upstream_and_applies_to_the_installed_versions():
    """A workaround that no installed version needs is dead code: after an upgrade past its
    range, check the upstream report, then delete the workaround or widen its range."""
    assert compat.WORKAROUNDS
    for workaround in compat.WORKAROUNDS:
        assert workaround.upstream.startswith("https://github.com/"), workaround
        assert workaround.applies(), workaround


def test_a_workaround_applies_only_to_its_versions():
    assert compat.Workaround("keras", ">=3.0", "").applies()
    assert not compat.Workaround("keras", "<3.0", "").applies()
    assert not compat.Workaround("no-such-distribution", ">=0", "").applies()


def test_workarounds_do_nothing_where_the_bug_is_absent(monkeypatch):
    fixed = compat.Workaround("keras", "<3.0", "")
    monkeypatch.setattr(compat, "MULTIWORKER_BUILD", fixed)
    monkeypatch.setattr(compat, "MULTIWORKER_LOGS", fixed)
    untouchable = object()  # any use of model, strategy or dataset would raise
    compat.build_for_multiworker_fit(untouchable, untouchable, untouchable)
    compat.average_multiworker_scalar_logs()


def test_importing_the_compat_module_imports_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, trainers.compat; print('tensorflow' in sys.modules)"
    env = {"KERAS_BACKEND": "jax", "PATH": ""}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
