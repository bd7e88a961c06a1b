"""Property: whatever the grid meter reads (glitches, bursts, real outages), SoC goes below the
reserve floor only inside a debounced, real outage: the detector declares an outage only over
``samples`` real-outage samples spanning ``confirm_s``, and the battery crosses the floor only
while it is declared (which lasts until the grid's return is confirmed, debounced too).

Drives the pure parts: :class:`vpp.control.outage.OutageDetector` feeding
:class:`vpp.control.reserve.ReserveStateMachine`, a controller that always asks for full
discharge, and a battery integrating the allowed power.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.config import OutageDetection
from vpp.control.outage import OutageDetector, Sample, classify
from vpp.control.reserve import ReserveState, ReserveStateMachine

T0 = datetime(2026, 1, 10, tzinfo=timezone.utc)
CFG = OutageDetection()
FLOOR = 0.30
CAP_WH = 100_000.0

LIVE = st.tuples(st.floats(95.0, 107.0), st.floats(49.8, 50.2))
DEAD = st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 0.5))
#: what a faulty meter reads while the grid is up: anything, finite or not
JUNK = st.tuples(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 10.1, 101.0, 2300.0])),
                 st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, 50.0, 500.0]))
                 ).filter(lambda r: not (r[0] < CFG.dead_v and r[1] < CFG.dead_hz))  # dead-looking: bursts below

# one segment: (grid really down?, readings). A glitch burst that looks dead is shorter than
# the detector's sample count and framed by live readings: a longer one, or one run together
# with a real outage, is indistinguishable from an outage by any meter-only detector.
segment = st.one_of(
    st.tuples(st.just(False), st.lists(LIVE, min_size=1, max_size=20)),
    st.tuples(st.just(True), st.lists(DEAD, min_size=1, max_size=30)),
    st.builds(lambda a, burst, b: (False, [a, *burst, b]), LIVE, st.lists(DEAD, min_size=1, max_size=CFG.samples - 1),
              LIVE),
    st.tuples(st.just(False), st.lists(JUNK, min_size=1, max_size=10)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(segment, min_size=1, max_size=12), st.floats(FLOOR, 0.6),
       st.lists(st.floats(1.0, 60.0), min_size=1, max_size=7))
def test_soc_below_floor_only_in_a_debounced_real_outage(segments, soc0, dts):
    det = OutageDetector(CFG)
    sm = ReserveStateMachine(CAP_WH, 50_000.0, 50_000.0, step_s=60.0)
    soc, t, i = soc0, T0, 0
    seen: list[tuple[datetime, Sample, bool]] = []  # (time, class, grid really down) per sample
    for down, readings in segments:
        for v, hz in readings:
            dt = dts[i % len(dts)]
            i += 1
            t += timedelta(seconds=dt)
            was = det.outage
            values = {"voltage_v": v, "frequency_hz": hz}
            outage = det.update(t, values)
            seen.append((t, classify(values, CFG)[0], down))
            if outage and not was:  # declared: debounced over real-outage samples only
                run = []  # the trailing run of dead samples (samples without a reading say nothing)
                for ts, kind, real in reversed(seen):
                    if kind is Sample.NONE:
                        continue
                    if kind is not Sample.DEAD:
                        break
                    assert real, "an outage declared over a glitch"
                    run.append(ts)
                assert len(run) >= CFG.samples and (run[0] - run[-1]).total_seconds() >= CFG.confirm_s
            lim = sm.step(t, soc, FLOOR, grid_ok=not outage)
            p = min(50_000.0, lim.max_w)  # the controller always wants full discharge
            p = max(p, lim.min_w)
            new = soc - p * dt / 3600.0 / CAP_WH / sm.discharge_efficiency if p > 0 else soc
            if p < 0:
                new = soc - p * dt / 3600.0 * sm.charge_efficiency / CAP_WH
            if new < FLOOR - 1e-9 and new < soc:  # below the floor: only in a declared outage
                assert outage and sm.state is ReserveState.OUTAGE
            soc = min(max(new, 0.0), 1.0)
