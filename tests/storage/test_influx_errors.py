"""InfluxDB start-up errors (credentials, missing database) and 4xx handling, on real influxd."""
from __future__ import annotations

import time

import httpx
import pytest
from storage_helpers import T0, influx_cfg, snap

from vpp.storage import StorageError, TelemetryPipeline, open_store
from vpp.storage.influx import InfluxStore
from vpp.storage.influxd import free_port, start_influxd


@pytest.fixture(scope="module")
def influxd_auth(tmp_path_factory):
    srv = start_influxd(tmp_path_factory.mktemp("influx-auth"), auth=True)
    srv.query("CREATE USER admin WITH PASSWORD 'secret' WITH ALL PRIVILEGES")
    srv.query("CREATE USER reader WITH PASSWORD 'pw'", auth=("admin", "secret"))
    yield srv
    srv.stop()


def test_wrong_password_is_a_clear_startup_error(influxd_auth):
    cfg = influx_cfg(influxd_auth.url, username="admin", password="wrong")
    with pytest.raises(StorageError, match="refused credentials.*admin.*authorization failed"):
        open_store(cfg, site="town")


async def test_pipeline_start_fails_fast_on_bad_credentials(influxd_auth, tmp_path):
    cfg = influx_cfg(influxd_auth.url, username="nobody", password="x")
    p = TelemetryPipeline(InfluxStore(cfg, site="town"), cfg, tmp_path / "spool")
    with pytest.raises(StorageError, match="refused credentials"):
        await p.start()


def test_right_credentials_create_the_database(influxd_auth):
    cfg = influx_cfg(influxd_auth.url, username="admin", password="secret")
    with open_store(cfg, site="town") as s:
        assert s.write([snap("pv1", "pv", 0, power_w=1.0)]).written == 1
        assert s.count() == 1
    names = [v[0] for v in influxd_auth.query("SHOW DATABASES", auth=("admin", "secret"))
             ["results"][0]["series"][0]["values"]]
    assert cfg.database in names


def test_missing_database_without_create(influxd):
    cfg = influx_cfg(influxd.url, create_database=False)
    with pytest.raises(StorageError, match="does not exist and storage.create_database is false"):
        open_store(cfg, site="town")


def test_user_without_privileges_is_told_so(influxd_auth):
    cfg = influx_cfg(influxd_auth.url, username="reader", password="pw")
    with pytest.raises(StorageError, match="not authorized .user 'reader'. for database"):
        open_store(cfg, site="town")


def test_missing_retention_policy(influxd):
    cfg = influx_cfg(influxd.url, retention_policy="nope")
    with pytest.raises(StorageError, match="retention policy 'nope' does not exist"):
        open_store(cfg, site="town")


def test_malformed_lines_are_logged_and_the_rest_written(influxd, caplog):
    with open_store(influx_cfg(influxd.url), site="town") as s:
        good = [s.encode(snap("pv1", "pv", i, power_w=float(i))) for i in range(5)]
        bad = ["pv,device=pv1,site=town power_w=zz 123", "garbage"]
        res = s.write_lines(good[:2] + bad[:1] + good[2:] + bad[1:])
        assert res.written == 5
        assert [line for line, _ in res.rejected] == bad
        assert s.count() == 5
        assert "rejected point" in caplog.text and "garbage" in caplog.text


async def test_type_conflict_drops_only_conflicting_points(influxd, tmp_path):
    cfg = influx_cfg(influxd.url, flush_interval_s=0.05)
    store = open_store(cfg, site="town")
    # an older tool stored power_w as an integer in this shard
    r = httpx.post(f"{influxd.url}/write", params={"db": cfg.database},
                   content=f"pv,device=old,site=town power_w=5i {T0.timestamp() * 1e9:.0f}")
    assert r.status_code == 204
    p = TelemetryPipeline(store, cfg, tmp_path / "spool")
    await p.start()
    p.submit(snap("pv1", "pv", 1, power_w=2.5))
    p.submit(snap("m1", "meter", 1, power_w=3.5))
    assert await p.flushed(10)
    await p.stop()
    m = p.metrics
    assert (m["written"], m["rejected"], m["spooled"]) == (1, 1, 0)
    assert store.count(kind="meter") == 1 and store.count(device="pv1") == 0
    store.close()


def test_unreachable_store_is_reported_as_unavailable(tmp_path):
    from vpp.storage import StoreUnavailable
    cfg = influx_cfg(f"http://127.0.0.1:{free_port()}")
    t = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        open_store(cfg, site="town")
    assert time.monotonic() - t < 5
