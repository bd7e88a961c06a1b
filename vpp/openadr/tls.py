"""The VEN's HTTP session towards the VTN: TLS from the site's config.

openleadr builds its own TLS context only when a client certificate is set and then always
loads a CA file (``TypeError`` without one), and never checks the server with the system CAs
otherwise. We hand the client a session made here instead:

* ``https`` URL: the server is verified against ``ca_file`` (a private OpenADR PKI) or, when
  none is given, the system's CAs; hostname checked; the client certificate and key, when
  set, are presented (mutual TLS, as OpenADR 2.0b requires);
* ``http`` URL: plain HTTP (test VTNs only); ``cert``/``key`` then only sign messages.

Message signatures are openleadr's: with ``vtn_fingerprint`` set, every message from the VTN
must be signed by the certificate with that fingerprint (unsigned or forged ones are dropped).
"""
from __future__ import annotations

import ssl
from typing import Any

#: openleadr's own timeouts and content type
_HEADERS = {"content-type": "application/xml"}


def client_context(ca_file: str | None, cert: str | None, key: str | None,
                   passphrase: str | None = None) -> ssl.SSLContext:
    """A TLS client context: server verified against ``ca_file`` (None: the system CAs),
    hostname checked, and the client certificate ``cert``/``key`` when given."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key, passphrase)
    return ctx


def client_session(vtn_url: str, ca_file: str | None = None, cert: str | None = None,
                   key: str | None = None, passphrase: str | None = None) -> Any:
    """An ``aiohttp.ClientSession`` for ``vtn_url`` (call inside the running event loop)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(sock_connect=5, sock_read=10)
    if vtn_url.lower().startswith("https://"):
        connector = aiohttp.TCPConnector(ssl=client_context(ca_file, cert, key, passphrase))
        return aiohttp.ClientSession(connector=connector, headers=_HEADERS, timeout=timeout)
    return aiohttp.ClientSession(headers=_HEADERS, timeout=timeout)
