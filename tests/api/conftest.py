"""A real app per test: SQLite ledger and key file in tmp_path, battery-based flexibility;
``closed_loop`` for the whole simulated site behind the app."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from drivers.fleet import DriverFleet
from simulators.clock import SimClock
from simulators.site import SimulatedSite
from tests.testkit.sites import make_site, merged
from vpp.api.app import SiteServices, create_app
from vpp.api.auth import ROLES, create_key
from vpp.config import SiteConfig
from vpp.control.loop import Controller
from vpp.control.scheduler import SimulatedTelemetry
from vpp.market.flexibility import BatteryFlexibility
from vpp.storage import TelemetryPipeline, open_store
from vpp.config import updated

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def site_config(tmp_path, name: str = "test-town", keys_path=None, **overrides) -> SiteConfig:
    """The ``test-town`` site (one 100 kWh battery, 30 % floor) with its key file and ledger
    in ``tmp_path`` (``keys_path``: another key file; ``overrides``: see ``make_site``)."""
    return make_site("test-town", **merged({
        "site": {"name": name},
        "api": {"keys_path": str(keys_path or tmp_path / "keys.json"), "ledger_path": str(tmp_path / "ledger.sqlite")},
    }, overrides))


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@dataclass
class Site:
    app: object
    client: httpx.AsyncClient
    config: SiteConfig
    clock: Clock
    soc: dict[str, float]
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str, key: str = "k1", bearer: bool = True) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.keys[role]}"} if bearer else {"X-API-Key": self.keys[role]}
        return {**h, "Idempotency-Key": key}

    def records(self, kind: str | None = None):
        return self.app.state.ledger.query(kinds=[kind] if kind else None)


@pytest.fixture(scope="session")
def key_file(tmp_path_factory):
    """One key per role, created once (scrypt is deliberately slow)."""
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    return path, {role: create_key(path, role, f"{role}-1")[0] for role in ROLES}


@pytest.fixture
def make_config(tmp_path):
    return lambda name="test-town", **kw: site_config(tmp_path, name, **kw)


@pytest.fixture
def open_site(tmp_path, key_file):
    """``async with open_site(flexibility=None, raise_app_exceptions=True, **changes) as site``
    (``changes``: config sections changed as by :func:`vpp.config.updated`)."""

    @contextlib.asynccontextmanager
    async def opener(flexibility=None, raise_app_exceptions=True, **changes):
        path, keys = key_file
        cfg = updated(site_config(tmp_path), api={"keys_path": str(path)}, **changes)
        clock = Clock(T0)
        soc = {"bat1": 0.6}
        app = create_app(cfg, SiteServices(flexibility or BatteryFlexibility(cfg, soc.__getitem__), clock))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                yield Site(app, c, cfg, clock, soc, keys)

    return opener


@pytest.fixture
async def site(open_site):
    async with open_site() as s:
        yield s


@dataclass
class ClosedLoop:
    clock: SimClock
    site: SimulatedSite
    store: object
    pipeline: TelemetryPipeline
    telemetry: SimulatedTelemetry
    ctl: Controller
    app: object
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def closed_loop(config: SiteConfig, start: datetime, tmp_path, bat_soc: float):
    """The whole site behind the API: simulated devices on loopback Modbus (``config`` with
    free ports), the real driver fleet, telemetry pipeline into the store, the controller, and
    the app (lifespan entered) with an ASGI client at ``http://t``. The simulated clock stands
    at ``start`` (speed 0: ``run_simulated`` moves it); ``bat_soc`` is bat1's initial SoC (0..1).
    Everything is stopped on exit."""
    clock = SimClock(start, speed=0)
    site = SimulatedSite(config, clock, auto_ev_sessions=False)
    site.models["bat1"].soc = bat_soc
    store = open_store(config.storage, site=config.site.name, connect=False)
    pipeline = TelemetryPipeline(store, config.storage, spool_dir=tmp_path / "spool")
    fleet = DriverFleet(config, clock=clock)
    telemetry = SimulatedTelemetry(fleet, sink=pipeline.submit)
    ctl = Controller(config, fleet=telemetry, clock=clock, store=store, stale_input_s=90)
    app = create_app(config, SiteServices(controller=ctl, store=store))
    await site.start()
    await pipeline.start()
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield ClosedLoop(clock, site, store, pipeline, telemetry, ctl, app, c)
    finally:
        await fleet.stop()
        await pipeline.stop()
        await site.stop()
        store.close()
