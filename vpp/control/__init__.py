"""Control: reserve policy and state machine, bounds composition, fallback rule, alarms,
the job functions of the control loop and their scheduler wiring.

Signs as in :mod:`drivers`: battery power > 0 discharges, grid power > 0 imports.
"""
