"""The architecture's one-home rules, checked on the source: each concept defined once, small
modules. (Layering is checked by import-linter: ``make lint-imports``, run by ``make test``.)"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vpp", "optimizer", "drivers", "simulators")
MAX_LINES = 500


def sources(*packages: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
            for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))}


def code_lines(src: str) -> str:
    """The source without docstrings and comments (what the program does, not what it says)."""
    tree = ast.parse(src)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0].value.value = ""
    return ast.unparse(tree)


def where(pattern: str, packages=PACKAGES) -> list[str]:
    rx = re.compile(pattern)
    return [path for path, src in sources(*packages).items() if rx.search(code_lines(src))]


def test_modules_are_small_or_say_why():
    big = []
    for path, src in sources("vpp", "optimizer", "drivers").items():
        n = src.count("\n") + 1
        doc = ast.get_docstring(ast.parse(src)) or ""
        if n > MAX_LINES and not re.search(r"^Over 500 lines: .+", doc, re.M):
            big.append(f"{path}: {n} lines")
    assert not big, "modules over 500 lines without a one-line reason ('Over 500 lines: ...') in the docstring: " \
                    + ", ".join(big)


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def test_the_reserve_floor_formula_has_one_home():
    """The floor is energy for ``autonomy_h`` hours divided by (usable) capacity: one function
    computes it; everything else calls it."""
    found = []
    for path, src in sources(*PACKAGES).items():
        for fn in ast.walk(ast.parse(src)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or "autonomy_h" not in _names(fn):
                continue
            if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)
                   and any(x in ("cap", "capacity_wh") for x in _names(n.right)) for n in ast.walk(fn)):
                found.append(f"{path}:{fn.name}")
    assert found == ["vpp/control/reserve.py:floor_sizing"], found


def test_the_grid_meter_rule_has_one_home():
    assert where(r"""role\s*==\s*['"]grid['"]|['"]grid['"]\s*==\s*\w+\.role""") == ["vpp/config.py"]


def test_the_slot_length_has_one_home():
    """The 30-minute slot is one integer constant; everything else imports it."""
    found = []
    for path, src in sources(*PACKAGES).items():
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value == 1800:
                found.append(path)
    assert found == ["optimizer/inputs.py"], found
