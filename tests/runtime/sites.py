"""Running sites for the runtime and dashboard tests: a Runtime on a simulated site (60×) on
free loopback ports, on its own event loop in a thread, its embedded store pre-filled."""
from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

from vpp.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy/examples/community-centre.yaml"


def prefill_day(runtime: Runtime, end: datetime) -> int:
    """Write 24 h of 1-s readings of every device into the runtime's embedded store [rows]."""
    from vpp.storage.embedded import EmbeddedStore

    cfg = runtime.config
    store = EmbeddedStore(cfg.storage, site=cfg.site.name)
    store.open()
    t0 = int((end - timedelta(days=1)).timestamp())
    n = 0
    try:
        for d in cfg.devices:
            rows = []
            for k in range(86_400):
                ts = t0 + k
                p = 5000.0 + 1000.0 * ((ts // 60) % 7)
                vals = {"power_w": p, "soc": 0.5} if d.kind == "battery" else {"power_w": p}
                rows.append((cfg.site.name, d.id, d.kind, ts * 1_000_000_000, "good", "", json.dumps(vals)))
            store.write_prepared(rows)
            n += len(rows)
    finally:
        store.close()
    return n


class SiteThread:
    """The runtime on its own event loop in a thread (Playwright's sync API owns the test's)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.call(self.rt.start(), 60)

    def stop(self) -> None:
        try:
            self.call(self.rt.stop(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    def inject(self, device: str, fault: str | None) -> None:
        async def go():
            await self.rt.site.inject(device, fault)
        self.call(go())


def start_site(tmp: Path, **overrides) -> SiteThread:
    """The community-centre example at 60× with a day of telemetry in its store and one key
    per role (``.keys``), started; its simulated day starts 6 h behind the wall clock (and
    catches up after ~6 min): times such as override expiries must come from the site's
    clock, not the browser's. ``overrides`` are merged into the config (``overridden``)."""
    import time
    from datetime import timezone

    from vpp.api.auth import create_key
    from vpp.commands.demo import simulated_runtime
    from vpp.config import read_config

    cfg = read_config(EXAMPLE)
    if overrides:
        from tests.testkit.sites import overridden

        cfg = overridden(cfg, **overrides)
    start = datetime.now(timezone.utc) - timedelta(hours=6)
    rt = simulated_runtime(cfg, speed=60.0, sim_start=start, data_dir=tmp, weather="clear-sky")
    t0 = time.perf_counter()
    rows = prefill_day(rt, start)
    print(f"\nprefilled {rows} rows (1-s, 24 h, {len(cfg.devices)} devices) in {time.perf_counter() - t0:.1f} s")
    keys = {role: create_key(rt.config.api.keys_path, role, f"test-{role}")[0]
            for role in ("operator", "viewer", "aggregator")}
    st = SiteThread(rt)
    st.start()
    st.keys = keys
    st.url = rt.url
    return st
