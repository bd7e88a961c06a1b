#!/usr/bin/env python3
"""Container entrypoint: fill ``${NAME}`` placeholders of the site config, then exec the command.

Secrets (the InfluxDB token) stay out of the config file and out of git. In the config write
``token: "${VPP_INFLUX_TOKEN}"``; at start each ``${NAME}`` is replaced by

* the content of the file named by ``NAME_FILE`` (trailing newline stripped) when that variable
  is set — the convention of Docker secrets and systemd credentials (``%d/…``), else
* the value of the environment variable ``NAME``.

A placeholder whose variable is unset is an error naming it. Values must be single-line and
contain no ``"`` or ``\\`` (they are pasted inside a YAML double-quoted scalar). Nothing else in
the file changes. The rendered file is written with mode 0600 to ``$VPP_RUNTIME_DIR`` (default
``/run/vpp``, a tmpfs in compose) and the command's ``--config`` argument is pointed at it.
A config without placeholders is passed through untouched.

Usage: ``entrypoint.py vpp run --config /etc/vpp/site.yaml`` (any ``vpp`` subcommand works).
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BAD_VALUE = re.compile(r'[\r\n"\\]')


class RenderError(ValueError):
    """A placeholder cannot be filled; ``str()`` names the variable."""


def placeholders(text: str) -> list[str]:
    """Names of the ``${NAME}`` placeholders in ``text``, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def lookup(name: str, env: Mapping[str, str]) -> str:
    """Value for ``name``: the file named by ``NAME_FILE``, else ``NAME`` (see module doc)."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise RenderError(f"{name}_FILE={path}: {e.strerror}") from None
    elif name in env:
        value = env[name]
    else:
        raise RenderError(f"config placeholder ${{{name}}}: set {name} or {name}_FILE")
    if not value:
        raise RenderError(f"config placeholder ${{{name}}}: the value is empty")
    if _BAD_VALUE.search(value):
        raise RenderError(f"config placeholder ${{{name}}}: value must be one line without '\"' or '\\'")
    return value


def render(text: str, env: Mapping[str, str]) -> str:
    """``text`` with every ``${NAME}`` replaced (see module doc); raises :class:`RenderError`."""
    values = {n: lookup(n, env) for n in placeholders(text)}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _config_index(argv: list[str]) -> int | None:
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            return i + 1
        if a.startswith("--config="):
            return i
    return None


def prepare(argv: list[str], env: Mapping[str, str], runtime_dir: Path) -> list[str]:
    """``argv`` with ``--config`` pointed at a rendered copy when the config has placeholders."""
    i = _config_index(argv)
    if i is None:
        return argv
    prefix = "--config=" if argv[i].startswith("--config=") else ""
    src = Path(argv[i][len(prefix):])
    try:
        text = src.read_text(encoding="utf-8")
    except OSError:
        return argv  # let the command report the unreadable file in its own words
    if not placeholders(text):
        return argv
    out = render(text, env)
    runtime_dir.mkdir(parents=True, exist_ok=True)
    dst = runtime_dir / f"{src.stem}.{os.getpid()}.yaml"
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(out)
    return [*argv[:i], prefix + str(dst), *argv[i + 1:]]


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: entrypoint.py COMMAND [ARGS…]", file=sys.stderr)
        return 2
    try:
        argv = prepare(argv, os.environ, Path(os.environ.get("VPP_RUNTIME_DIR", "/run/vpp")))
    except RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
