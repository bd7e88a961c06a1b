"""Named test sites: ``tests/data/sites/<name>.yaml`` with per-test overrides.

A test that needs another port, path or limit builds a new config with :func:`make_site`
instead of assigning to a loaded one (the config is frozen once loaded).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from vpp.config import SiteConfig, parse_config

SITES = Path(__file__).resolve().parents[1] / "data" / "sites"


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in: mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def site_data(name: str, **overrides: Any) -> dict:
    """The raw data of site ``name`` with ``overrides`` (top-level sections) merged in."""
    return merged(yaml.safe_load((SITES / f"{name}.yaml").read_text(encoding="utf-8")), overrides)


def make_site(name: str, **overrides: Any) -> SiteConfig:
    """Site ``name`` validated, e.g. ``make_site("shelter", optimiser={"horizon_h": 12})``."""
    return parse_config(site_data(name, **overrides), str(SITES / f"{name}.yaml"))
