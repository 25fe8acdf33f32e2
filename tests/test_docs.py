"""The README's layout section matches the tree; every public function, class and method of the
packages has a docstring. Both checkers are tested on small strings first, so a
passing run means the tree is right, not that the checker cannot fail."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LISTED = ("keras_resnets", "trainers", "analysis", "saved_models", "experiments", "benchmarks")
DOCUMENTED = ("keras_resnets", "trainers", "analysis", "saved_models", "experiments")


def layout_block(readme: str) -> str:
    """The fenced block of the README's ``## Layout`` section."""
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def listed_modules(block: str) -> dict[str, set[str]]:
    """``{folder: names}`` from a layout block: a line ``folder/  text`` starts an entry,
    indented lines continue it; in the text, parentheses hold descriptions, and every item
    separated by ``,``, ``;`` or ``->`` starts with a module name (``x.py`` is ``x``, a
    subpackage keeps its ``/``)."""
    texts, current = {}, None
    for line in block.splitlines():
        head = re.match(r"([\w.]+)/\s+(.*)", line)
        if head:
            current = head.group(1)
            texts[current] = head.group(2)
        elif current and line.startswith(" "):
            texts[current] += " " + line.strip()
    listed = {}
    for folder, text in texts.items():
        while re.search(r"\([^()]*\)", text):
            text = re.sub(r"\([^()]*\)", "", text)
        items = (item.split() for item in re.split(r",|;|->", text))
        listed[folder] = {words[0].removesuffix(".py") for words in items if words}
    return listed


def tree_modules(root: Path, folders=LISTED) -> dict[str, set[str]]:
    """``{folder: names}`` on disk: every module but ``__init__``, every subpackage as ``x/``."""
    found = {}
    for folder in folders:
        path = root / folder
        found[folder] = {p.stem for p in path.glob("*.py") if p.name != "__init__.py"} | {
            f"{p.name}/" for p in path.iterdir() if (p / "__init__.py").is_file()}
    return found


def layout_problems(listed: dict, tree: dict) -> list[str]:
    """Every module on disk the layout does not name, and every name it gives that is not on
    disk, per folder of ``tree``."""
    problems = []
    for folder, modules in tree.items():
        names = listed.get(folder)
        if names is None:
            problems.append(f"{folder}/ is not in the layout")
            continue
        problems += [f"{folder}/{m} is missing from the layout" for m in sorted(modules - names)]
        problems += [f"{folder}/{m} is in the layout but not in the tree"
                     for m in sorted(names - modules)]
    return problems


def missing_docstrings(source: str, filename: str = "<string>") -> list[str]:
    """Public (no leading underscore) module-level functions and classes, and public methods
    of those classes, that have no docstring."""
    missing = []
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in ast.parse(source, filename).body:
        if not isinstance(node, definitions) or node.name.startswith("_"):
            continue
        if not ast.get_docstring(node):
            missing.append(f"{filename}:{node.lineno} {node.name}")
        if isinstance(node, ast.ClassDef):
            missing += [f"{filename}:{item.lineno} {node.name}.{item.name}" for item in node.body
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and not item.name.startswith("_") and not ast.get_docstring(item)]
    return missing


SAMPLE_LAYOUT = """
pkg/      alpha, beta (what beta does, with commas; and a (nested) note); gamma -> delta,
          epsilon (CLI), sub/
scripts/  run.py (+ data.txt), plot.py
"""


def test_the_layout_parser_reads_modules_and_skips_descriptions():
    assert listed_modules(SAMPLE_LAYOUT) == {
        "pkg": {"alpha", "beta", "gamma", "delta", "epsilon", "sub/"},
        "scripts": {"run", "plot"}}


def test_the_layout_check_fails_both_ways(tmp_path):
    for name in ("pkg/alpha.py", "pkg/beta.py", "pkg/zeta.py", "pkg/__init__.py",
                 "pkg/sub/__init__.py", "pkg/data/weights.h5", "scripts/run.py",
                 "scripts/plot.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    problems = layout_problems(listed_modules(SAMPLE_LAYOUT),
                               tree_modules(tmp_path, ("pkg", "scripts")))
    assert problems == [
        "pkg/zeta is missing from the layout",
        "pkg/delta is in the layout but not in the tree",
        "pkg/epsilon is in the layout but not in the tree",
        "pkg/gamma is in the layout but not in the tree"]
    assert layout_problems({}, {"other": set()}) == ["other/ is not in the layout"]


def test_the_readme_layout_names_every_module_and_only_those():
    listed = listed_modules(layout_block((REPO / "README.md").read_text()))
    assert layout_problems(listed, tree_modules(REPO)) == []


def test_the_docstring_check_finds_what_is_undocumented():
    source = '''
def documented():
    """Yes."""
def bare(): pass
def _private(): pass
class Thing:
    def __init__(self): pass
    def method(self): pass
    def _helper(self): pass
    @property
    def size(self):
        """Documented."""
class _Hidden:
    def method(self): pass
'''
    assert missing_docstrings(source, "m.py") == [
        "m.py:4 bare", "m.py:6 Thing", "m.py:8 Thing.method"]


def test_every_public_function_class_and_method_has_a_docstring():
    missing = []
    for package in DOCUMENTED:
        for path in sorted((REPO / package).rglob("*.py")):
            missing += missing_docstrings(path.read_text(), str(path.relative_to(REPO)))
    assert missing == []
