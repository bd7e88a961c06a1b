"""Per-town plan requests (arrays only), the offers' aggregation into market lots and
``vpp town generate --towns N`` (no cluster here: pure functions and the CLI)."""
from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import yaml

from simulators.scale import scale_configs, scale_requests
from simulators.town import generate_towns, town_config
from vpp.central.fanout import aggregate_bids
from vpp.central.townplan import TownPlan, plan_town, town_request
from vpp.cli import main as cli

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)
T0 = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)


def offer_plan(town: str, up, down, start=T0, violations=()) -> TownPlan:
    up, down = np.asarray(up, float), np.asarray(down, float)
    z = np.zeros((1, 2 * up.size))
    return TownPlan(town=town, start=start, slot_s=900, battery_ids=("b",), battery_w=z, soc=z,
                    feeder_import_w=z[0], feeder_export_w=z[0], offer_up_w=up, offer_down_w=down, offer_slot_s=1800,
                    cost=0.0, violations=list(violations), warnings=[], timings={}, worker_pid=0)


def test_offers_are_summed_per_slot_and_rounded_down_to_whole_lots():
    a = offer_plan("a", [600e3, 300e3, 0.0], [0.0, 900e3, 2.5e6])
    b = offer_plan("b", [700e3, 600e3, 0.0], [0.0, 200e3, 0.0])
    bid = aggregate_bids([a, b], lot_w=1e6)
    np.testing.assert_allclose(bid.up_w, [1e6, 0.0, 0.0])
    np.testing.assert_allclose(bid.down_w, [0.0, 1e6, 2e6])
    assert list(bid.lots_up) == [1, 0, 0] and list(bid.lots_down) == [0, 1, 2]
    np.testing.assert_allclose(bid.left_up_w, [300e3, 900e3, 0.0])
    # each town's share is pro rata, never more than it offered, and the shares make the lots
    for t, p in (("a", a), ("b", b)):
        up, down = bid.by_town[t]
        assert np.all(up <= p.offer_up_w + 1e-9) and np.all(down <= p.offer_down_w + 1e-9)
    np.testing.assert_allclose(sum(u for u, _ in bid.by_town.values()), bid.up_w)
    np.testing.assert_allclose(bid.by_town["a"][0][0], 1e6 * 600 / 1300)


def test_towns_are_aligned_by_slot_start_and_a_plan_with_violations_offers_nothing():
    a = offer_plan("a", [1e6, 1e6], [0, 0])
    b = offer_plan("b", [1e6, 1e6], [0, 0], start=T0 + timedelta(minutes=30))
    bad = offer_plan("c", [5e6, 5e6], [0, 0], violations=["home h001 over its meter limit"])
    bid = aggregate_bids([a, b, bad], lot_w=1e6)
    assert bid.slot_start == [T0 + timedelta(minutes=30 * k) for k in range(3)]
    np.testing.assert_allclose(bid.up_w, [1e6, 2e6, 1e6])
    assert "c" not in bid.by_town
    assert aggregate_bids([bad]) is None
    with pytest.raises(ValueError, match="lot_w"):
        aggregate_bids([a], lot_w=0)


def test_a_town_request_is_arrays_only_and_plans_every_home_above_its_floor():
    cfg = town_config(40, 3)
    req = town_request(cfg, NOW)
    assert req.n_homes == 41  # 40 homes + the centre
    assert len(pickle.dumps(req)) < 20_000 + req.nbytes()  # numbers, not a pickled site config
    assert not any(hasattr(v, "model_dump") for v in vars(req).values())
    plan = plan_town(req)
    assert plan.battery_w.shape == (41, req.n) and plan.validated
    assert np.all(plan.soc >= np.asarray(req.floor)[:, None] - 1e-6)
    # same request, same plan (any worker gives the one answer)
    np.testing.assert_array_equal(plan_town(req).battery_w, plan.battery_w)


def test_scale_configs_are_distinct_towns():
    cfgs = scale_configs(3, 10)
    assert [c.site.name for c in cfgs] == ["izumi-new-town-01", "izumi-new-town-02", "izumi-new-town-03"]
    reqs = scale_requests(cfgs, NOW)
    assert [r.town for r in reqs] == [c.site.name for c in cfgs] and all(r.market is not None for r in reqs)
    assert not np.array_equal(reqs[0].array_kwp, reqs[1].array_kwp)  # own seed per town


def test_vpp_town_generate_writes_one_valid_config_per_town(tmp_path, capsys):
    assert cli(["town", "generate", "--towns", "3", "--homes", "4", "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("*.yaml"))
    assert [f.name for f in files] == [f"izumi-new-town-{k:02d}.yaml" for k in (1, 2, 3)]
    ports = [{d["connection"]["port"] for d in yaml.safe_load(f.read_text())["devices"]} for f in files]
    assert not (ports[0] & ports[1]) and not (ports[1] & ports[2])  # own simulator ports per town
    assert cli(["town", "generate", "--towns", "2", "--homes", "4"]) == 2
    assert "--out DIR" in capsys.readouterr().err
    assert cli(["town", "generate", "--towns", "0", "--homes", "4", "--out", str(tmp_path)]) == 2
    with pytest.raises(ValueError, match="n_towns"):
        generate_towns(0, 4)


def test_requests_and_plans_travel_as_npz_without_pickle():
    from vpp.central.wire import WireError, decode_plan, decode_request, encode_plan, encode_request

    req = scale_requests(scale_configs(1, 6, horizon_h=6), NOW)[0]
    data = encode_request(req)
    back = decode_request(data)
    assert back.town == req.town and back.start == req.start and back.battery_ids == req.battery_ids
    assert back.options == req.options and back.market.capacity_up == req.market.capacity_up
    plan = plan_town(back)
    np.testing.assert_array_equal(plan.battery_w, plan_town(req).battery_w)  # the same plan either side
    p2 = decode_plan(encode_plan(plan))
    np.testing.assert_array_equal(p2.soc, plan.soc)
    assert p2.town == plan.town and p2.violations == plan.violations and p2.timings == plan.timings
    with pytest.raises(WireError, match="not a town-request"):
        decode_request(b"garbage")
    with pytest.raises(WireError, match="kind"):
        decode_request(encode_plan(plan))
    import dataclasses
    with pytest.raises(WireError, match="soc0: shape"):
        decode_request(encode_request(dataclasses.replace(req, soc0=req.soc0[:-1])))
