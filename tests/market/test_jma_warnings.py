from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vpp.config import JmaConfig
from vpp.market.jma import (
    JmaFormatError,
    active_codes,
    fetch_warning_doc,
    is_active,
    parse_warnings,
    read_warning_doc,
    should_raise_reserve,
)

DATA = Path(__file__).parent / "data"
ISSUED = read_warning_doc(DATA / "jma_040000_heavy_rain_issued.json")
LIFTED = read_warning_doc(DATA / "jma_040000_heavy_rain_lifted.json")
SENDAI = "0410000"


def test_active_codes_per_area():
    assert active_codes(ISSUED, [SENDAI]) == {"03", "14", "18"}
    assert active_codes(ISSUED, ["040010"]) == {"03", "05", "14", "18"}
    assert active_codes(ISSUED, ["0421500"]) == {"03", "14"}  # 注意報から警報 is in force
    assert active_codes(ISSUED, ["0421100"]) == set()  # 発表警報・注意報はなし
    assert active_codes(LIFTED, [SENDAI]) == set()
    assert active_codes(LIFTED, ["0420700"]) == set()  # 03 downgraded: 警報から注意報
    assert active_codes(LIFTED, ["040000"]) == {"05", "07", "10"}  # office code = whole document


def test_statuses():
    assert is_active("03", "発表") and is_active("03", "継続") and is_active("03", "注意報から警報")
    assert not is_active("03", "解除") and not is_active("03", "警報から注意報")
    assert is_active("10", "警報から注意報")  # the advisory itself is in force


def test_heavy_rain_warning_in_sendai_raises_the_reserve_and_lifting_clears_it():
    cfg = JmaConfig(enabled=True, area_code=SENDAI)
    up, reason = should_raise_reserve(ISSUED, cfg)
    assert up and "大雨警報 (03)" in reason and SENDAI in reason and "2026-09-18T16:27:00+09:00" in reason
    down, reason = should_raise_reserve(LIFTED, cfg)
    assert not down and "no reserve-raising warning" in reason


def test_area_filter_and_configured_codes():
    # 気仙沼市 still has 暴風警報 (05): a prefecture-wide config keeps the reserve up.
    assert should_raise_reserve(LIFTED, JmaConfig(enabled=True, area_code="040000"))[0]
    assert not should_raise_reserve(ISSUED, JmaConfig(enabled=True, area_code=SENDAI, raise_codes=["05"]))[0]
    assert should_raise_reserve(ISSUED, JmaConfig(enabled=True, area_code=SENDAI, raise_codes=["14"]))[0]
    assert should_raise_reserve(ISSUED, JmaConfig(enabled=False, area_code=SENDAI)) == (
        False, "JMA trigger disabled in config")


def test_malformed_document():
    with pytest.raises(JmaFormatError):
        parse_warnings({"areaTypes": [{"no_areas": []}]})
    with pytest.raises(JmaFormatError):
        parse_warnings([])


def test_fetch_from_a_loopback_server():
    body = json.dumps(ISSUED, ensure_ascii=False).encode()
    paths = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/bosai/warning/data/warning/040000.json"
        doc = fetch_warning_doc(JmaConfig(enabled=True, area_code=SENDAI, url=url, allow_http=True), timeout_s=5)
    finally:
        srv.shutdown()
        srv.server_close()
    assert paths == ["/bosai/warning/data/warning/040000.json"]
    assert should_raise_reserve(doc, JmaConfig(enabled=True, area_code=SENDAI))[0]
