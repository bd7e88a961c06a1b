"""Device drivers: capability protocols, register maps (YAML data), converters, Modbus I/O.

Where things live: :mod:`drivers.config` (device config models), :mod:`drivers.fields` (the
telemetry field table: unit, plausible range, meaning), :mod:`drivers.protocols`
(capabilities, snapshots), :mod:`drivers.registermap` with :mod:`drivers.mapschema` and
:mod:`drivers.mapcodec` (register maps), :mod:`drivers.sunspec` and
:mod:`drivers.sunspec_models` (SunSpec), :mod:`drivers.device`, :mod:`drivers.poller`,
:mod:`drivers.fleet` (polling and writes), :mod:`drivers.echonet` (ECHONET Lite homes: frames,
device objects as YAML, UDP driver). The package imports nothing from ``vpp``.

Units and sign convention (stated once, used everywhere in the project)
-----------------------------------------------------------------------
* Power in W, energy in Wh, time in s, timestamps UTC (``datetime`` tz-aware or ns ints).
* State of charge as a fraction 0..1 inside the code; percent only at the edges (UI, API).
* **Battery power > 0 means discharge** (power flowing out of the battery into the site);
  < 0 means charge.
* **Grid power > 0 means import** from the grid; < 0 means export.
* PV power >= 0 (production).
* EV charger power >= 0 charging the car; < 0 for a V2H unit discharging it into the home.

Only this package imports pymodbus.
"""
