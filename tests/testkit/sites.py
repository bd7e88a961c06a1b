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


def overridden(config: SiteConfig, each_device: dict | None = None, **overrides: Any) -> SiteConfig:
    """A new config from ``config``'s data with ``overrides`` merged in and ``each_device``
    merged into every device, e.g. ``overridden(cfg, each_device={"timeout_s": 0.5})``."""
    raw = merged(config.model_dump(mode="json"), overrides)
    if each_device:
        raw["devices"] = [merged(d, each_device) for d in raw["devices"]]
    return parse_config(raw, f"<{config.site.name} with overrides>")
