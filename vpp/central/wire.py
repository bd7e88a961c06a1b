"""Town requests and plans as bytes for the bus (no pickle on the wire).

The edge agent sends its :class:`~vpp.central.townplan.TownRequest` to the centre and
receives a :class:`~vpp.central.townplan.TownPlan`; between machines they travel as one
``.npz`` archive: every numpy array as its own member, everything else (names, times,
scalars, solver options) in a JSON member ``meta``. Decoding never unpickles
(``allow_pickle=False``) and names the bad field: :class:`WireError` (a ``ValueError``).
"""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from datetime import datetime
from typing import Any

import numpy as np

import optimizer
from vpp.central.townplan import TownPlan, TownRequest

__all__ = ["WireError", "encode_request", "decode_request", "encode_plan", "decode_plan"]

_NESTED = {"market": optimizer.MarketPrices, "options": optimizer.SolveOptions}


class WireError(ValueError):
    """A malformed request or plan (the message names the field)."""


def _encode(obj: Any, kind: str) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"kind": kind}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            arrays[f.name] = v
        elif isinstance(v, dict) and all(isinstance(x, np.ndarray) for x in v.values()):
            meta[f.name] = {"dict_of_arrays": sorted(v)}
            arrays.update({f"{f.name}.{k}": x for k, x in v.items()})
        elif f.name in _NESTED and v is not None:
            sub = {}
            for g in dataclasses.fields(v):
                x = getattr(v, g.name)
                if isinstance(x, np.ndarray):
                    arrays[f"{f.name}.{g.name}"] = x
                else:
                    sub[g.name] = x
            meta[f.name] = {"nested": sub}
        elif isinstance(v, datetime):
            meta[f.name] = {"datetime": v.isoformat()}
        elif isinstance(v, tuple):
            meta[f.name] = {"tuple": list(v)}
        else:
            meta[f.name] = v
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    return buf.getvalue()


def _decode(data: bytes, cls: type, kind: str) -> Any:
    try:
        z = np.load(io.BytesIO(data), allow_pickle=False)
        meta = json.loads(bytes(z["meta"]).decode())
        arrays = {k: z[k] for k in z.files if k != "meta"}
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise WireError(f"not a {kind}: {type(e).__name__}: {e}") from None
    if meta.get("kind") != kind:
        raise WireError(f"kind: expected {kind!r}, got {meta.get('kind')!r}")
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = f.name
        try:
            if name in arrays:
                kw[name] = arrays[name]
            elif name not in meta:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise WireError(f"{name}: missing")
            else:
                v = meta[name]
                if isinstance(v, dict) and "datetime" in v:
                    v = datetime.fromisoformat(v["datetime"])
                elif isinstance(v, dict) and "tuple" in v:
                    v = tuple(v["tuple"])
                elif isinstance(v, dict) and "dict_of_arrays" in v:
                    v = {k: arrays[f"{name}.{k}"] for k in v["dict_of_arrays"]}
                elif isinstance(v, dict) and "nested" in v:
                    sub = dict(v["nested"])
                    sub.update({k.split(".", 1)[1]: x for k, x in arrays.items() if k.startswith(name + ".")})
                    v = _NESTED[name](**sub)
                kw[name] = v
        except WireError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise WireError(f"{name}: {type(e).__name__}: {e}") from None
    return cls(**kw)


def encode_request(req: TownRequest) -> bytes:
    return _encode(req, "town-request")


def decode_request(data: bytes) -> TownRequest:
    """The request in ``data``; shapes are checked against the homes and slots it names."""
    req = _decode(data, TownRequest, "town-request")
    H, n = len(req.battery_ids), int(req.n)
    for name in ("capacity_wh", "max_charge_w", "max_discharge_w", "eta_charge", "eta_discharge", "soc_min",
                 "soc_max", "soc0", "load_share"):
        if np.shape(getattr(req, name)) != (H,):
            raise WireError(f"{name}: shape {np.shape(getattr(req, name))}, expected ({H},)")
    if np.shape(req.floor) not in ((H,), (H, n)):
        raise WireError(f"floor: shape {np.shape(req.floor)}, expected ({H},) or ({H}, {n})")
    for name in ("load_w", "buy", "sell", "co2_kg_per_kwh"):
        if np.shape(getattr(req, name)) != (n,):
            raise WireError(f"{name}: shape {np.shape(getattr(req, name))}, expected ({n},)")
    return req


def encode_plan(plan: TownPlan) -> bytes:
    return _encode(plan, "town-plan")


def decode_plan(data: bytes) -> TownPlan:
    return _decode(data, TownPlan, "town-plan")
