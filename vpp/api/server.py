"""Listening sockets for uvicorn: :func:`vpp.http_socket.bind_socket` (re-exported here)."""
from vpp.http_socket import bind_socket

__all__ = ["bind_socket"]
