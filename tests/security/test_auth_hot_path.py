"""Authentication off the hot path: the KDF in a bounded worker pool and never under a lock
that the event loop takes; verified keys cached (bounded; expiry and revocation honoured);
wrong keys back off per client address before any KDF work."""
from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from vpp.api import auth as auth_mod
from vpp.api.auth import KeyStore, create_key, key_state, read_keys, revoke_key
from vpp.api.guard import Authenticator, Backoff, Denied
from vpp.cli import main


@pytest.fixture
def one_key(tmp_path):
    path = tmp_path / "keys.json"
    key, principal = create_key(path, "viewer", "v1")
    return path, key, principal


async def test_wrong_keys_back_off_before_any_kdf(site):
    auth = site.app.state.auth
    assert (await site.client.get("/api/v1/me", headers={"X-API-Key": site.keys["viewer"]})).status_code == 200
    runs = auth.kdf_runs
    statuses = []
    for i in range(12):
        r = await site.client.get("/api/v1/me", headers={"X-API-Key": f"vpp_00000000_wrong{i}"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert auth.kdf_runs - runs == 5  # no KDF once the address backs off
    # a key verified before still answers at once from the same address
    ok = await site.client.get("/api/v1/me", headers={"X-API-Key": site.keys["viewer"]})
    assert ok.status_code == 200 and ok.json()["role"] == "viewer"


async def test_a_valid_key_is_not_locked_out_by_a_flood_from_its_address(site):
    """A key never used before, presented from an address that backs off (a flooding client
    behind the same NAT): its id is an active key's, so it is verified and answers 200; wrong
    secrets under that id back off per (address, id) and do not lift the address's penalty."""
    auth = site.app.state.auth
    for i in range(8):
        await site.client.get("/api/v1/me", headers={"X-API-Key": f"vpp_00000000_wrong{i}"})
    assert (await site.client.get("/api/v1/me", headers={"X-API-Key": "vpp_00000000_x"})).status_code == 429
    fresh = site.keys["aggregator"]
    ok = await site.client.get("/api/v1/me", headers={"X-API-Key": fresh})
    assert ok.status_code == 200 and ok.json()["role"] == "aggregator"
    # the success did not lift the flooding address's penalty
    assert (await site.client.get("/api/v1/me", headers={"X-API-Key": "vpp_00000000_y"})).status_code == 429
    # guessing secrets under a known id: a few KDF runs, then that id backs off too
    known_id = site.keys["operator"].split("_")[1]
    runs = auth.kdf_runs
    statuses = [(await site.client.get("/api/v1/me", headers={"X-API-Key": f"vpp_{known_id}_guess{i}"})).status_code
                for i in range(8)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert auth.kdf_runs - runs == 5
    # the real operator key is refused while its (address, id) backs off: the guesses and the
    # key are indistinguishable before the KDF
    assert (await site.client.get("/api/v1/me", headers={"X-API-Key": site.keys["operator"]})).status_code == 429


def test_backoff_grows_then_forgets():
    t = [0.0]
    b = Backoff(free=2, window_s=10, base_s=1, max_s=4, clock=lambda: t[0])
    b.failed("a")
    assert b.retry_after("a") == 0
    b.failed("a")
    assert b.retry_after("a") == 1 and b.retry_after("b") == 0
    b.failed("a")
    b.failed("a")
    b.failed("a")
    assert b.retry_after("a") == 4  # capped
    t[0] = 100.0
    assert b.retry_after("a") == 0
    b.failed("a")  # a new window
    assert b.retry_after("a") == 0
    b.succeeded("a")
    assert b.retry_after("a") == 0


def test_backoff_remembers_a_bounded_number_of_addresses():
    b = Backoff(free=1, max_clients=3)
    for i in range(10):
        b.failed(f"10.0.0.{i}")
    assert len(b._state) == 3


async def test_kdf_runs_in_worker_threads_bounded(one_key, monkeypatch):
    path, _, _ = one_key
    store = KeyStore(path)
    active, peak, threads = [0], [0], set()
    lock = threading.Lock()
    real = auth_mod._kdf

    def slow_kdf(*a, **kw):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            threads.add(threading.get_ident())
        time.sleep(0.05)
        try:
            return real(*a, **kw)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(auth_mod, "_kdf", slow_kdf)
    a = Authenticator(store, kdf_threads=2, max_waiting=100, backoff=Backoff(free=1000))
    results = await asyncio.gather(*(a.principal(f"vpp_x_{i}", f"c{i}") for i in range(8)), return_exceptions=True)
    assert all(isinstance(r, Denied) and r.status == 401 for r in results)
    assert peak[0] <= 2
    assert threading.get_ident() not in threads  # never on the event loop's thread


async def test_too_many_queued_verifications_answer_503(one_key, monkeypatch):
    path, _, _ = one_key
    gate = threading.Event()
    monkeypatch.setattr(auth_mod, "_kdf", lambda *a, **kw: gate.wait(5) and b"")
    a = Authenticator(KeyStore(path), kdf_threads=1, max_waiting=2, backoff=Backoff(free=1000))
    tasks = [asyncio.create_task(a.principal(f"vpp_x_{i}", "c")) for i in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(Denied) as e:
        await a.principal("vpp_x_late", "c")
    assert e.value.status == 503 and e.value.headers["Retry-After"] == "1"
    gate.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_cached_lookup_never_waits_for_a_kdf(one_key, monkeypatch):
    path, key, principal = one_key
    store = KeyStore(path)
    assert store.verify(key) == principal
    started, release = threading.Event(), threading.Event()

    def blocking_kdf(*a, **kw):
        started.set()
        release.wait(5)
        return b""

    monkeypatch.setattr(auth_mod, "_kdf", blocking_kdf)
    t = threading.Thread(target=store.verify, args=("vpp_abcdef00_wrong",))
    t.start()
    assert started.wait(5)
    t0 = time.perf_counter()
    assert store.cached(key) == principal  # while the KDF is running in the other thread
    assert store.valid(principal)
    assert time.perf_counter() - t0 < 1.0
    release.set()
    t.join()


def test_cache_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(auth_mod, "CACHE_SIZE", 2)
    path = tmp_path / "keys.json"
    keys = [create_key(path, "viewer", f"v{i}")[0] for i in range(3)]
    store = KeyStore(path)
    for k in keys:
        assert store.verify(k) is not None
    assert len(store._verified) == 2
    assert store.cached(keys[0]) is None and store.cached(keys[2]) is not None


def test_expired_key_is_refused_also_from_the_cache(tmp_path):
    path = tmp_path / "keys.json"
    key, p = create_key(path, "viewer", "short", expires_in=timedelta(hours=1))
    assert p.expires is not None and read_keys(path)[0]["expires"]
    now = [datetime.now(UTC)]
    store = KeyStore(path, clock=lambda: now[0])
    assert store.verify(key) == p and store.cached(key) == p
    now[0] += timedelta(hours=2)
    assert store.cached(key) is None and store.verify(key) is None and not store.valid(p)
    assert key_state(read_keys(path)[0], now[0]) == "expired"


def test_revoked_key_is_refused_also_from_the_cache(one_key, monkeypatch):
    monkeypatch.setattr(auth_mod, "REFRESH_S", 0.0)
    path, key, p = one_key
    store = KeyStore(path)
    assert store.verify(key) == p
    time.sleep(0.01)  # a new mtime
    revoke_key(path, p.key_id)
    assert store.cached(key) is None and store.verify(key) is None and not store.valid(p)
    assert key_state(read_keys(path)[0]) == "revoked"
    with pytest.raises(KeyError):
        revoke_key(path, "nope")


def test_keys_cli_list_and_revoke(tmp_path, make_config, capsys):
    import json

    cfg = make_config()
    cfg_path = tmp_path / "site.yaml"
    cfg_path.write_text(json.dumps(cfg.model_dump(mode="json")))
    assert main(["keys", "create", "--config", str(cfg_path), "--role", "aggregator", "--name", "agg",
                 "--expires-days", "30"]) == 0
    key = capsys.readouterr().out.strip()
    key_id = key.split("_")[1]
    assert main(["keys", "list", "--config", str(cfg_path)]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and "active" in listed and "expires 20" in listed
    assert main(["keys", "revoke", "--config", str(cfg_path), "--id", key_id]) == 0
    assert main(["keys", "list", "--config", str(cfg_path)]) == 0
    assert "revoked" in capsys.readouterr().out
    assert KeyStore(cfg.api.keys_path).verify(key) is None
    assert main(["keys", "revoke", "--config", str(cfg_path), "--id", "ffffffff"]) == 2
    from vpp.market.ledger import Ledger
    led = Ledger.open(cfg.api.ledger_path)
    try:
        assert [r.payload["action"] for r in led.query(kinds=["audit"])] == ["api_key_created", "api_key_revoked"]
    finally:
        led.close()


async def test_revoked_key_is_refused_by_the_running_app(site, monkeypatch):
    monkeypatch.setattr(auth_mod, "REFRESH_S", 0.0)
    key, p = create_key(site.app.state.keys.path, "viewer", "to-revoke")
    h = {"X-API-Key": key}
    assert (await site.client.get("/api/v1/me", headers=h)).status_code == 200
    time.sleep(0.01)
    revoke_key(site.app.state.keys.path, p.key_id)
    assert (await site.client.get("/api/v1/me", headers=h)).status_code == 401
