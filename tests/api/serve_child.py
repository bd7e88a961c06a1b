"""Run the API under uvicorn in a child process (for restart tests).

``python tests/api/serve_child.py CONFIG.json PORTFILE``: binds 127.0.0.1:0, writes the
port to PORTFILE once serving; flexibility from a fixed SoC of 0.6 per battery.
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vpp.api.app import SiteServices, create_app  # noqa: E402
from vpp.api.server import bind_socket  # noqa: E402
from vpp.config import parse_config  # noqa: E402
from vpp.market.flexibility import BatteryFlexibility  # noqa: E402


async def main(cfg_path: str, port_file: str) -> None:
    cfg = parse_config(json.loads(Path(cfg_path).read_text()))
    app = create_app(cfg, SiteServices(BatteryFlexibility(cfg, lambda _id: 0.6)))
    sock = bind_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    Path(port_file).write_text(str(sock.getsockname()[1]))
    await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
