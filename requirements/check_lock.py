#!/usr/bin/env python3
"""Check that the lock files pin what ``pyproject.toml`` asks for.

``requirements/runtime.txt`` must pin every ``[project.dependencies]`` entry and the
``openadr`` extra (what the image and a production install get); ``requirements/test.txt``
those plus the ``test`` extra (what ``make venv`` installs). A requirement is satisfied when
the lock pins a version of that package inside its specifier (requirements whose environment
marker is false here are skipped). Packages pinned beyond that are fine (dependencies of
dependencies).

``check_lock.py [ROOT] [--runtime]`` (``--runtime``: runtime.txt only, as the image has it).
Exit 0 when they agree; else 1 with one line per disagreement and the fix (``make lock``).
Standard library plus ``packaging`` (pip's vendored copy when not installed), so it runs in a
fresh venv before anything is installed.
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:  # a fresh venv: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.version import Version  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
#: lock file → the extras it covers besides [project.dependencies]
LOCKS = {"requirements/runtime.txt": ("openadr",), "requirements/test.txt": ("openadr", "test")}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)")


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    """``name → version`` of the ``name==version`` lines of a lock file (comments, options
    and markers ignored; a package pinned twice under different markers keeps the last)."""
    out = {}
    for line in text.splitlines():
        m = _PIN.match(line.strip())
        if m:
            out[normalise(m.group(1))] = m.group(2)
    return out


def wanted(pyproject: dict, extras: tuple[str, ...]) -> list[Requirement]:
    project = pyproject["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(r) for r in reqs]


def disagreements(pyproject: dict, lock_text: str, extras: tuple[str, ...], lock_name: str) -> list[str]:
    """One message per requirement of ``pyproject`` (with ``extras``) the lock does not satisfy."""
    pinned = pins(lock_text)
    out = []
    for req in wanted(pyproject, extras):
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = pinned.get(normalise(req.name))
        if version is None:
            out.append(f"{lock_name}: {req} is not pinned")
        elif req.specifier and not req.specifier.contains(Version(version), prereleases=True):
            out.append(f"{lock_name}: {req.name}=={version} does not satisfy {req}")
    return out


def main(root: Path = ROOT, locks: dict[str, tuple[str, ...]] = LOCKS) -> int:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    problems = []
    for name, extras in locks.items():
        path = root / name
        if not path.exists():
            problems.append(f"{name} is missing")
            continue
        problems += disagreements(pyproject, path.read_text(encoding="utf-8"), extras, name)
    if problems:
        print("error: the lock files disagree with pyproject.toml:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        print("run `make lock` (uv pip compile; keeps the other pins) and commit requirements/*.txt",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # check_lock.py [ROOT] [--runtime]: --runtime checks runtime.txt only (the image)
    args = [a for a in sys.argv[1:] if a != "--runtime"]
    only = {k: v for k, v in LOCKS.items() if k.endswith("runtime.txt")} if "--runtime" in sys.argv else LOCKS
    sys.exit(main(Path(args[0]) if args else ROOT, only))
