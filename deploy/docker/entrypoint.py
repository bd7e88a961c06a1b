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

Placeholder secrets are refused: a value that is still the ``CHANGE-ME`` of ``env.example``
(or ``changeme``, ``REPLACE-ME``, ``TODO``, ``xxx``, ``password``, ``secret``, ``<…>``) stops
the start with an error naming the variable. ``entrypoint.py --check-secrets NAME…`` checks
environment variables the same way, and that each has at least :data:`MIN_SECRET_LEN`
characters, and exits (compose's ``preflight`` service runs it before InfluxDB, Grafana and the service).

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
#: values that are somebody's "fill me in", never a secret
_PLACEHOLDER_VALUE = re.compile(r"(?i)(change[-_ .]?me|replace[-_ .]?me|changeit|^todo$|^x{3,}$|^password$|^secret$"
                                r"|^example$|^placeholder$|^<.*>$|^\.\.\.$)")
#: shortest secret accepted [characters] (InfluxDB refuses shorter passwords as well)
MIN_SECRET_LEN = 8


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
    check_secret(name, value)
    return value


def check_secret(name: str, value: str, min_len: int = 1) -> None:
    """Raise :class:`RenderError` naming ``name`` when ``value`` is empty, a placeholder such
    as ``CHANGE-ME`` or shorter than ``min_len`` characters."""
    if not value:
        raise RenderError(f"{name} is empty: set it to a real secret")
    if _PLACEHOLDER_VALUE.search(value):
        raise RenderError(f"{name} is still the placeholder {value!r}: set a real secret in deploy/.env "
                          "(e.g. `openssl rand -base64 32 | tr -d '=+/'`)")
    if len(value) < min_len:
        raise RenderError(f"{name} is shorter than {min_len} characters: set a real secret")


def check_env(names: list[str], env: Mapping[str, str]) -> list[str]:
    """One message per variable of ``names`` that is unset or not a real secret (``NAME_FILE``
    is read when set, as for placeholders)."""
    problems = []
    for name in names:
        try:
            check_secret(name, lookup(name, env), MIN_SECRET_LEN)
        except RenderError as e:
            problems.append(str(e))
    return problems


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
        print("usage: entrypoint.py COMMAND [ARGS…] | entrypoint.py --check-secrets NAME…", file=sys.stderr)
        return 2
    if argv[0] == "--check-secrets":
        problems = check_env(argv[1:], os.environ)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if not problems:
            print(f"secrets ok: {', '.join(argv[1:])}")
        return 2 if problems else 0
    try:
        argv = prepare(argv, os.environ, Path(os.environ.get("VPP_RUNTIME_DIR", "/run/vpp")))
    except RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
