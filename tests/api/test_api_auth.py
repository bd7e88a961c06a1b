from __future__ import annotations

import json

import pytest

from vpp.api.auth import KeyStore, create_key
from vpp.api.deps import get_config
from vpp.cli import main
from vpp.market.ledger import Ledger

OFFER = {"override": "award-side rules under test", "slots": [{"start": "2026-11-25T05:00:00Z", "capacity_kw": 20}]}


async def test_health_needs_no_key(site):
    r = await site.client.get("/api/v1/health")
    assert r.status_code == 200 and r.json()["site"] == "test-town" and r.json()["status"] == "ok"


async def test_config_dependency_can_be_overridden(site, make_config):
    site.app.dependency_overrides[get_config] = lambda: make_config("override-town")
    r = await site.client.get("/api/v1/health")
    assert r.json()["site"] == "override-town"


@pytest.mark.parametrize("headers,detail", [
    ({}, "missing API key"),
    ({"Authorization": "Bearer vpp_00000000_nope"}, "invalid API key"),
    ({"X-API-Key": "garbage"}, "invalid API key"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing API key"),
])
async def test_missing_or_invalid_key_is_401_before_anything_else(site, headers, detail):
    # no Idempotency-Key and an invalid body on purpose: 401 must win
    r = await site.client.post("/api/v1/offers", json={"slots": "bad"}, headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == detail
    assert r.headers["www-authenticate"] == "Bearer"
    assert site.records() == []


async def test_tampered_secret_is_401(site):
    good = site.keys["operator"]
    bad = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    r = await site.client.get("/api/v1/offers/x", headers={"X-API-Key": bad})
    assert r.status_code == 401


async def test_viewer_cannot_offer_403(site):
    r = await site.client.post("/api/v1/offers", json=OFFER, headers=site.auth("viewer"))
    assert r.status_code == 403 and "needs operator" in r.json()["detail"]  # offers: operators only
    assert site.records() == []


@pytest.mark.parametrize("role", ["viewer", "aggregator"])
async def test_only_operators_export_the_ledger(site, role):
    r = await site.client.get("/api/v1/ledger/export", params={"start": "2026-11-24T00:00:00Z",
                                                               "end": "2026-11-26T00:00:00Z"},
                              headers=site.auth(role))
    assert r.status_code == 403 and "needs operator" in r.json()["detail"]


async def test_viewer_may_not_award_or_export_but_may_read(site):
    r = await site.client.post("/api/v1/offers", json=OFFER, headers=site.auth("operator", bearer=False))
    assert r.status_code == 201
    oid = r.json()["id"]
    award = {"offer_id": oid, "slots": [{"start": "2026-11-25T05:00:00Z", "capacity_kw": 1}]}
    assert (await site.client.post("/api/v1/awards", json=award, headers=site.auth("viewer"))).status_code == 403
    r = await site.client.get("/api/v1/ledger/export", params={"start": "2026-11-24T00:00:00Z",
                                                               "end": "2026-11-26T00:00:00Z"},
                              headers={"X-API-Key": site.keys["viewer"]})
    assert r.status_code == 403
    r = await site.client.get(f"/api/v1/offers/{oid}", headers={"X-API-Key": site.keys["viewer"]})
    assert r.status_code == 200 and r.json()["id"] == oid


def test_key_file_holds_no_plaintext_and_verifies(tmp_path):
    path = tmp_path / "keys.json"
    key, principal = create_key(path, "aggregator", "jepx-agg")
    text = path.read_text()
    assert key.split("_", 2)[2] not in text
    assert (path.stat().st_mode & 0o777) == 0o600
    store = KeyStore(path)
    assert store.verify(key) == principal and principal.role == "aggregator"
    assert store.verify(key + "x") is None
    with pytest.raises(ValueError, match="unknown role"):
        create_key(path, "root", "x")
    with pytest.raises(ValueError, match="already exists"):
        create_key(path, "viewer", "jepx-agg")


def test_keys_cli_prints_key_once_and_audits(tmp_path, make_config, capsys):
    cfg_path = tmp_path / "site.yaml"
    cfg = make_config()
    cfg_path.write_text(json.dumps(cfg.model_dump(mode="json")))  # JSON is valid YAML
    assert main(["keys", "create", "--config", str(cfg_path), "--role", "viewer", "--name", "dashboard"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("vpp_") and "cannot be shown again" in out.err
    assert KeyStore(cfg.api.keys_path).verify(key).name == "dashboard"
    assert main(["keys", "list", "--config", str(cfg_path)]) == 0
    listed = capsys.readouterr().out
    assert "viewer" in listed and "dashboard" in listed and key.split("_", 2)[2] not in listed
    led = Ledger.open(cfg.api.ledger_path)
    try:
        (audit,) = led.query(kinds=["audit"])
        assert audit.payload["action"] == "api_key_created" and audit.payload["role"] == "viewer"
    finally:
        led.close()
    with pytest.raises(SystemExit):
        main(["keys", "create", "--config", str(cfg_path), "--role", "root", "--name", "x"])


async def test_key_created_while_running_is_accepted_without_restart(site):
    import uuid

    key, _ = create_key(site.app.state.keys.path, "viewer", f"late-{uuid.uuid4().hex}")
    r = await site.client.get("/api/v1/offers/none", headers={"X-API-Key": key})
    assert r.status_code == 404  # authenticated; the offer simply does not exist
