"""JEPX spot and imbalance price files: both header variants, the real layouts, bad input."""
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.testkit.jepx_files import daily_shape, imbalance_csv, spot_csv
from vpp.forecast.prices import PriceFileError, parse_imbalance_csv, parse_jepx_spot, read_imbalance_csv, read_jepx_spot

DATA = Path(__file__).parents[1] / "data" / "prices"


def local(ts: str) -> pd.Timestamp:
    return pd.Timestamp(ts, tz="Asia/Tokyo").tz_convert("UTC")


@pytest.mark.parametrize("name,first,days", [("spot_summary_2026_sample.csv", date(2026, 6, 1), 3),
                                             ("spot_summary_2016_sample.csv", date(2016, 6, 1), 2)])
def test_both_header_variants_parse_the_tohoku_column(name, first, days):
    df = read_jepx_spot(DATA / name, "東北")
    assert len(df) == 48 * days
    assert df.index[0] == local(f"{first} 00:00") and df.index[-1] == local(f"{first.replace(day=days)} 23:30")
    # the fixture's 東北 column is the daily shape; 東京 is 1.5 above it, 九州 0.4 below
    seed = 0 if first.year == 2026 else 3
    assert np.allclose(df["area"].to_numpy()[:48], daily_shape(first, seed), atol=0.006)
    tokyo = read_jepx_spot(DATA / name, "東京")
    assert np.allclose(tokyo["area"] - df["area"], 1.5, atol=0.011)


def test_koma_code_is_the_local_half_hour_starting_at_midnight():
    prices = np.tile(np.arange(1, 49, dtype=float), (1, 1))
    df = parse_jepx_spot(spot_csv(date(2026, 6, 1), 1, area_prices=prices), "東北")
    assert df.loc[local("2026-06-01 00:00"), "area"] == 1.0
    assert df.loc[local("2026-06-01 09:30"), "area"] == 20.0  # コマ 20
    assert df.loc[local("2026-06-01 23:30"), "area"] == 48.0


def _lines(data: bytes) -> list[str]:
    return data.decode("cp932").split("\r\n")


def _bytes(lines: list[str]) -> bytes:
    return "\r\n".join(lines).encode("cp932")


def test_wrong_encoding_is_refused():
    utf8 = spot_csv(date(2026, 6, 1), 1).decode("cp932").encode("utf-8")
    with pytest.raises(PriceFileError, match="cp932|受渡日"):
        parse_jepx_spot(utf8, "東北")
    with pytest.raises(PriceFileError, match="BOM"):
        parse_jepx_spot(b"\xef\xbb\xbf" + utf8, "東北")


def test_missing_area_column_names_it():
    lines = _lines(spot_csv(date(2026, 6, 1), 1))
    lines[0] = lines[0].replace("エリアプライス東北", "エリアプライス東ほく")
    with pytest.raises(PriceFileError, match="row 1.*エリアプライス東北"):
        parse_jepx_spot(_bytes(lines), "東北")


def test_duplicated_koma_names_the_row():
    lines = _lines(spot_csv(date(2026, 6, 1), 1))
    lines[11] = lines[10]  # row 12 repeats コマ 10 (row 11)
    with pytest.raises(PriceFileError, match=r"row 12.*duplicate コマ 10 of 2026-06-01 \(first on row 11\)"):
        parse_jepx_spot(_bytes(lines), "東北")


@pytest.mark.parametrize("drop,add", [(2, 0), (0, 2)])
def test_a_day_of_46_or_50_koma_is_refused(drop, add):
    lines = [x for x in _lines(spot_csv(date(2026, 6, 1), 1)) if x]
    if drop:
        del lines[5:5 + drop]  # コマ 5, 6 missing: 46
        with pytest.raises(PriceFileError, match="2026-06-01 has 46 コマ, needs 48 \\(missing 5, 6\\)"):
            parse_jepx_spot(_bytes(lines), "東北")
    else:
        extra = [lines[-1].replace(",48,", ",49,", 1), lines[-1].replace(",48,", ",50,", 1)]
        with pytest.raises(PriceFileError, match="row 50.*コマ 49 outside 1..48"):
            parse_jepx_spot(_bytes(lines + extra), "東北")


@pytest.mark.parametrize("value,why", [("-3.00", "negative price"), ("12000.00", "implausible price"),
                                       ("abc", "not a price"), ("nan", "not finite")])
def test_bad_prices_name_row_and_field(value, why):
    lines = _lines(spot_csv(date(2026, 6, 1), 1))
    cells = lines[20].split(",")
    cells[7] = value  # エリアプライス東北
    lines[20] = ",".join(cells)
    with pytest.raises(PriceFileError, match=f"row 21, field エリアプライス東北.*{why}"):
        parse_jepx_spot(_bytes(lines), "東北")


def test_imbalance_file_parses_surplus_and_shortage_of_the_area():
    imb = read_imbalance_csv(DATA / "imbalance_2026_06_sample.csv", "東北")
    assert len(imb.frame) == 96 and "2026年06月分" in imb.title
    base = daily_shape(date(2026, 6, 1), 7)
    assert np.allclose(imb.frame["surplus"].to_numpy()[:48], np.maximum(base - 1.0, 0.01), atol=0.006)
    assert np.allclose(imb.frame["shortage"].to_numpy()[:48], base + 2.0, atol=0.006)


def test_imbalance_settlement_long_at_surplus_short_at_shortage():
    sur = [[10.0] * 48]
    sho = [[30.0] * 48]
    imb = parse_imbalance_csv(imbalance_csv(date(2026, 6, 1), 1, sur, sho), "東北")
    money = imb.settle(np.array([2.0, -1.5, 0.0]), imb.frame.index[:3])
    assert money.tolist() == [20.0, -45.0, 0.0]


@pytest.mark.parametrize("mutate,match", [
    (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "row 2.*before the titles"),
    (lambda ls: [ls[0], ls[1].replace("東北エリア余剰", "東北エリアX"), *ls[2:]], "row 2.*東北余剰"),
    (lambda ls: [*ls[:5], "X,1,2", *ls[5:]], "row 6.*unknown record type"),
    (lambda ls: [*ls[:5], ls[4], *ls[5:]], "row 6.*duplicate コマ 3"),
    (lambda ls: [*ls[:5], *ls[6:]], "has 47 コマ"),
])
def test_imbalance_bad_input(mutate, match):
    lines = _lines(imbalance_csv(date(2026, 6, 1), 1))
    with pytest.raises(PriceFileError, match=match):
        parse_imbalance_csv(_bytes(mutate(lines)), "東北")
