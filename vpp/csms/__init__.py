"""OCPP central system (CSMS): charge points over OCPP 1.6J and 2.0.1 behind the EvCharger capability.

:mod:`~vpp.csms.server` (WebSocket endpoint, auth, the fleet interface), :mod:`~vpp.csms.handlers`
(what stations send), :mod:`~vpp.csms.charger` (limits → profiles, fallbacks, commands),
:mod:`~vpp.csms.profiles` (payloads, pure), :mod:`~vpp.csms.station` (state → snapshot).
"""
