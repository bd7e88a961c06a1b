"""``vpp demo`` as a subprocess: it prints the dashboard URL and an operator key, serves
``/api/v1/status`` with that key, and exits 0 on SIGINT."""
from __future__ import annotations

import os
import re
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_demo_serves_status_and_stops_on_sigint(tmp_path):
    cmd = [sys.executable, "-m", "vpp.cli", "demo", "--config", "deploy/examples/community-centre.yaml",
           "--port", "0", "--data-dir", str(tmp_path / "demo"), "--speed", "60"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out: list[str] = []
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        url = key = None
        deadline = time.monotonic() + 40
        while (url is None or key is None) and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, "".join(out)
                continue
            out.append(line)
            if m := re.match(r"dashboard: (\S+)", line):
                url = m.group(1)
            if m := re.match(r"operator key: (\S+)", line):
                key = m.group(1)
        assert url and key, "".join(out)
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get("api/v1/status").status_code == 401
            for _ in range(50):
                st = c.get("api/v1/status", headers={"X-API-Key": key})
                assert st.status_code == 200, st.text
                b = st.json()  # every device read once: the battery and the grid meter
                if b["battery"]["soc_pct"] is not None and b["grid"]["state"] != "unknown":
                    break
                time.sleep(0.2)
            body = st.json()
            assert body["site"] == "izumi-community-centre"
            assert 0 <= body["battery"]["soc_pct"] <= 100 and body["grid"]["state"] == "connected"
            assert c.get("").status_code == 200 and "ダッシュボード" in c.get("").text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, "".join(out)
        time.sleep(0.2)  # the reader thread drains the pipe
        while not lines.empty():
            out.append(lines.get())
        assert "stopped" in "".join(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
