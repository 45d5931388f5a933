"""Multi-objective benchmark problems for ``multi_objective.py``: ZDT1 and DTLZ2, minimised.

Each problem is a sweep ``parameters`` block (6 variables in [0, 1]), a ``metric`` list of
objectives (all ``minimize``) and an objective of the suggested parameter dict that returns one
value per objective, in order. ``ref`` is the hypervolume reference point and ``true_hv`` the
hypervolume of the true Pareto front with it (the best any finite set of points can approach).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

N_VARS = 6
VARS = [f"x{i}" for i in range(1, N_VARS + 1)]


@dataclass
class MOProblem:
    name: str
    parameters: dict[str, Any]
    objective: Callable[[dict[str, Any]], tuple[float, ...]]
    objectives: list[str]
    ref: tuple[float, ...]
    true_hv: float

    @property
    def metric(self) -> list[dict[str, Any]]:
        return [{"name": name, "goal": "minimize"} for name in self.objectives]

    @property
    def goals(self) -> list[str]:
        return ["minimize"] * len(self.objectives)


def _unit_box() -> dict[str, Any]:
    return {name: {"min": 0.0, "max": 1.0} for name in VARS}


def zdt1(p: dict[str, Any]) -> tuple[float, float]:
    """f1 = x1, g = 1 + 9 * sum(x2..x6) / 5, f2 = g * (1 - sqrt(f1 / g)).
    Front: g = 1 (x2..x6 = 0), f2 = 1 - sqrt(f1), f1 in [0, 1]."""
    x = [float(p[name]) for name in VARS]
    f1 = x[0]
    g = 1.0 + 9.0 * sum(x[1:]) / (N_VARS - 1)
    f2 = g * (1.0 - math.sqrt(f1 / g))
    return (f1, f2)


def dtlz2(p: dict[str, Any]) -> tuple[float, float, float]:
    """3 objectives, k = 4: g = sum((xi - 0.5)^2 for x3..x6); the front is the unit sphere's
    positive octant (g = 0, x3..x6 = 0.5)."""
    x = [float(p[name]) for name in VARS]
    g = sum((xi - 0.5) ** 2 for xi in x[2:])
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    f1 = (1.0 + g) * math.cos(a) * math.cos(b)
    f2 = (1.0 + g) * math.cos(a) * math.sin(b)
    f3 = (1.0 + g) * math.sin(a)
    return (f1, f2, f3)


PROBLEMS: dict[str, MOProblem] = {
    # the box 11 x 11 less the area under the front, integral of 1 - sqrt(f1) over [0, 1] = 1/3
    "zdt1": MOProblem("zdt1", _unit_box(), zdt1, ["f1", "f2"], (11.0, 11.0), 121.0 - 1.0 / 3.0),
    # the box 2.5^3 less the unit ball's positive octant, pi / 6
    "dtlz2": MOProblem(
        "dtlz2", _unit_box(), dtlz2, ["f1", "f2", "f3"], (2.5, 2.5, 2.5), 2.5**3 - math.pi / 6.0
    ),
}
