"""Run a private InfluxDB 1.x (Debian ``/usr/bin/influxd``) for tests, benchmarks and demos.

The generated config binds every listener to free 127.0.0.1 ports, keeps meta/data/wal in
the given directory, disables reporting, monitoring, CQs, retention and all other services.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

INFLUXD = "/usr/bin/influxd"


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class InfluxServer:
    """One ``influxd`` process with its own data dir and loopback-only listeners.

    ``stop()`` / ``start()`` restart it on the same port and data dir (an outage).
    """

    def __init__(self, root: Path, *, auth: bool = False):
        if not os.access(INFLUXD, os.X_OK):
            raise RuntimeError(f"{INFLUXD} not found: install the Debian 'influxdb' package (make sysdeps)")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = auth
        self.proc: subprocess.Popen | None = None
        self.config_path = root / "influxdb.conf"
        self.config_path.write_text(self._config())

    def _config(self) -> str:
        r = self.root
        return f"""
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{r}/meta"
  logging-enabled = false
[data]
  dir = "{r}/data"
  wal-dir = "{r}/wal"
  query-log-enabled = false
  index-version = "inmem"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  pprof-enabled = false
  max-body-size = 0
[ifql]
  enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[logging]
  level = "warn"
"""

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.log = open(self.root / "influxd.log", "ab")
        self.proc = subprocess.Popen([INFLUXD, "run", "-config", str(self.config_path)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.proc.returncode}: "
                                   f"{(self.root / 'influxd.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"influxd did not answer /ping within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def query(self, q: str, db: str | None = None, auth: tuple[str, str] | None = None) -> dict:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        r = httpx.post(f"{self.url}/query", params=params, auth=auth, timeout=10)
        r.raise_for_status()
        return r.json()


def start_influxd(root: Path, *, auth: bool = False) -> InfluxServer:
    srv = InfluxServer(root, auth=auth)
    srv.start()
    return srv
