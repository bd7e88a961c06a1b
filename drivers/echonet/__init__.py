"""ECHONET Lite (UDP 3610): frame codec, device objects as YAML data, and the driver.

:mod:`drivers.echonet.frame` (EHD 0x1081 frames, property maps),
:mod:`drivers.echonet.objects` (object classes from ``objects/*.yaml``),
:mod:`drivers.echonet.transport` (one UDP socket, one requester per node: TID matching,
timeouts, retries), :mod:`drivers.echonet.device` (the capability protocols of
:mod:`drivers.protocols` over ECHONET objects), :mod:`drivers.echonet.poller`.
Sign conventions are converted at this edge: canonical battery power > 0 = discharge
(ECHONET D3: + charging), meter power > 0 = import (E7 already is).
"""
