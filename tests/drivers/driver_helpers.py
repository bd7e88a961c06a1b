"""Helpers of the driver tests: free loopback ports and example sites tuned for fast polling.

A plain module (not a package: a ``tests/drivers`` package named ``drivers`` would shadow the
real :mod:`drivers` on ``sys.path``), imported by the tests as ``driver_helpers``.
"""
from __future__ import annotations

import socket
from datetime import datetime, timezone
from pathlib import Path

from vpp.config import SiteConfig, read_config

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
NOON_JST = datetime(2026, 6, 20, 3, 0, tzinfo=timezone.utc)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (sockets held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def fast_config(name: str) -> SiteConfig:
    """An example site on free ports with short timeouts and no in-poll retries."""
    cfg = read_config(EXAMPLES / name)
    keys = sorted({(d.connection.host, d.connection.port) for d in cfg.devices})
    ports = dict(zip(keys, free_ports(len(keys))))
    devices = [d.with_connection(port=ports[(d.connection.host, d.connection.port)])
               .model_copy(update={"timeout_s": 0.3, "retries": 0, "poll_interval_s": 0.1})
               for d in cfg.devices]
    return cfg.model_copy(update={"devices": devices})
