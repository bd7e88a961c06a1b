"""``vpp devices list|read|write`` on a site with ECHONET Lite and OCPP devices (CLI in a
subprocess; the ECHONET Lite home is an emulated node on loopback)."""
from __future__ import annotations

import asyncio
import json
import sys

import yaml

from simulators.clock import SimClock
from simulators.echonet_site import echonet_homes, free_echonet_block, with_echonet_hosts
from simulators.site import SimulatedSite, with_free_ports
from simulators.town import generate_town
from vpp.config import parse_config
from vpp.market.ledger import Ledger

OCPP = {"id": "cp1", "kind": "ev_charger", "protocol": "ocpp", "version": "2.0.1", "ocpp": {"password": "pw"},
        "ratings": {"voltage_v": 200, "phases": 1, "min_current_a": 6, "max_current_a": 32}}


async def vpp(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "vpp.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def _site(tmp_path) -> tuple[SimulatedSite, object, str]:
    """One ECHONET Lite home on a free loopback block; the written config adds an OCPP station."""
    cfg = parse_config(generate_town(1, protocol="echonet_lite"), "<echonet home>")
    socks = free_echonet_block(len(echonet_homes(cfg)))
    hosts = [s.getsockname()[0] for s in socks]
    cfg = with_free_ports(with_echonet_hosts(cfg, hosts))
    site = SimulatedSite(cfg, SimClock(speed=0), auto_ev_sessions=False)
    site.echonet_sockets = dict(zip(hosts, socks))
    data = cfg.model_dump(mode="json")
    data["devices"].append(OCPP)
    data["api"]["ledger_path"] = str(tmp_path / "ledger.sqlite")
    full = parse_config(data, "<echonet home + ocpp>")
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(full.model_dump(mode="json")))
    return site, full, str(path)


async def test_list_read_and_write_across_protocols(tmp_path):
    site, cfg, path = _site(tmp_path)
    echonet_ids = {d.id for d in cfg.devices if d.protocol == "echonet_lite"}
    assert echonet_ids

    rc, out, err = await vpp("devices", "list", "--config", path, "--json")
    assert rc == 0, err
    rows = {r["device"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == {d.id for d in cfg.devices}
    assert rows["cp1"]["protocol"] == "ocpp" and rows["cp1"]["read"] == "service API"
    for i in echonet_ids:
        c = cfg.device(i).connection
        assert rows[i]["protocol"] == "echonet_lite" and rows[i]["address"].startswith(f"{c.host}:{c.port}")
    rc, out, err = await vpp("devices", "list", "--config", path)
    assert rc == 0 and "echonet_lite" in out and "ocpp" in out

    async with site:
        site.step(60)
        rc, out, err = await vpp("devices", "read", "--config", path, "--json")
        assert rc == 0, err  # the OCPP row does not count as a failed read
        rows = {r["device"]: r for r in map(json.loads, out.splitlines())}
        assert set(rows) == {d.id for d in cfg.devices}
        for i in echonet_ids:
            assert rows[i]["protocol"] == "echonet_lite" and rows[i]["quality"] == "good", rows[i]
            assert rows[i]["values"]
        bat = next(i for i in echonet_ids if cfg.device(i).kind == "battery")
        assert abs(rows[bat]["values"]["soc"] - site.model(bat).soc) < 0.02
        ocpp = rows["cp1"]
        assert ocpp["protocol"] == "ocpp" and ocpp["values"] == {} and ocpp["quality"] == "unavailable"
        assert "/api/v1/ev/sessions" in ocpp["reason"]

        rc, out, err = await vpp("devices", "read", "--config", path, "--device", "cp1")
        assert rc == 0 and "/api/v1/ev/sessions" in "".join(out.split()), out  # (the table may wrap)
        rc, out, err = await vpp("devices", "read", "--config", path, "--device", "nope")
        assert rc == 2 and "unknown device 'nope'" in err

    rc, out, err = await vpp("devices", "write", "--config", path, "cp1", "--current-a", "10")
    assert rc == 3 and "refused" in err and "OCPP" in err and "central system" in err
    led = Ledger.open(str(tmp_path / "ledger.sqlite"))
    try:
        recs = [r.payload for r in led.query(kinds=["audit"]) if r.payload.get("action") == "device_write"]
    finally:
        led.close()
    assert [(r["device"], r["result"]) for r in recs] == [("cp1", "refused")]
