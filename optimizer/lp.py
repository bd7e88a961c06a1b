"""LP building blocks shared by the formulation modules (:mod:`optimizer.model` for the
site's energy balance, :mod:`optimizer.model_vpp` for VPP commitments and offers): the
:class:`Model` being built, systematic variable names (``name[device,tNNN]``), constraints
from ``(variable, coefficient)`` pairs, per-slot limits and the SoC a battery can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pulp
from pulp import LpAffineExpression

from .inputs import BatteryParams, Problem

__all__ = ["EPS", "Model", "con", "per_slot", "soc_reach", "vname"]

EPS = 1e-9  # [W or fraction] below this a margin or limit counts as zero


@dataclass
class Model:
    """A built formulation: the PuLP problem plus the variables by role (inside
    ``optimizer`` only)."""

    problem: Problem
    lp: pulp.LpProblem
    objective: list[tuple[pulp.LpVariable, float]] = field(default_factory=list)
    p_ch: dict[str, list] = field(default_factory=dict)
    p_dis: dict[str, list] = field(default_factory=dict)
    soc: dict[str, list] = field(default_factory=dict)
    rec: dict[str, dict[int, pulp.LpVariable]] = field(default_factory=dict)
    floor: dict[str, np.ndarray] = field(default_factory=dict)
    p_imp: list = field(default_factory=list)
    p_exp: list = field(default_factory=list)
    p_curt: list = field(default_factory=list)
    p_unserved: list = field(default_factory=list)
    p_ev: list[dict[int, pulp.LpVariable]] = field(default_factory=list)
    ev_unmet: list = field(default_factory=list)
    on: dict[str, list] = field(default_factory=dict)
    disp_short: dict[int, pulp.LpVariable] = field(default_factory=dict)
    award_short_up: dict[int, pulp.LpVariable] = field(default_factory=dict)
    award_short_dn: dict[int, pulp.LpVariable] = field(default_factory=dict)
    offer_up: dict[str, list] = field(default_factory=dict)
    offer_dn: dict[str, list] = field(default_factory=dict)
    o_up: list = field(default_factory=list)
    o_dn: list = field(default_factory=list)
    binaries_bat: bool | frozenset[int] = False
    offer_mode: object = "none"
    binaries_grid: bool = False
    n_binaries: int = 0
    notes: list[str] = field(default_factory=list)
    prefix: str = ""  #: prepended to every variable and constraint name (scenario copies in one LP)

    def var(self, name: str, lb: float, ub: float, cat: str = "Continuous") -> pulp.LpVariable:
        if cat == "Binary":
            self.n_binaries += 1
        return self.lp.add_variable(self.prefix + name, lb, ub, cat)

    def cost(self, v: pulp.LpVariable, c: float) -> None:
        """Add ``c · v`` to the objective."""
        if c:
            self.objective.append((v, float(c)))


def vname(var: str, dev: str, t: int) -> str:
    """Systematic variable / constraint name ``var[dev,tNNN]``."""
    return f"{var}[{dev},t{t:03d}]"


def con(m: Model, pairs: list[tuple], sense: str, rhs: float, name: str) -> None:
    """Add ``Σ coef·var (sense) rhs`` to ``m`` as ``name``; ``pairs`` are ``(var, coef)``,
    ``sense`` one of ``"<="``, ``">="``, ``"="``."""
    e = LpAffineExpression.from_list(pairs)
    if sense == "<=":
        c = e <= rhs
    elif sense == ">=":
        c = e >= rhs
    else:
        c = e == rhs
    m.lp.addConstraint(c, m.prefix + name)


def per_slot(x, n: int) -> np.ndarray:
    """A power limit [W] as a per-slot array (scalars broadcast)."""
    return np.broadcast_to(np.asarray(x, float), (n,))


def soc_reach(b: BatteryParams, n: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Highest and lowest SoC reachable at the end of each slot [fraction]."""
    up_step = np.cumsum(per_slot(b.max_charge_w, n)) * b.eta_charge * dt / b.capacity_wh
    lo_step = np.cumsum(per_slot(b.max_discharge_w, n)) * dt / (b.eta_discharge * b.capacity_wh)
    up = np.minimum(max(b.soc_max, b.soc0), b.soc0 + up_step)
    lo = np.maximum(min(b.soc_min, b.soc0), b.soc0 - lo_step)
    return up, lo
