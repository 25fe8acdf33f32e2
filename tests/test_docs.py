"""The layout page (docs/layout.md) names every module on disk and only those, and the lint
configuration requires a docstring of every public class, method and function of the packages.
The layout checker is tested on small strings first, so a passing run means the tree is right,
not that the checker cannot fail."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LISTED = ("keras_resnets", "trainers", "analysis", "saved_models", "experiments", "benchmarks")
LAYOUT = REPO / "docs" / "layout.md"


def layout_block(page: str) -> str:
    """The first fenced block of the layout page."""
    return page.split("```", 2)[1]


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


def test_the_layout_page_names_every_module_and_only_those():
    listed = listed_modules(layout_block(LAYOUT.read_text()))
    assert layout_problems(listed, tree_modules(REPO)) == []


UNDOCUMENTED = '''
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


def lint_findings(source: str, filename: str) -> list[tuple[str, str]]:
    """``(line, code)`` of each docstring finding of ``ruff check`` with the project's
    configuration on ``source``, linted as if it were the file ``filename`` of the repository.
    Ruff must have run: exit 1 with findings, 0 without (a missing ruff fails, not passes)."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "--no-cache",
         "--stdin-filename", filename, "-"],
        input=source, capture_output=True, text=True, cwd=REPO, check=False)
    findings = re.findall(rf"^{re.escape(filename)}:(\d+):\d+: (D\d+)", result.stdout, re.M)
    assert result.returncode == (1 if findings else 0), result.stdout + result.stderr
    return findings


def test_the_lint_requires_docstrings_of_public_classes_methods_and_functions_in_the_packages():
    for package in ("keras_resnets", "trainers", "analysis", "saved_models", "experiments"):
        assert lint_findings(UNDOCUMENTED, f"{package}/sample.py") == [
            ("4", "D103"), ("6", "D101"), ("8", "D102")]


def test_the_lint_asks_no_docstrings_of_tests_benchmarks_and_results_scripts():
    for filename in ("tests/test_sample.py", "benchmarks/sample.py", "results/he2016/sample.py"):
        assert lint_findings(UNDOCUMENTED, filename) == []
