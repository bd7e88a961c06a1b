"""Slot energy integration (pure functions) against hand-computed values."""
import numpy as np
import pytest

from vpp.storage.energy import slot_energy_from_counter, slot_energy_from_power

S = 10**9
EDGES = np.array([0, 1800, 3600]) * S


def test_ramp_power_is_integrated_exactly_and_split_at_the_edge():
    t = np.arange(0, 3601, 7) * S  # samples do not fall on the edge
    p = t / S                      # 1 W per second ramp
    wh = slot_energy_from_power(t, p, EDGES)
    last = t[-1] / S
    assert wh == pytest.approx([1800**2 / 2 / 3600, (last**2 - 1800**2) / 2 / 3600])


def test_gaps_longer_than_max_gap_are_not_integrated():
    t = np.array([0, 60, 1000, 1060]) * S
    p = np.full(4, 3600.0)
    assert slot_energy_from_power(t, p, EDGES, max_gap_s=300) == pytest.approx([120.0, 0.0])
    assert slot_energy_from_power(t, p, EDGES, max_gap_s=1000) == pytest.approx([1060.0, 0.0])


def test_no_data_gives_zero():
    assert slot_energy_from_power(np.zeros(0, np.int64), np.zeros(0), EDGES).tolist() == [0.0, 0.0]
    assert slot_energy_from_counter(np.zeros(0, np.int64), np.zeros(0), EDGES).tolist() == [0.0, 0.0]


def test_counter_is_interpolated_at_edges():
    t = np.array([900, 2700]) * S
    c = np.array([1000.0, 2800.0])  # 1 Wh/s between the samples
    assert slot_energy_from_counter(t, c, EDGES) == pytest.approx([900.0, 900.0])
