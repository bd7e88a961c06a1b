"""Listening sockets for uvicorn (the runtime and `vpp run` serve the API on them).

Pass sockets from :func:`bind_socket` to ``uvicorn.Server.serve(sockets=[...])``: a socket
created by hand and handed to uvicorn does not get ``TCP_NODELAY`` on its connections, and
every keep-alive response then waits ~40 ms for the client's delayed ACK (Nagle). Set on the
listening socket, Linux passes the option on to accepted connections.
"""
from __future__ import annotations

import socket


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound TCP socket (``port=0``: a free port) with ``TCP_NODELAY`` and ``SO_REUSEADDR``."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock
