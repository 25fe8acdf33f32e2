"""The packages import one way only: each imports only packages of a lower layer.

    keras_resnets (0, the zoo) <- trainers (1: data, config, training)
        <- analysis, saved_models (2: measurement, export) <- experiments (3: the studies)

Every module of every package is parsed with ``ast`` and every import counts, also one inside a
function, a relative one or one under ``if TYPE_CHECKING``. A module may import its own package
and packages of a strictly lower layer; so ``analysis`` and ``saved_models`` (both layer 2)
import neither each other nor ``experiments``, and no import cycle between packages can exist
(checked too, by its own walk). Scripts outside the packages (``tests``, ``benchmarks``,
``results/*/report.py``) sit above every layer.
"""

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"keras_resnets": 0, "trainers": 1, "analysis": 2, "saved_models": 2, "experiments": 3}


def module_name(path: Path, root: Path) -> str:
    """``trainers/train.py`` -> ``trainers.train``; a package's ``__init__.py`` -> its name."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``source``, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, _absolute(node, module, is_package)))
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module ``from ... import`` reads from, relative levels resolved against ``module``."""
    if not node.level:
        return node.module
    base = module.split(".")[:len(module.split(".")) - node.level + is_package]
    return ".".join(base + ([node.module] if node.module else []))


def package_imports(root: Path, packages) -> list[tuple[str, str, str]]:
    """``(importer package, imported package, "file:line imports module")`` for every import
    from one of ``packages`` into another, under ``root``."""
    edges = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = module_name(path, root)
            for line, imported in imported_modules(path.read_text(), name,
                                                   path.name == "__init__.py"):
                target = imported.split(".")[0]
                if target in packages and target != package:
                    where = f"{path.relative_to(root)}:{line} imports {imported}"
                    edges.append((package, target, where))
    return edges


def upward_imports(edges, layers: dict) -> list[str]:
    """Every import of a package that is not of a strictly lower layer."""
    return [f"{where} (layer {layers[source]} -> {layers[target]})"
            for source, target, where in edges if layers[target] >= layers[source]]


def package_cycles(edges) -> list[list[str]]:
    """Cycles of the package graph, each as the packages along it (first repeated last)."""
    graph = {}
    for source, target, _ in edges:
        graph.setdefault(source, set()).add(target)
    cycles = []

    def visit(package, path):
        for target in sorted(graph.get(package, ())):
            if target == path[0]:
                cycles.append([*path, target])
            elif target not in path and target > path[0]:  # each cycle once, from its least
                visit(target, [*path, target])

    for start in sorted(graph):
        visit(start, [start])
    return cycles


def write_tree(root: Path, files: dict) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# ---------------------------------------------------------------------------------------------
# The project


def test_every_package_has_a_layer():
    found = {path.parent.name for path in REPO.glob("*/__init__.py")}
    assert found == set(LAYERS)


def test_every_layered_package_is_installed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {f"{package}*" for package in LAYERS} <= set(include)


def test_no_package_imports_a_package_of_its_layer_or_above():
    assert upward_imports(package_imports(REPO, LAYERS), LAYERS) == []


def test_no_import_cycle_between_packages():
    assert package_cycles(package_imports(REPO, LAYERS)) == []


def test_training_imports_only_the_zoo():
    imported = {target for source, target, _ in package_imports(REPO, LAYERS)
                if source == "trainers"}
    assert imported == {"keras_resnets"}


# ---------------------------------------------------------------------------------------------
# The checker itself, on small trees


@pytest.fixture
def inverted(tmp_path):
    """``low`` imports ``high`` inside a function (and relatively, harmlessly, itself)."""
    return write_tree(tmp_path, {
        "low/__init__.py": "from . import core\n",
        "low/core.py": "def f():\n    from high.top import g\n    return g\n",
        "high/__init__.py": "",
        "high/top.py": "import low.core\n\ndef g():\n    return low.core\n",
    })


def test_an_import_inside_a_function_is_an_upward_import_and_a_cycle(inverted):
    edges = package_imports(inverted, {"low": 0, "high": 1})
    assert upward_imports(edges, {"low": 0, "high": 1}) == [
        "low/core.py:2 imports high.top (layer 0 -> 1)"]
    assert package_cycles(edges) == [["high", "low", "high"]]


def test_packages_of_one_layer_may_not_import_each_other(tmp_path):
    root = write_tree(tmp_path, {"a/__init__.py": "from b import x\n", "b/__init__.py": "x = 1\n"})
    assert upward_imports(package_imports(root, {"a": 2, "b": 2}), {"a": 2, "b": 2}) == [
        "a/__init__.py:1 imports b (layer 2 -> 2)"]


def test_downward_imports_pass(tmp_path):
    root = write_tree(tmp_path, {
        "zoo/__init__.py": "", "train/__init__.py": "from zoo import build\n",
        "top/__init__.py": "", "top/run.py": "from ..train import fit\nimport zoo\n"})
    layers = {"zoo": 0, "train": 1, "top": 2}
    edges = package_imports(root, layers)
    assert [where for *_, where in edges] == [
        "train/__init__.py:1 imports zoo", "top/run.py:1 imports train", "top/run.py:2 imports zoo"]
    assert upward_imports(edges, layers) == [] and package_cycles(edges) == []


def test_relative_imports_resolve_against_the_module():
    assert imported_modules("from ..train import fit\n", "top.run", False) == [(1, "train")]
    assert imported_modules("from . import core\n", "low", True) == [(1, "low")]
    assert imported_modules("from .core import f\n", "low.sub", False) == [(1, "low.core")]
