"""One OCPP station behind the :class:`drivers.protocols.EvCharger` capability.

The control loop calls ``set_current_limit(amps)`` on every charger alike; for an OCPP
station that becomes (see :mod:`vpp.csms.profiles`):

* in a transaction: a ``TxProfile`` naming the transaction, valid ``profile_duration_s``
  (re-sent before it ends by :mod:`vpp.csms.renewal`, so it never lapses mid-session);
* outside one: a ``TxDefaultProfile`` at ``min(amps, safe limit)`` — a car that plugs in
  before the next step, or while the central system is away, starts at the safe limit;
* 0 A that the station rejects (some refuse a zero limit): the transaction is stopped
  (``RemoteStopTransaction`` / ``RequestStopTransaction``) and resumed later with the same
  id tag — the car stays plugged in and its session's energy carries over;
* a ``TxProfile`` refused while the default profile is accepted (the transaction has ended at
  the station: a TxProfile outside a transaction is refused): the default limit applies;
* any other rejection (e.g. "controlled by external system disabled"): the plain current
  limit ``ocpp.fallback_limit_key`` if configured, and alarm ``ocpp:<id>`` either way.

A call the station does not answer within ``call_timeout_s`` raises (the loop's write alarm)
and changes nothing here: the limit in force stays what the station last accepted, so the
next step tries again. Nothing is half-applied: state changes only after an ``Accepted``.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from drivers.config import Device
from drivers.protocols import DeviceKind, Snapshot
from vpp.csms import profiles
from vpp.csms.station import StationState

if TYPE_CHECKING:
    from vpp.csms.server import CentralSystem

#: Minimum charging current when the ratings do not say [A] (IEC 61851).
DEFAULT_MIN_A = 6.0


class ProfileRejected(RuntimeError):
    """The station refused a limit and no fallback took it."""


class OcppCharger:
    """EvCharger handle of station ``config.id`` on the central system ``csms``."""

    kind = DeviceKind.EV_CHARGER

    def __init__(self, config: Device, csms: "CentralSystem") -> None:
        self.config, self.csms, self.id = config, csms, config.id

    # ------------------------------------------------------------------ reading
    @property
    def state(self) -> StationState:
        return self.csms.stations[self.id]

    async def read(self) -> Snapshot:
        return self.state.snapshot(self.csms.now())

    def safe_limit_a(self) -> float:
        """The default profile's limit [A]: configured, else the charger's minimum current."""
        o, r = self.config.ocpp, self.config.ratings
        if o.safe_limit_a is not None:
            return o.safe_limit_a
        return r.min_current_a if r.min_current_a is not None else DEFAULT_MIN_A

    # ------------------------------------------------------------------ calls
    async def call(self, action: str, **payload: Any) -> Any:
        """Send ``action`` (a call of the station's OCPP version) and return the result;
        raises ``ConnectionError`` when not connected, ``TimeoutError`` (and alarm
        ``ocpp:<id>``) when the station does not answer, ``OCPPError`` on a CallError."""
        cp = self.csms.connection(self.id)
        if cp is None:
            raise ConnectionError(f"OCPP station {self.id} is not connected")
        cls = getattr(cp._call, action)
        try:
            return await cp.call(cls(**payload), suppress=False)
        except asyncio.TimeoutError as e:
            self.state.count("timeouts")
            self.csms.alarm(self.id, f"no answer to {action} within {self.csms.config.ocpp.call_timeout_s:g} s")
            raise TimeoutError(f"OCPP station {self.id}: no answer to {action}") from e

    def _v16(self) -> bool:
        return self.config.version == "1.6"

    async def set_profile(self, amps: float, purpose: profiles.Purpose, duration_s: int | None) -> bool:
        """Send one charging profile; True if the station accepted it."""
        st = self.state
        unit = profiles.rate_unit(st.rate_units, self.config.ocpp.rate_unit)
        now = self.csms.now()
        payload = profiles.profile_payload(self.config.version, amps, self.config, unit, purpose, now, duration_s,
                                           st.transaction_id if purpose == "TxProfile" else None)
        res = await self.call("SetChargingProfile", **payload)
        ok = res.status == "Accepted"
        st.count("profiles_accepted" if ok else "profiles_rejected")
        if ok:
            until = now + timedelta(seconds=duration_s) if duration_s else None
            if purpose == "TxProfile":
                st.limit_a, st.limit_until = amps, until
            else:
                st.safe_limit_a = amps
        return ok

    async def set_default(self, amps: float | None = None) -> bool:
        """Install the ``TxDefaultProfile`` (at the safe limit unless ``amps`` is lower)."""
        safe = self.safe_limit_a()
        return await self.set_profile(min(safe, amps) if amps is not None else safe, "TxDefaultProfile", None)

    async def set_current_limit(self, amps: float) -> None:
        """Limit charging to ``amps`` [A] (0 pauses); see the module docstring."""
        st = self.state
        amps = max(float(amps), 0.0)
        if st.paused_by_stop:
            if amps <= 0:
                return
            await self.resume()
            return
        if st.profiles_rejected and self.config.ocpp.fallback_limit_key:
            await self.set_plain_limit(amps)
            return
        if st.transaction_id is None:
            if await self.set_default(amps):
                return
            await self._rejected(amps, "TxDefaultProfile")
            return
        if await self.set_profile(amps, "TxProfile", self.csms.config.ocpp.profile_duration_s):
            self.csms.clear_alarm(self.id)
            return
        if amps <= 0:
            await self.pause()  # a station that refuses a 0 A limit
            return
        if await self.set_default(amps):
            # it takes profiles, but not this transaction's: the transaction has ended there
            # (a TxProfile outside a transaction is refused); the default limit applies
            st.count("tx_profile_refused")
            st.limit_a = st.limit_until = None
            return
        await self._rejected(amps, "TxProfile")

    async def _rejected(self, amps: float, purpose: str) -> None:
        key = self.config.ocpp.fallback_limit_key
        self.state.profiles_rejected = True
        if key:
            self.csms.alarm(self.id, f"{purpose} rejected: using the plain current limit {key}")
            await self.set_plain_limit(amps)
            return
        self.csms.alarm(self.id, f"{purpose} rejected and no fallback_limit_key configured")
        raise ProfileRejected(f"OCPP station {self.id} rejected {purpose}")

    async def set_plain_limit(self, amps: float) -> None:
        """Write ``ocpp.fallback_limit_key`` (1.6 ChangeConfiguration, 2.0.1 SetVariables)."""
        key = self.config.ocpp.fallback_limit_key
        value = f"{amps:.1f}"
        if self._v16():
            res = await self.call("ChangeConfiguration", key=key, value=value)
            ok = res.status in ("Accepted", "RebootRequired")
        else:
            comp, _, var = key.partition("/")
            res = await self.call("SetVariables", set_variable_data=[
                {"attribute_value": value, "component": {"name": comp}, "variable": {"name": var or comp}}])
            ok = bool(res.set_variable_result) and res.set_variable_result[0]["attribute_status"] == "Accepted"
        if not ok:
            raise ProfileRejected(f"OCPP station {self.id} rejected the plain current limit {key}")
        st = self.state
        st.limit_a, st.limit_until, st.safe_limit_a = amps, None, amps

    async def pause(self) -> None:
        """Pause by stopping the transaction (the station refuses a 0 A limit)."""
        st = self.state
        tx = st.transaction_id
        if tx is None:
            return
        if self._v16():
            res = await self.call("RemoteStopTransaction", transaction_id=int(tx))
        else:
            res = await self.call("RequestStopTransaction", transaction_id=tx)
        if res.status != "Accepted":
            self.csms.alarm(self.id, "refuses both a 0 A limit and a remote stop: cannot pause")
            raise ProfileRejected(f"OCPP station {self.id} cannot be paused")
        st.paused_by_stop = True
        st.count("paused_by_stop")

    async def resume(self) -> None:
        """Restart the transaction stopped by :meth:`pause` (same id tag)."""
        st = self.state
        tag = st.id_tag or "vpp"
        cid = self.config.ocpp.connector_id
        if self._v16():
            res = await self.call("RemoteStartTransaction", id_tag=tag, connector_id=cid)
        else:
            res = await self.call("RequestStartTransaction", id_token={"id_token": tag, "type": "Central"},
                                  remote_start_id=self.csms.next_transaction_id(), evse_id=cid)
        if res.status != "Accepted":
            raise ProfileRejected(f"OCPP station {self.id} refused to resume")
        st.paused_by_stop = False

    async def clear_tx_profile(self) -> None:
        """``ClearChargingProfile`` of the TxProfile (the transaction ended)."""
        if self._v16():
            await self.call("ClearChargingProfile", id=profiles.TX_PROFILE_ID)
        else:
            await self.call("ClearChargingProfile", charging_profile_id=profiles.TX_PROFILE_ID)
        st = self.state
        st.limit_a = st.limit_until = None

    async def remote_start(self, id_tag: str) -> str:
        cid = self.config.ocpp.connector_id
        if self._v16():
            return (await self.call("RemoteStartTransaction", id_tag=id_tag, connector_id=cid)).status
        return (await self.call("RequestStartTransaction", id_token={"id_token": id_tag, "type": "Central"},
                                remote_start_id=self.csms.next_transaction_id(), evse_id=cid)).status

    async def remote_stop(self) -> str:
        tx = self.state.transaction_id
        if tx is None:
            return "Rejected"
        if self._v16():
            return (await self.call("RemoteStopTransaction", transaction_id=int(tx))).status
        return (await self.call("RequestStopTransaction", transaction_id=tx)).status

    async def reset(self, hard: bool = False) -> str:
        if self._v16():
            return (await self.call("Reset", type="Hard" if hard else "Soft")).status
        return (await self.call("Reset", type="Immediate" if hard else "OnIdle")).status

    async def get_configuration(self, keys: list[str]) -> dict[str, str | None]:
        """Configuration values (1.6 GetConfiguration; 2.0.1 GetVariables of
        ``Component/Variable`` keys); unknown keys map to ``None``."""
        if self._v16():
            res = await self.call("GetConfiguration", key=keys)
            out: dict[str, str | None] = {k: None for k in keys}
            for item in res.configuration_key or []:
                out[item["key"]] = item.get("value")
            return out
        data = []
        for k in keys:
            comp, _, var = k.partition("/")
            data.append({"component": {"name": comp}, "variable": {"name": var or comp}})
        res = await self.call("GetVariables", get_variable_data=data)
        return {k: (r.get("attribute_value") if r.get("attribute_status") == "Accepted" else None)
                for k, r in zip(keys, res.get_variable_result)}

    async def learn_rate_units(self) -> None:
        """Ask which units charging schedules may use (kept in the station's state)."""
        key = ("ChargingScheduleAllowedChargingRateUnit" if self._v16()
               else "SmartChargingCtrlr/RateUnit")
        value = (await self.get_configuration([key])).get(key)
        if value:
            units = tuple(dict.fromkeys("A" if u.strip() in ("Current", "A") else "W"
                                        for u in value.split(",") if u.strip()))
            self.state.rate_units = units or ("A",)

    def at(self) -> datetime:
        return self.csms.now()
