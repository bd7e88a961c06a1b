"""The drivers package stands alone: no module of it imports ``vpp`` (not even inside a function)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import drivers

DRIVERS = Path(drivers.__file__).parent
MODULES = sorted(DRIVERS.rglob("*.py"))


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_the_walk_sees_the_package():
    names = {p.name for p in MODULES}
    assert {"config.py", "device.py", "fleet.py", "modbus.py", "registermap.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(DRIVERS)))
def test_no_module_imports_vpp(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    bad = [f"line {n}: {m}" for n, m in _imported(tree) if m == "vpp" or m.startswith("vpp.")]
    assert not bad, f"{path.name} imports vpp: {bad}"



@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(DRIVERS)))
def test_modules_stay_under_500_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 500
