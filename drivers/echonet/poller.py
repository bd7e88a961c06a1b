"""ECHONET devices in the driver fleet: one requester and one poller per home node.

:func:`build_nodes` groups a site's ``protocol: echonet_lite`` devices by node address and
builds, per node, a :class:`~drivers.echonet.transport.NodeRequester` on the fleet's one
:class:`~drivers.echonet.transport.EchonetSocket` and the drivers of its device objects. The
fleet polls each node with the same :class:`drivers.poller.ConnectionPoller` as a Modbus link
(retries, back-off, unavailable after ``fail_threshold``), told that a failed ECHONET
request is a failure (:class:`~drivers.echonet.transport.EchonetError`).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from datetime import datetime

from drivers.config import Device as DeviceConfig
from drivers.device import StalePolicy
from drivers.echonet.device import EchonetDevice, make_echonet_device
from drivers.echonet.transport import EchonetError, EchonetSocket, NodeRequester


class NodeLink:
    """What a poller needs of its link (``key``, ``close()``) for one ECHONET node."""

    def __init__(self, node: NodeRequester) -> None:
        self.node = node
        self.key = f"echonet://{node.host}:{node.port}"

    def close(self) -> None:  # the socket is the fleet's; nothing per node
        return None


ERRORS = (EchonetError,)


def bind_host(configs: Sequence[DeviceConfig]) -> str:
    """Where the fleet's socket binds: loopback when every node is on loopback."""
    hosts = {c.connection.host for c in configs}
    try:
        if all(ipaddress.ip_address(h).is_loopback for h in hosts):
            return "127.0.0.1"
    except ValueError:
        pass
    return "0.0.0.0"


def build_nodes(configs: Sequence[DeviceConfig], sock: EchonetSocket, stale: StalePolicy | None = None,
                clock: Callable[[], datetime] | None = None
                ) -> list[tuple[NodeLink, list[EchonetDevice]]]:
    """Per node: its link and the drivers of its objects (in config order)."""
    by_node: dict[tuple[str, int], list[DeviceConfig]] = {}
    for c in configs:
        by_node.setdefault((c.connection.host, c.connection.port), []).append(c)
    out = []
    for (host, port), cfgs in by_node.items():
        node = sock.requester(host, port, timeout_s=max(c.timeout_s for c in cfgs),
                              retries=max(c.retries for c in cfgs))
        out.append((NodeLink(node), [make_echonet_device(c, node, stale, clock) for c in cfgs]))
    return out
