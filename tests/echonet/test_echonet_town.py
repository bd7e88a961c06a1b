"""The ECHONET town: `vpp town generate` makes ECHONET homes, and the typhoon runs on it
(shortened for CI: storm, reserve raised, the feeder fails, homes islanded)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from simulators.scenarios.runner import run_scenario
from simulators.scenarios.spec import Storm, Window, read_scenario
from simulators.town import generate_town
from vpp.cli import main
from vpp.config import read_config


def test_town_generate_makes_echonet_homes_and_a_modbus_centre(tmp_path):
    out = tmp_path / "town.yaml"
    assert main(["town", "generate", "--homes", "40", "--v2h-share", "0.25", "--out", str(out)]) == 0
    cfg = read_config(out)
    homes = [d for d in cfg.devices if d.home and d.home != "centre"]
    assert homes and all(d.protocol == "echonet_lite" for d in homes)
    assert {d.register_map for d in homes} == {"storage_battery", "home_pv", "smart_meter", "v2h"}
    hosts = {d.home: d.connection.host for d in homes}
    assert len(set(hosts.values())) == 40 and all(h.startswith("127.") for h in hosts.values())
    centre = [d for d in cfg.devices if d.home == "centre" or d.id == "feeder"]
    assert centre and all(d.protocol == "modbus" for d in centre)
    assert 4 <= len(cfg.devices_of("ev_charger")) <= 18
    assert main(["town", "generate", "--homes", "3", "--v2h-share", "2"]) == 2


def test_generator_keeps_modbus_on_request():
    data = generate_town(5, protocol="modbus")
    assert all(d.get("protocol", "modbus") == "modbus" for d in data["devices"])
    with pytest.raises(ValueError, match="protocol"):
        generate_town(5, protocol="zigbee")


@pytest.mark.timeout(300)
def test_typhoon_on_an_echonet_town_keeps_the_reserve():
    sc = read_scenario("typhoon-town")
    # CI: four homes, the storm at once, the feeder down for the last hour
    sc = sc.model_copy(update={
        "town": sc.town.model_copy(update={"homes": 4}),
        "start": sc.start + timedelta(hours=14),
        "storm": Storm(at=0.1, deadline=2.0, target_pct=90, reason="JMA storm warning"),
        "grid_outages": [Window(start=2.5, end=4.0)],
        "island_load_w": 800.0})
    r = asyncio.run(run_scenario(sc, hours=3.5))
    assert r.kpis["reserve_violations"] == 0
    assert r.kpis["outage_minutes"] >= 55 and r.kpis["critical_unserved_kwh"] == 0
    assert r.kpis["soc_at_outage"] >= 0.85 and r.kpis["points_lost"] == 0
    assert r.kpis["inputs_stale_minutes"] == 0


def test_vpp_sim_serves_echonet_homes(tmp_path, capsys):
    import yaml

    from simulators.echonet_site import echonet_homes, free_echonet_block, with_echonet_hosts
    from simulators.site import with_free_ports
    from vpp.config import parse_config

    cfg = parse_config(generate_town(3, protocol="echonet_lite", v2h_share=0.0), "<sim town>")
    socks = free_echonet_block(len(echonet_homes(cfg)))
    hosts = [s.getsockname()[0] for s in socks]
    for s in socks:  # verified free a moment ago; `vpp sim` binds them itself
        s.close()
    cfg = with_free_ports(with_echonet_hosts(cfg, hosts))
    path = tmp_path / "town.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    rc = main(["sim", "--config", str(path), "--speed", "60", "--interval", "0.3", "--duration", "0.5"])
    out = capsys.readouterr().out
    assert rc == 0 and "simulator stopped" in out
    assert f"{hosts[0]}:3610" in out and "EOJ 027D01" in out and "EOJ 028801" in out


@pytest.mark.timeout(300)
def test_town_day_plans_and_dispatches_every_echonet_home():
    sc = read_scenario("town-day")
    sc = sc.model_copy(update={"town": sc.town.model_copy(update={"homes": 12, "protocol": "echonet_lite"})})
    r = asyncio.run(run_scenario(sc, hours=1.5))
    rec = r.record
    assert len(r.batteries) == 13  # the homes' ECHONET batteries and the centre's Modbus one
    src = rec[[f"source:{b}" for b in r.batteries]]
    assert (src == "plan").all().all()  # every home follows the fleet plan from the first step
    sp = rec[[f"setpoint:{b}" for b in r.batteries]].iloc[10]
    assert sp.nunique() >= 3
    assert r.kpis["reserve_violations"] == 0 and r.kpis["points_lost"] == 0
    assert r.kpis["inputs_stale_minutes"] == 0
