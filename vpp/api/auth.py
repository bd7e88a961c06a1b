"""API keys: scrypt-hashed at rest, one role each.

Key format ``vpp_<id>_<secret>``: ``id`` (8 hex chars) finds the entry without revealing
anything, ``secret`` (32 random bytes, urlsafe base64) is what the hash protects. The key
file (``config.api.keys_path``) is JSON, written atomically with mode 0600::

    {"version": 1, "keys": [{"id", "name", "role", "created", "kdf": "scrypt",
                             "n", "r", "p", "salt", "hash"}]}

Roles: ``operator`` (runs the site: offers, exports), ``aggregator`` (awards, dispatches),
``viewer`` (read only).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Role = Literal["operator", "aggregator", "viewer"]
ROLES: tuple[Role, ...] = ("operator", "aggregator", "viewer")

_N, _R, _P = 2**14, 8, 1
_DUMMY_SALT = b"\0" * 16


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    name: str
    role: Role


def _kdf(secret: str, salt: bytes, n: int = _N, r: int = _R, p: int = _P) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def read_keys(path: str | Path) -> list[dict]:
    """Entries of a key file (empty when the file does not exist)."""
    p = Path(path)
    if not p.exists():
        return []
    doc = json.loads(p.read_text(encoding="utf-8"))
    return list(doc.get("keys", []))


def create_key(path: str | Path, role: str, name: str) -> tuple[str, Principal]:
    """Add a key to the file and return ``(plaintext_key, principal)``; the plaintext is not stored."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not name.strip():
        raise ValueError("a key needs a name")
    p = Path(path)
    entries = read_keys(p)
    if any(e["name"] == name for e in entries):
        # the name is the actor recorded in the ledger and scopes idempotency keys
        raise ValueError(f"a key named {name!r} already exists")
    used = {e["id"] for e in entries}
    key_id = secrets.token_hex(4)
    while key_id in used:
        key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    entries.append({"id": key_id, "name": name, "role": role, "created": datetime.now(UTC).isoformat(),
                    "kdf": "scrypt", "n": _N, "r": _R, "p": _P, "salt": _b64(salt),
                    "hash": _b64(_kdf(secret, salt))})
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"version": 1, "keys": entries}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return f"vpp_{key_id}_{secret}", Principal(key_id, name, role)  # type: ignore[arg-type]


def count_keys(path: str | Path) -> int:
    return len(read_keys(path))


class KeyStore:
    """Verifies presented keys against the key file, reloading it when it changes.

    Successful verifications are remembered in memory (by SHA-256 of the key) so scrypt runs
    once per key and process, not per request.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._entries: dict[str, dict] = {}
        self._verified: dict[bytes, Principal] = {}

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime:
            self._entries = {e["id"]: e for e in read_keys(self.path)}
            self._verified.clear()
            self._mtime = mtime

    def cached(self, presented: str) -> Principal | None:
        """The principal if this key was already verified (no scrypt), else None."""
        with self._lock:
            self._refresh()
            return self._verified.get(hashlib.sha256(presented.encode()).digest())

    def verify(self, presented: str) -> Principal | None:
        """The principal for a valid key, else None (constant-time hash comparison)."""
        with self._lock:
            self._refresh()
            digest = hashlib.sha256(presented.encode()).digest()
            hit = self._verified.get(digest)
            if hit is not None:
                return hit
            parts = presented.split("_", 2)
            entry = self._entries.get(parts[1]) if len(parts) == 3 and parts[0] == "vpp" else None
            if entry is None:
                _kdf(presented, _DUMMY_SALT)  # same work as a real check: no timing hint on ids
                return None
            expected = base64.b64decode(entry["hash"])
            got = _kdf(parts[2], base64.b64decode(entry["salt"]), entry["n"], entry["r"], entry["p"])
            if not hmac.compare_digest(expected, got):
                return None
            principal = Principal(entry["id"], entry["name"], entry["role"])
            self._verified[digest] = principal
            return principal
