"""API keys: scrypt-hashed at rest, one role each.

Key format ``vpp_<id>_<secret>``: ``id`` (8 hex chars) finds the entry without revealing
anything, ``secret`` (32 random bytes, urlsafe base64) is what the hash protects. The key
file (``config.api.keys_path``) is JSON, written atomically with mode 0600::

    {"version": 1, "keys": [{"id", "name", "role", "created", "kdf": "scrypt",
                             "n", "r", "p", "salt", "hash", "expires"?, "revoked"?}]}

``expires`` / ``revoked`` (ISO timestamps, optional): a key past its expiry or revoked is
refused; revocation also ends the key's open event streams (the key file is re-read at most
every :data:`REFRESH_S`).

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
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

Role = Literal["operator", "aggregator", "viewer"]
ROLES: tuple[Role, ...] = ("operator", "aggregator", "viewer")

_N, _R, _P = 2**14, 8, 1
_DUMMY_SALT = b"\0" * 16


#: the key file is stat'ed at most this often [s] (revocation takes effect within it)
REFRESH_S = 1.0
#: verified keys remembered (least recently used dropped first)
CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    name: str
    role: Role
    expires: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


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


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _write_keys(p: Path, entries: list[dict]) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"version": 1, "keys": entries}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def create_key(path: str | Path, role: str, name: str,
               expires_in: timedelta | None = None) -> tuple[str, Principal]:
    """Add a key to the file and return ``(plaintext_key, principal)``; the plaintext is not
    stored. ``expires_in``: the key is refused that long after now (None: never expires)."""
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
    now = datetime.now(UTC)
    expires = now + expires_in if expires_in is not None else None
    entry = {"id": key_id, "name": name, "role": role, "created": now.isoformat(),
             "kdf": "scrypt", "n": _N, "r": _R, "p": _P, "salt": _b64(salt),
             "hash": _b64(_kdf(secret, salt))}
    if expires is not None:
        entry["expires"] = expires.isoformat()
    entries.append(entry)
    _write_keys(p, entries)
    return f"vpp_{key_id}_{secret}", Principal(key_id, name, role, expires)  # type: ignore[arg-type]


def revoke_key(path: str | Path, key_id: str) -> dict:
    """Mark key ``key_id`` revoked (kept in the file for the record) and return its entry;
    KeyError when there is no such key. Revoking twice keeps the first time."""
    p = Path(path)
    entries = read_keys(p)
    for e in entries:
        if e["id"] == key_id:
            e.setdefault("revoked", datetime.now(UTC).isoformat())
            _write_keys(p, entries)
            return e
    raise KeyError(key_id)


def key_state(entry: dict, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if entry.get("revoked"):
        return "revoked"
    exp = _when(entry.get("expires"))
    return "expired" if exp is not None and (now or datetime.now(UTC)) >= exp else "active"


def count_keys(path: str | Path) -> int:
    return len(read_keys(path))


class KeyStore:
    """Verifies presented keys against the key file, reloading it when it changes.

    Thread-safe and cheap on the event loop: :meth:`cached` is a dictionary lookup (plus a
    ``stat`` of the key file at most every :data:`REFRESH_S`); :meth:`verify` runs scrypt
    (tens of ms) and belongs in a worker thread. No lock is ever held during key derivation:
    the lock guards only the dictionaries. Verified keys are remembered by SHA-256 of the
    presented key (at most :data:`CACHE_SIZE`, least recently used dropped); expiry is checked
    on every hit and a changed key file (new, revoked keys) empties the cache.
    """

    def __init__(self, path: str | Path, clock=lambda: datetime.now(UTC)) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._checked = -1e18
        self._entries: dict[str, dict] = {}
        self._verified: OrderedDict[bytes, Principal] = OrderedDict()

    def _refresh(self, force: bool = False) -> None:
        t = time.monotonic()
        if not force and t - self._checked < REFRESH_S:
            return
        self._checked = t
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime:
            entries = {e["id"]: e for e in read_keys(self.path)}
            with self._lock:
                self._entries = entries
                self._verified.clear()
                self._mtime = mtime

    def _usable(self, p: Principal) -> bool:
        e = self._entries.get(p.key_id)
        return e is not None and not e.get("revoked") and not p.expired(self.clock())

    def cached(self, presented: str) -> Principal | None:
        """The principal if this key was already verified and is still valid (no scrypt), else None."""
        self._refresh()
        digest = hashlib.sha256(presented.encode()).digest()
        with self._lock:
            hit = self._verified.get(digest)
            if hit is None:
                return None
            if not self._usable(hit):
                del self._verified[digest]
                return None
            self._verified.move_to_end(digest)
            return hit

    def known_id(self, presented: str) -> str | None:
        """The key id of ``presented`` when the key file has an active key with that id (no
        KDF: only the id part is looked at; the secret is not checked), else None."""
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != "vpp":
            return None
        self._refresh()
        with self._lock:
            e = self._entries.get(parts[1])
        return parts[1] if e is not None and key_state(e, self.clock()) == "active" else None

    def valid(self, principal: Principal) -> bool:
        """Whether ``principal``'s key is still in the file, not revoked and not expired
        (what an open event stream re-checks; cheap)."""
        self._refresh()
        with self._lock:
            return self._usable(principal)

    def verify(self, presented: str) -> Principal | None:
        """The principal for a valid key, else None (constant-time hash comparison). Runs
        scrypt: call it from a worker thread, never on the event loop."""
        hit = self.cached(presented)
        if hit is not None:
            return hit
        self._refresh(force=True)  # a key created a moment ago is accepted at once
        with self._lock:
            entries, mtime = self._entries, self._mtime
        parts = presented.split("_", 2)
        entry = entries.get(parts[1]) if len(parts) == 3 and parts[0] == "vpp" else None
        if entry is None:
            _kdf(presented, _DUMMY_SALT)  # same work as a real check: no timing hint on ids
            return None
        expected = base64.b64decode(entry["hash"])
        got = _kdf(parts[2], base64.b64decode(entry["salt"]), entry["n"], entry["r"], entry["p"])
        if not hmac.compare_digest(expected, got):
            return None
        principal = Principal(entry["id"], entry["name"], entry["role"], _when(entry.get("expires")))
        with self._lock:
            if not self._usable(principal):
                return None
            if self._mtime != mtime:
                return principal  # the file changed meanwhile: verified, but not remembered
            self._verified[hashlib.sha256(presented.encode()).digest()] = principal
            while len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal
