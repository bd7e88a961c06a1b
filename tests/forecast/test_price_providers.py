"""Price providers: TOU and JEPX through one interface; bill parts per kWh; forecast days;
the optimiser plans on the site's area price."""
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import optimizer
from tests.testkit.jepx_files import spot_csv
from tests.testkit.sites import make_site
from vpp.config import ConfigError, read_config
from vpp.control.problem import build_problem, problem_horizon, slot_times
from vpp.control.reserve import battery_floors
from vpp.forecast.prices import JepxProvider, TouProvider, price_provider
from vpp.forecast.site import forecast_site
from vpp.forecast.tariff import expand_tariff


def index(day: str, n: int = 48, slot_s: int = 1800) -> pd.DatetimeIndex:
    start = pd.Timestamp(f"{day} 00:00", tz="Asia/Tokyo").tz_convert("UTC")
    return pd.date_range(start, periods=n, freq=f"{slot_s}s")


BILL = {"fuel_adjustment": [{"since": "2026-05-01", "per_kwh": -1.5}, {"since": "2026-06-01", "per_kwh": 2.0}],
        "renewable_levy": [{"since": "2026-05-01", "per_kwh": 3.98}]}


def test_tou_provider_adds_dated_bill_parts_per_kwh_bought():
    cfg = make_site("shelter", bill={**BILL, "sell_scheme": "fit",
                                     "sell_versions": [{"since": "2026-01-01", "per_kwh": 16.0}]})
    prov = price_provider(cfg)
    assert isinstance(prov, TouProvider)
    idx = index("2026-05-31", 96)  # the fuel adjustment changes at local midnight of June 1
    got = prov.energy(idx)
    tou = expand_tariff(cfg.tariff, idx)["buy_per_kwh"].to_numpy()
    assert np.allclose(got["buy_per_kwh"].to_numpy()[:48], tou[:48] - 1.5 + 3.98)
    assert np.allclose(got["buy_per_kwh"].to_numpy()[48:], tou[48:] + 2.0 + 3.98)
    assert (got["sell_per_kwh"] == 16.0).all() and got["spot_per_kwh"].isna().all()
    assert got.attrs["version"] == "tou:1"


def _jepx_site(tmp_path: Path, data: bytes, **bill):
    f = tmp_path / "spot.csv"
    f.write_bytes(data)
    return make_site("shelter", prices={"source": "jepx", "spot_csv": str(f), "area": "東北",
                                        "buy_adder_per_kwh": 12.0}, bill={**BILL, **bill})


def test_jepx_provider_buys_at_area_price_plus_adders_and_sells_fip(tmp_path):
    prices = [np.linspace(5, 28.5, 48), np.linspace(6, 29.5, 48)]
    cfg = _jepx_site(tmp_path, spot_csv(date(2026, 6, 1), 2, area_prices=prices),
                     sell_scheme="fip", sell_versions=[{"since": "2026-04-01", "per_kwh": 3.0}])
    prov = price_provider(cfg)
    assert isinstance(prov, JepxProvider) and prov.version.startswith("jepx:東北:spot.csv:")
    got = prov.energy(index("2026-06-02", 96, 900))  # 15-min planning slots: each コマ twice
    spot = np.repeat(prices[1], 2)
    assert np.allclose(got["buy_per_kwh"].to_numpy()[:96], spot + 12.0 + 2.0 + 3.98)
    assert np.allclose(got["sell_per_kwh"].to_numpy()[:96], spot + 3.0)
    assert set(got["price_source"]) == {"jepx"}


def test_unpublished_days_are_forecast_from_the_latest_same_weekday_and_say_so(tmp_path):
    prices = [np.full(48, 10.0 + i) for i in range(14)]  # 2026-06-01 (Mon) .. 06-14
    cfg = _jepx_site(tmp_path, spot_csv(date(2026, 6, 1), 14, area_prices=prices))
    got = price_provider(cfg).energy(index("2026-06-22", 48))  # a Monday, not published
    assert set(got["price_source"]) == {"forecast 2026-06-08"}
    assert np.allclose(got["spot_per_kwh"], 17.0)
    before = price_provider(cfg).energy(index("2026-05-27", 48))  # a Wednesday before the file
    assert set(before["price_source"]) == {"forecast 2026-06-03"}


def test_bad_spot_file_fails_when_the_provider_is_made(tmp_path):
    bad = spot_csv(date(2026, 6, 1), 1).replace("エリアプライス東北".encode("cp932"), b"X")
    cfg = _jepx_site(tmp_path, bad)
    with pytest.raises(ValueError, match="エリアプライス東北"):
        price_provider(cfg)


def test_spot_file_named_beside_the_config_and_config_errors(tmp_path):
    (tmp_path / "spot.csv").write_bytes(spot_csv(date(2026, 6, 1), 1))
    raw = yaml.safe_load((Path(__file__).parents[1] / "data/sites/shelter.yaml").read_text())
    raw["prices"] = {"source": "jepx", "spot_csv": "spot.csv"}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    cfg = read_config(tmp_path / "site.yaml")
    assert cfg.prices.spot_csv == str(tmp_path / "spot.csv")
    raw["prices"] = {"source": "jepx"}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match="prices: .*spot_csv is required"):
        read_config(tmp_path / "site.yaml")
    raw["prices"] = {"source": "tou"}
    raw["bill"] = {"sell_scheme": "fip", "sell_versions": [{"since": "2026-01-01", "per_kwh": 3}]}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match="fip .*needs prices.source jepx"):
        read_config(tmp_path / "site.yaml")


def test_optimiser_discharges_at_the_tohoku_price_peak_not_tokyos(tmp_path):
    # 東北 peaks at コマ 37 (18:00); every other area is offset from 東北 in the fixture, so
    # put 東京's own peak elsewhere by rewriting its column
    tohoku = np.full(48, 10.0)
    tohoku[36:38] = 60.0
    text = spot_csv(date(2026, 6, 1), 1, area_prices=[tohoku]).decode("cp932").split("\r\n")
    for i in range(1, 49):
        cells = text[i].split(",")
        cells[8] = "80.00" if i in (5, 6) else "10.00"  # 東京 peaks at 02:00
        text[i] = ",".join(cells)
    fip = {"sell_scheme": "fip", "sell_versions": [{"since": "2026-04-01", "per_kwh": 1.0}]}
    cfg = _jepx_site(tmp_path, "\r\n".join(text).encode("cp932"), **fip)
    now = datetime(2026, 5, 31, 15, 0, tzinfo=timezone.utc)  # 00:00 JST June 1

    def plan(c):
        fc, _ = forecast_site(c, now)
        h = problem_horizon(c, fc, now)
        problem = build_problem(c, fc, {"bat1": 0.9}, battery_floors(c, slot_times(h), None), start=now)
        return fc, problem, optimizer.solve(problem)

    fc, problem, sched = plan(cfg)
    assert fc.price_version.startswith("jepx:東北:")
    assert np.allclose(problem.prices.buy[:48], tohoku + 12.0 + 2.0 + 3.98)
    _, _, tokyo = plan(make_site("shelter", prices={**cfg.prices.model_dump(), "area": "東京"}, bill={**BILL, **fip}))
    tb, bat = tokyo.battery_w["bat1"], sched.battery_w["bat1"]
    # the same site on Tokyo's prices moves the discharge from 18:00 JST to 02:00 JST
    assert bat[36:38].min() == pytest.approx(5000) and tb[36:38].max() < 4000
    assert tb[4:6].min() == pytest.approx(5000) and bat[4:6].max() < 4000
