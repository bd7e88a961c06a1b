"""Towns of in-process homes with their edge agents and a centre, on one manual clock."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from vpp.central.service import CentralService
from vpp.edge.agent import EdgeAgent
from vpp.edge.home_physics import HomesTown, ManualClock


async def start_agent(town: HomesTown, url: str, root: Path, cls=EdgeAgent, **kw) -> EdgeAgent:
    kw.setdefault("telemetry_every_s", 0.05)
    kw.setdefault("status_every_s", 0.2)
    kw.setdefault("ack_wait_s", 2.0)  # a delivery lost in a kill comes back within 2 s
    return await cls(town, url, root / town.town, **kw).start()


async def start_central(url: str, root: Path, clock: ManualClock, **kw) -> CentralService:
    kw.setdefault("ack_wait_s", 2.0)
    return await CentralService(url, root / "central", clock=clock, **kw).start()


async def step(towns: list[HomesTown], clock: ManualClock, n: int, dt_s: float = 60.0, pause_s: float = 0.02) -> None:
    """``n`` physics steps of every town, advancing the shared clock (the loop runs between)."""
    for _ in range(n):
        for t in towns:
            t.step(dt_s)
        clock.advance(dt_s)
        await asyncio.sleep(pause_s)


def outbox_ids(state_dir: Path, kind: str) -> set[str]:
    """Ids of every ``kind`` message an agent committed to its outbox (read from its file)."""
    db = sqlite3.connect(state_dir / "agent.sqlite")
    try:
        return {r[0] for r in db.execute("SELECT id FROM outbox WHERE kind=?", (kind,))}
    finally:
        db.close()


def sink_ids(central: CentralService, town: str) -> set[str]:
    return {i for i, _, _ in central.sink.inbox.outcomes(town=town, kind="telemetry")}
