"""Driver-side config models: frozen, re-exported by vpp.config, changed only through copies."""
from __future__ import annotations

import pydantic
import pytest

import drivers.config as dc
import vpp.config as vc
from vpp.config import ConfigError, parse_config


def _battery(**ratings) -> dc.Device:
    return dc.Device(id="bat1", kind="battery", register_map="sunspec_storage",
                     connection={"host": "127.0.0.1", "port": 15020},
                     ratings={"capacity_wh": 10_000, "max_charge_w": 5000,
                              "max_discharge_w": 5000, **ratings})


def test_vpp_config_re_exports_the_same_classes():
    for name in ("Device", "Ratings", "TcpConnection", "RtuConnection"):
        assert getattr(vc, name) is getattr(dc, name)


@pytest.mark.parametrize("target, field, value", [
    ("device", "timeout_s", 0.5), ("connection", "port", 1502), ("ratings", "soc_min", 0.2)])
def test_models_are_frozen(target, field, value):
    d = _battery()
    obj = {"device": d, "connection": d.connection, "ratings": d.ratings}[target]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        setattr(obj, field, value)


def test_copies_rebuild_the_chain_and_leave_the_original():
    d = _battery()
    moved = d.with_connection(port=1502)
    tighter = d.with_ratings(soc_min=0.2)
    assert (moved.connection.port, moved.connection.host, moved.ratings) == (1502, "127.0.0.1", d.ratings)
    assert (tighter.ratings.soc_min, tighter.ratings.capacity_wh) == (0.2, 10_000)
    assert (d.connection.port, d.ratings.soc_min) == (15020, 0.05)


def test_connection_without_type_is_tcp_and_errors_keep_the_field_path():
    assert isinstance(_battery().connection, dc.TcpConnection)
    with pytest.raises(pydantic.ValidationError, match="soc_min must be below"):
        _battery(soc_min=0.9, soc_max=0.5)
    data = {"site": {"name": "s", "latitude": 38.3, "longitude": 141.0},
            "grid": {"import_limit_w": 1e4, "export_limit_w": 0},
            "tariff": {"periods": [{"name": "all", "start": "00:00", "end": "00:00",
                                    "buy_per_kwh": 30}]},
            "devices": [{"id": "m", "kind": "meter", "register_map": "sdm630",
                         "connection": {"type": "rtu", "port": "/dev/ttyUSB0", "device_id": 0}}]}
    with pytest.raises(ConfigError, match=r"devices\.0\.connection\.rtu\.device_id"):
        parse_config(data)
