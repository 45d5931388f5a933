"""The registry of parameter distributions, and the ``parameters`` section of a sweep config.

Each W&B distribution is one class here, and that class is the only place that says, for its
distribution:

* which keys a spec has, their defaults, and what values they accept (:meth:`Distribution.check`,
  called by :func:`normalise_parameters` for ``sweepq.config``);
* how a value is drawn: ``sample(rng)`` is ``ppf(u)`` of one uniform draw ``u`` in [0, 1), as in
  W&B, and ``cdf`` maps a value back (random search);
* what grid search enumerates (:meth:`Distribution.grid`);
* where bayes searches it and how a point it picks becomes a value: :meth:`Distribution.bounds`
  and ``log_scale`` for a box in value space, ``cdf_array``/``ppf_array`` for distributions
  searched through their CDF, :meth:`Distribution.snap` for the value, and ``count`` for how many
  distinct values there are.

Where W&B has quirks, sweepq does not copy them (WANDB-COMPAT.md section 9 item 3):

* ``ppf(0)`` of a categorical is its *first* value and of an int_uniform its ``min`` (W&B: the
  last value and ``min - 1``); ``ppf`` and ``cdf`` round-trip for both.
* Categorical values are found by value, so falsy values (0, False, None, "") encode at their real
  position; ``True`` and ``1`` stay distinct, an integral float equals its int (as grid dedupe).
* ``categorical_w_probabilities`` encodes each value at the middle of its probability interval
  (W&B crashes on it in bayes).
* ``inv_log_uniform*`` have a ``ppf`` that increases with ``u`` (a true inverse CDF); the sampled
  distribution is W&B's.

``q`` rounding, the one rule in three uses:

* **Sampling** (``ppf``, random search) is W&B's exactly: ``round(x / q) * q`` with
  round-half-to-even, an ``int`` only when ``q`` itself is an int (the default ``q: 1.0`` gives
  ``8.0``). The value may lie up to ``q/2`` outside ``[min, max]`` and may carry float noise
  (``0.6000000000000001`` for ``q: 0.1``): that is the distribution users tuned against in W&B.
* **Bayes** (``snap``) rounds the point it chose by the same rule, then keeps it on the multiples
  of ``q`` inside ``[min, max]`` when there are any, and drops float noise (``0.6``). Bayes picks
  a point inside the box, and the value it proposes must be one the user allowed.
* **Grid** (``grid``) enumerates W&B's ``numpy.arange(min, max, q)``: multiples counted from
  ``min``, ``max`` excluded.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import re
from collections.abc import Mapping
from functools import cached_property
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np

from sweepq.checks import Checker, article, describe, did_you_mean, is_int

__all__ = [
    "DISTRIBUTIONS",
    "GROUP",
    "Distribution",
    "ParamPath",
    "RangeAxis",
    "ValueAxis",
    "canonical",
    "flatten",
    "get_path",
    "make",
    "normalise_parameters",
    "unflatten",
]

ParamPath = tuple[str, ...]
"""A parameter's place in a nested config: one component per level (dots inside a name stay)."""

GROUP = "param_dict"
"""The ``distribution`` of a nested group of parameters (``{parameters: {...}}``)."""

_U_EPS = 2.0**-53
"""Unbounded distributions clamp u into [eps, 1 - eps] so that ppf never returns +-inf."""

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def canonical(value: Any) -> Any:
    """A hashable stand-in for a JSON-like value, equal exactly when W&B's grid treats values as
    the same point: dicts regardless of key order, an integral float equal to its int
    (``3e6 == 3000000``), ``True != 1``, ``list != tuple``, NaN equal to NaN. (W&B hashes the
    YAML dump of the value; this is the same relation without the YAML round trip.)"""
    kind = type(value)
    if kind is str:  # the common cases first: bayes looks up every trial's categories
        return ("str", value)
    if kind is int:
        return ("num", value)
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, numbers.Integral):
        return ("num", int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isnan(f):
            return ("nan",)
        return ("num", int(f)) if f.is_integer() else ("num", f)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), canonical(v)) for k, v in value.items())))
    if isinstance(value, tuple):
        return ("tuple", tuple(canonical(v) for v in value))
    if isinstance(value, list):
        return ("list", tuple(canonical(v) for v in value))
    return ("other", repr(value))


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _clip01(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else float(x)


def _quantise(x: float, q: int | float) -> int | float:
    """W&B's rounding: ``round(x/q)*q``, an int only if ``q`` is an int."""
    if not math.isfinite(x):
        return x
    n = round(x / q)  # Python's round is half-to-even, like numpy.round
    if isinstance(q, int):
        return int(n) * q
    return float(n) * q


def _snap_q(a: np.ndarray, q: int | float, bounds: tuple[float, float] | None = None) -> list[Any]:
    """Bayes's rounding of points to multiples of ``q`` (module docstring): kept inside
    ``bounds`` when a multiple lies there; an int ``q`` gives ints, a float ``q`` floats without
    binary noise."""
    r = np.round(np.asarray(a, dtype=float) / q) * q
    if bounds is not None:
        lo_m, hi_m = math.ceil(bounds[0] / q) * q, math.floor(bounds[1] / q) * q
        if lo_m <= hi_m:
            r = np.clip(r, lo_m, hi_m)
    if isinstance(q, int) and not isinstance(q, bool):
        return [int(x) for x in np.round(r)]
    return [float(x) for x in np.round(r, 12)]


# --- grid axes ---------------------------------------------------------------------------------


class ValueAxis:
    """A grid axis listed by value (a categorical's distinct values, or a constant's one value),
    in grid order, with positions found by value (:func:`canonical`)."""

    distinct = True
    """Distinct positions hold distinct values (duplicates are collapsed on construction)."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.size = len(values)
        self._pos = {canonical(v): i for i, v in enumerate(values)}
        # keys any dict value has: keys of a trial's dict beyond these were injected at run time
        keys = [set(v) for v in values if isinstance(v, Mapping)]
        self._dict_keys: set[Any] | None = set().union(*keys) if keys else None

    def value(self, i: int) -> Any:
        """The value at position ``i`` (a copy)."""
        return copy.deepcopy(self.values[i])

    def index(self, v: Any) -> int | None:
        """The position of ``v``, or None when it is not on the axis. For dict values, keys no
        grid value has are ignored (keys a program injected at run time, as W&B does)."""
        if self._dict_keys is not None and isinstance(v, Mapping):
            v = {k: x for k, x in v.items() if k in self._dict_keys}
        return self._pos.get(canonical(v))


class RangeAxis:
    """An int_uniform (``range(min, max + 1)``) or q_uniform (``numpy.arange(min, max, q)``) axis,
    computed rather than listed. numpy fills an arange as ``start + i * delta`` with
    ``delta = (start + q) - start``, in the integers when min, max and q are all integers and in
    doubles otherwise; this does the same, so the values (float noise included) are W&B's."""

    def __init__(
        self, start: int | float, q: int | float, size: int, integral: bool, distinct: bool = True
    ) -> None:
        if not integral:
            start, q = float(start), float(start + q) - float(start)
        self.start, self.delta, self.size = start, q, size
        self.distinct = distinct
        """False when q is so fine for the range's float precision that values would repeat."""

    def value(self, i: int) -> int | float:
        """The value at position ``i``."""
        return self.start + i * self.delta

    def index(self, v: Any) -> int | None:
        """The position of ``v``, or None when it is not on the axis."""
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        key = canonical(v)
        try:
            guess = round((v - self.start) / self.delta)
        except OverflowError:  # an integer far beyond any float: on no axis
            return None
        for i in (guess, guess - 1, guess + 1):  # rounding may put v one step off
            if 0 <= i < self.size and canonical(self.value(i)) == key:
                return i
        return None


GridAxis = ValueAxis | RangeAxis


# --- distributions -----------------------------------------------------------------------------


class Distribution:
    """A parameter's distribution, built from a normalised spec by :func:`make`.

    The class attributes describe the spec (``required`` keys, ``defaults`` of the optional ones);
    :meth:`check` turns a user's spec into the normalised one. An instance samples (``ppf``,
    ``sample``), encodes (``cdf``), enumerates (``grid``) and tells bayes where to search.
    """

    name: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[Mapping[str, Any]] = {}
    searchable: ClassVar[bool] = True
    """False only for constants: not a grid axis (grid puts them in every point)."""
    log_scale: ClassVar[bool] = False
    """Bayes searches :meth:`bounds` on a log scale."""
    q: int | float | None = None
    """The rounding step of the ``q_`` distributions; None for the others."""

    # -- the spec

    @classmethod
    def spec_keys(cls) -> tuple[str, ...]:
        """Every key a spec may have besides ``distribution``, required ones first."""
        return (*cls.required, *cls.defaults)

    @classmethod
    def check(cls, ck: Checker, spec: Mapping[str, Any], path: str, explicit: bool) -> dict[str, Any] | None:
        """The normalised spec of ``spec`` (``distribution`` first, then every key with its
        default filled), or None after recording errors in ``ck``.

        May assume that ``spec`` has every required key and no unknown one; ``explicit`` says
        whether the user wrote ``distribution`` (rather than it being inferred from the keys).
        """
        out: dict[str, Any] = {"distribution": cls.name}
        ok = True
        for key in cls.spec_keys():
            checked = cls._read_key(ck, key, spec.get(key, cls.defaults.get(key)), f"{path}.{key}")
            if checked is None:
                ok = False
                continue
            out[key] = checked
        if not ok:
            return None
        return cls._check_values(ck, out, path, explicit)

    @classmethod
    def _read_key(cls, ck: Checker, key: str, v: Any, path: str) -> Any:
        if key == "q":
            return ck.number(path, v, minimum=0, exclusive=True)
        if key in ("sigma", "a", "b"):
            return ck.number(path, v, minimum=0)
        return ck.number(path, v)  # min, max, mu

    @classmethod
    def _check_values(
        cls, ck: Checker, out: dict[str, Any], path: str, explicit: bool
    ) -> dict[str, Any] | None:
        """Rules across keys, once each key's value is of the right type."""
        return out

    # -- sampling (random search)

    def sample(self, rng: np.random.Generator) -> Any:
        """One value drawn from the distribution."""
        return self.ppf(float(rng.random()))

    def ppf(self, u: float) -> Any:  # pragma: no cover - abstract
        """The value at quantile ``u`` in [0, 1] (W&B's definition of the distribution)."""
        raise NotImplementedError

    def cdf(self, value: Any) -> float:  # pragma: no cover - abstract
        """The quantile of ``value``: ``ppf(cdf(v)) == v`` for every value the distribution takes."""
        raise NotImplementedError

    # -- grid search

    def grid(self) -> GridAxis | None:
        """The values grid search enumerates, or None where W&B's grid refuses the distribution."""
        return None

    # -- bayes

    @property
    def is_fixed(self) -> bool:
        """Every draw gives the same value, ``ppf(0.5)``: nothing for bayes to search."""
        return False

    def bounds(self) -> tuple[float, float] | None:
        """The interval of values bayes searches (on a log scale if ``log_scale``), or None where
        it searches the quantile ``cdf_array(v)`` instead (unbounded and beta families)."""
        return None

    def cdf_array(self, values: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``cdf`` of many values (NaN stays NaN), for distributions without :meth:`bounds`."""
        raise NotImplementedError

    def ppf_array(self, u: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``ppf`` of many quantiles, before ``q`` rounding, for distributions without :meth:`bounds`."""
        raise NotImplementedError

    def snap(self, points: np.ndarray) -> list[Any]:
        """The values of points bayes picked (inside :meth:`bounds`, or from ``ppf_array``), as
        Python values: floats, ints for int_uniform and int ``q``, rounded as the module says."""
        if self.q is not None:
            return _snap_q(points, self.q, self.bounds())
        return [float(x) for x in points]

    def count(self) -> float:
        """How many distinct values :meth:`snap` can give (``math.inf`` for a continuum)."""
        bounds = self.bounds()
        if self.q is None or bounds is None:
            return math.inf
        lo, hi = bounds
        inside = math.floor(hi / self.q) - math.ceil(lo / self.q) + 1
        if inside > 0:
            return inside
        # no multiple inside: rounding reaches the nearest multiples of the two ends
        return round(hi / self.q) - round(lo / self.q) + 1

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Constant(Distribution):
    name = "constant"
    required = ("value",)
    searchable = False

    def __init__(self, value: Any) -> None:
        self.value = value

    @classmethod
    def check(cls, ck: Checker, spec: Mapping[str, Any], path: str, explicit: bool) -> dict[str, Any] | None:
        return {"distribution": cls.name, "value": spec["value"]}

    @property
    def is_fixed(self) -> bool:
        return True

    def ppf(self, u: float) -> Any:
        return copy.deepcopy(self.value)

    def cdf(self, value: Any) -> float:
        return 0.5

    def grid(self) -> ValueAxis:
        return ValueAxis([copy.deepcopy(self.value)])

    def count(self) -> float:
        return 1


class Categorical(Distribution):
    """Uniform over ``values``; value i occupies ``(i/K, (i+1)/K]`` of the unit interval."""

    name = "categorical"
    required: ClassVar[tuple[str, ...]] = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = list(values)
        self._index: dict[Any, int] = {}
        for i, v in enumerate(self.values):
            self._index.setdefault(canonical(v), i)

    @classmethod
    def check(cls, ck: Checker, spec: Mapping[str, Any], path: str, explicit: bool) -> dict[str, Any] | None:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            hint = f"; write values: [{values!r}]" if not isinstance(values, (list, Mapping)) else ""
            ck.error(f"{path}.values", f"must be a list of at least one value (got {describe(values)}){hint}")
            return None
        return {"distribution": cls.name, "values": values}

    def find(self, value: Any) -> int:
        """Position of ``value`` in ``values`` (the first equal one, by :func:`canonical`), -1 if absent."""
        return self._index.get(canonical(value), -1)

    def index(self, value: Any) -> int:
        """Position of ``value`` in ``values``; ``ValueError`` if absent."""
        i = self.find(value)
        if i < 0:
            raise ValueError(f"{value!r} is not one of the values {self.values!r}")
        return i

    def weights(self) -> np.ndarray:
        """Each value's probability of being drawn."""
        k = len(self.values)
        return np.full(k, 1.0 / k)

    @property
    def is_fixed(self) -> bool:
        return len(self.values) == 1

    def ppf(self, u: float) -> Any:
        k = len(self.values)
        i = min(max(math.ceil(u * k) - 1, 0), k - 1)
        return copy.deepcopy(self.values[i])

    def cdf(self, value: Any) -> float:
        return (self.index(value) + 1) / len(self.values)

    def grid(self) -> ValueAxis | None:
        # Duplicates collapse to one point at the first one's position; the *later* object is
        # the one suggested (W&B: [1, 2, 1, 1.0] gives 1.0, 2).
        unique: dict[Any, Any] = {}
        for v in self.values:
            unique[canonical(v)] = v
        return ValueAxis([copy.deepcopy(v) for v in unique.values()])

    def count(self) -> float:
        return int(np.count_nonzero(self.weights() > 0))


class CategoricalWithProbabilities(Categorical):
    """``values`` drawn with ``probabilities``: the first index whose cumulative probability
    exceeds u. Not enumerable by grid (as W&B)."""

    name = "categorical_w_probabilities"
    required = ("values", "probabilities")

    def __init__(self, values: list[Any], probabilities: list[float]) -> None:
        super().__init__(values)
        self.probabilities = [float(p) for p in probabilities]
        self._cum = list(itertools.accumulate(self.probabilities))

    @classmethod
    def check(cls, ck: Checker, spec: Mapping[str, Any], path: str, explicit: bool) -> dict[str, Any] | None:
        out = super().check(ck, spec, path, explicit)
        if out is None:
            return None
        probs = spec["probabilities"]
        if not isinstance(probs, list) or not probs:
            ck.error(f"{path}.probabilities", f"must be a list of numbers (got {describe(probs)})")
            return None
        ok = True
        for i, p in enumerate(probs):
            if ck.number(f"{path}.probabilities[{i}]", p, minimum=0) is None:
                ok = False
        if not ok:
            return None
        if len(probs) != len(out["values"]):
            ck.error(
                f"{path}.probabilities",
                f"must have one entry per value ({len(probs)} probabilities for {len(out['values'])} values)",
            )
            return None
        total = math.fsum(probs)
        if not abs(total - 1.0) <= 1e-8 + 1e-5:  # numpy.isclose's tolerance, as W&B uses
            ck.error(f"{path}.probabilities", f"must sum to 1 (they sum to {total:g})")
            return None
        out["probabilities"] = probs
        return out

    def weights(self) -> np.ndarray:
        p = np.asarray(self.probabilities, dtype=float)
        return p / p.sum()

    def ppf(self, u: float) -> Any:
        for i, c in enumerate(self._cum):
            if c > u:
                return copy.deepcopy(self.values[i])
        # u above a total that float rounding left just under 1: the last value with mass
        i = max(j for j, p in enumerate(self.probabilities) if p > 0)
        return copy.deepcopy(self.values[i])

    def cdf(self, value: Any) -> float:
        i = self.index(value)
        lo = self._cum[i - 1] if i else 0.0
        return _clip01((lo + self._cum[i]) / 2)

    def grid(self) -> None:
        return None


class _Ranged(Distribution):
    """A distribution over ``[min, max]`` (the bounds being values or, for the deprecated forms,
    natural-log exponents)."""

    required = ("min", "max")
    replaced_by: ClassVar[str | None] = None
    """For W&B's deprecated exponent forms: the distribution that takes limit values instead."""

    def __init__(self, min: float, max: float) -> None:  # noqa: A002 - W&B's key names
        self.min, self.max = min, max

    @classmethod
    def _check_values(
        cls, ck: Checker, out: dict[str, Any], path: str, explicit: bool
    ) -> dict[str, Any] | None:
        lo, hi = out["min"], out["max"]
        if not lo < hi:
            ck.error(f"{path}.min", f"must be less than max (got {lo!r} >= {hi!r})")
            return None
        if not math.isfinite(float(hi) - float(lo)):
            ck.error(path, f"the range min..max is too wide to sample (got {lo!r}..{hi!r})")
            return None
        if not cls._check_range(ck, lo, hi, path):
            return None
        if not explicit:
            cls._warn_inferred(ck, lo, hi, path)
        out = cls._normal_form(out)
        if cls.replaced_by is not None:
            ck.warn(
                path,
                f"{cls.name} takes min/max as natural-log exponents (this samples "
                f"{_exp_text(lo, cls.name)} .. {_exp_text(hi, cls.name)}); W&B deprecates it: use "
                f"{cls.replaced_by} with the limit values themselves",
            )
        return out

    @classmethod
    def _check_range(cls, ck: Checker, lo: Any, hi: Any, path: str) -> bool:
        """Rules on the bounds particular to the distribution; False after an error."""
        return True

    @classmethod
    def _warn_inferred(cls, ck: Checker, lo: Any, hi: Any, path: str) -> None:
        """Warnings about an inferred distribution that may not be what the user meant."""

    @classmethod
    def _normal_form(cls, out: dict[str, Any]) -> dict[str, Any]:
        return out


def _exp_text(x: float, dist: str) -> str:
    try:
        return f"{math.exp(-x if dist.startswith('inv') else x):.3g}"
    except OverflowError:
        return "inf"


class IntUniform(_Ranged):
    """Integers ``min..max`` inclusive, each with probability ``1/(max-min+1)``."""

    name = "int_uniform"
    min: int
    max: int

    def __init__(self, min: int, max: int) -> None:  # noqa: A002 - W&B's key names
        self.min, self.max = int(min), int(max)

    @classmethod
    def _read_key(cls, ck: Checker, key: str, v: Any, path: str) -> Any:
        checked = ck.integer(path, v, integral_float=False)
        if checked is None and isinstance(v, float) and v.is_integer():
            ck.errors[-1] += f"; int_uniform takes integers (write {int(v)}, not {v!r})"
        return checked

    @classmethod
    def _warn_inferred(cls, ck: Checker, lo: Any, hi: Any, path: str) -> None:
        if hi - lo <= 1:
            ck.warn(
                path,
                f"min and max are integers, so only the whole numbers {lo} and {hi} "
                f"are drawn; write {lo}.0 for real numbers in between",
            )

    @property
    def is_fixed(self) -> bool:
        return self.min == self.max

    def ppf(self, u: float) -> int:
        n = self.max - self.min + 1
        return self.min + min(max(math.ceil(u * n) - 1, 0), n - 1)

    def cdf(self, value: Any) -> float:
        return _clip01((value - self.min + 1) / (self.max - self.min + 1))

    def grid(self) -> RangeAxis:
        return RangeAxis(self.min, 1, self.max - self.min + 1, integral=True)

    def bounds(self) -> tuple[float, float]:
        return self.min, self.max

    def snap(self, points: np.ndarray) -> list[Any]:
        return [int(x) for x in np.round(points)]

    def count(self) -> float:
        return self.max - self.min + 1


class Uniform(_Ranged):
    name = "uniform"

    @classmethod
    def _warn_inferred(cls, ck: Checker, lo: Any, hi: Any, path: str) -> None:
        if is_int(lo) or is_int(hi):
            ck.warn(
                path,
                "one of min/max is an integer and the other is not: read as uniform over real "
                "numbers (the wandb CLI refuses this as ambiguous); set distribution to be explicit",
            )

    @classmethod
    def _normal_form(cls, out: dict[str, Any]) -> dict[str, Any]:
        out["min"], out["max"] = float(out["min"]), float(out["max"])
        return out

    def ppf(self, u: float) -> float:
        return float(self.min + u * (self.max - self.min))

    def cdf(self, value: Any) -> float:
        return _clip01((value - self.min) / (self.max - self.min))

    def bounds(self) -> tuple[float, float]:
        return float(self.min), float(self.max)


class QUniform(Uniform):
    name = "q_uniform"
    defaults = {"q": 1.0}
    q: int | float

    def __init__(self, min: float, max: float, q: float = 1.0) -> None:  # noqa: A002
        super().__init__(min, max)
        self.q = q

    @classmethod
    def _normal_form(cls, out: dict[str, Any]) -> dict[str, Any]:
        return out  # ints stay ints: grid enumerates in the integers then

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)

    def grid(self) -> RangeAxis:
        lo, hi, q = self.min, self.max, self.q
        integral = all(is_int(x) for x in (lo, hi, q))
        # Values repeat once q is below the float spacing at the range's magnitude (only absurd
        # configs, a q of 1e-15 on 1.0); grid search relies on distinct values.
        distinct = integral or q > 8 * math.ulp(max(abs(float(lo)), abs(float(hi))))
        return RangeAxis(lo, q, max(0, math.ceil((hi - lo) / q)), integral, distinct)


class LogUniform(_Ranged):
    """Deprecated v1 form: ``min``/``max`` are natural-log exponents; ``ln X ~ U(min, max)``."""

    name = "log_uniform"
    log_scale = True
    replaced_by: ClassVar[str | None] = "log_uniform_values"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max
        self._lo, self._hi = float(min), float(max)

    @classmethod
    def _check_range(cls, ck: Checker, lo: Any, hi: Any, path: str) -> bool:
        if hi > 709:
            ck.error(
                f"{path}.max",
                f"must be at most 709: {cls.name} takes exponents and e^max overflows (got {hi!r})",
            )
            return False
        return True

    def ppf(self, u: float) -> float:
        return _exp(self._lo + u * (self._hi - self._lo))

    def cdf(self, value: Any) -> float:
        return _clip01((_log(value) - self._lo) / (self._hi - self._lo))

    def bounds(self) -> tuple[float, float]:
        return float(math.exp(self.min)), float(math.exp(self.max))


class LogUniformValues(LogUniform):
    """``min``/``max`` are the limit values (> 0); ``ln X ~ U(ln min, ln max)``."""

    name = "log_uniform_values"
    replaced_by = None

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max
        self._lo, self._hi = math.log(min), math.log(max)

    @classmethod
    def _check_range(cls, ck: Checker, lo: Any, hi: Any, path: str) -> bool:
        return _check_positive_min(ck, cls.name, lo, path)

    def bounds(self) -> tuple[float, float]:
        return float(self.min), float(self.max)


def _check_positive_min(ck: Checker, name: str, lo: Any, path: str) -> bool:
    if not lo > 0:
        ck.error(
            f"{path}.min",
            f"must be greater than 0 for {name}, which takes the limit values themselves (got {lo!r})",
        )
        return False
    return True


class QLogUniform(LogUniform):
    name = "q_log_uniform"
    defaults = {"q": 1.0}
    q: int | float
    replaced_by = "q_log_uniform_values"

    def __init__(self, min: float, max: float, q: float = 1.0) -> None:  # noqa: A002
        super().__init__(min, max)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)


class QLogUniformValues(LogUniformValues):
    name = "q_log_uniform_values"
    defaults = {"q": 1.0}
    q: int | float

    def __init__(self, min: float, max: float, q: float = 1.0) -> None:  # noqa: A002
        super().__init__(min, max)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)


class InvLogUniform(_Ranged):
    """Deprecated v1 form: ``ln(1/X) ~ U(min, max)``, so X lies in ``[e^-max, e^-min]``."""

    name = "inv_log_uniform"
    log_scale = True
    replaced_by: ClassVar[str | None] = "inv_log_uniform_values"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max
        self._lo, self._hi = float(min), float(max)  # bounds of ln(1/X)

    @classmethod
    def _check_range(cls, ck: Checker, lo: Any, hi: Any, path: str) -> bool:
        if lo < -709:
            ck.error(
                f"{path}.min",
                f"must be at least -709: {cls.name} takes exponents and e^-min overflows (got {lo!r})",
            )
            return False
        return True

    def ppf(self, u: float) -> float:
        # P(X <= x) = P(ln(1/X) >= ln(1/x)), so the u-quantile has ln(1/x) at the (1-u) point.
        return _exp(-(self._hi - u * (self._hi - self._lo)))

    def cdf(self, value: Any) -> float:
        return _clip01((self._hi + _log(value)) / (self._hi - self._lo))

    def bounds(self) -> tuple[float, float]:
        return float(math.exp(-self.max)), float(math.exp(-self.min))


class InvLogUniformValues(InvLogUniform):
    """``min``/``max`` are limit values: ``ln(1/X) ~ U(ln(1/max), ln(1/min))``."""

    name = "inv_log_uniform_values"
    replaced_by = None

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max
        self._lo, self._hi = -math.log(max), -math.log(min)

    @classmethod
    def _check_range(cls, ck: Checker, lo: Any, hi: Any, path: str) -> bool:
        return _check_positive_min(ck, cls.name, lo, path)

    def bounds(self) -> tuple[float, float]:
        return float(self.min), float(self.max)


class Normal(Distribution):
    """Normal(mu, sigma). Sampling uses the standard library's inverse CDF; bayes's array
    methods use scipy's, which differs in the last bits, and each is kept so that seeded
    suggestions stay what they were."""

    name = "normal"
    defaults = {"mu": 0.0, "sigma": 1.0}

    def __init__(self, mu: float = 0.0, sigma: float = 1.0) -> None:
        self.mu, self.sigma = float(mu), float(sigma)

    @property
    def is_fixed(self) -> bool:
        return self.sigma == 0

    def _normal_ppf(self, u: float) -> float:
        if self.sigma == 0:
            return self.mu
        u = min(max(u, _U_EPS), 1 - _U_EPS)
        return NormalDist(self.mu, self.sigma).inv_cdf(u)

    def _normal_cdf(self, x: float) -> float:
        if self.sigma == 0:
            return 0.0 if x < self.mu else 1.0
        return NormalDist(self.mu, self.sigma).cdf(x)

    def ppf(self, u: float) -> float:
        return self._normal_ppf(u)

    def cdf(self, value: Any) -> float:
        return self._normal_cdf(float(value))

    @cached_property
    def _rv(self) -> Any:
        from scipy import stats

        return stats.norm(loc=self.mu, scale=self.sigma)

    def cdf_array(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(self._rv.cdf(values), dtype=float)

    def ppf_array(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self._rv.ppf(u), dtype=float)


class QNormal(Normal):
    name = "q_normal"
    defaults = {"mu": 0.0, "sigma": 1.0, "q": 1.0}
    q: int | float

    def __init__(self, mu: float = 0.0, sigma: float = 1.0, q: float = 1.0) -> None:
        super().__init__(mu, sigma)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(self._normal_ppf(u), self.q)


class LogNormal(Normal):
    """``ln X ~ Normal(mu, sigma)``."""

    name = "log_normal"

    def ppf(self, u: float) -> float:
        return _exp(self._normal_ppf(u))

    def cdf(self, value: Any) -> float:
        return 0.0 if value <= 0 else self._normal_cdf(math.log(value))

    @cached_property
    def _rv(self) -> Any:
        from scipy import stats

        return stats.lognorm(s=self.sigma, scale=math.exp(self.mu))


class QLogNormal(LogNormal):
    name = "q_log_normal"
    defaults = {"mu": 0.0, "sigma": 1.0, "q": 1.0}
    q: int | float

    def __init__(self, mu: float = 0.0, sigma: float = 1.0, q: float = 1.0) -> None:
        super().__init__(mu, sigma)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)


class Beta(Distribution):
    """Beta(a, b) on [0, 1]. W&B allows ``a`` or ``b`` = 0: the limit is a point mass at 0 (a=0)
    or 1 (b=0), and a fair coin between them when both are 0."""

    name = "beta"
    defaults = {"a": 1.0, "b": 1.0}

    def __init__(self, a: float = 1.0, b: float = 1.0) -> None:
        self.a, self.b = float(a), float(b)

    @property
    def is_fixed(self) -> bool:
        return (self.a == 0) != (self.b == 0)

    def ppf_array(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        if self.a == 0 or self.b == 0:
            if self.a == self.b:
                return np.where(u < 0.5, 0.0, 1.0)
            return np.full(u.shape, 0.0 if self.a == 0 else 1.0)
        from scipy.special import betaincinv

        x = np.asarray(betaincinv(self.a, self.b, u), dtype=float)
        # a and b so small that scipy gives up: the distribution is then (up to float
        # precision) its limit, mass b/(a+b) at 0 and a/(a+b) at 1.
        return np.where(np.isnan(x), np.where(u < self.b / (self.a + self.b), 0.0, 1.0), x)

    def cdf_array(self, values: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(values, dtype=float), 0.0, 1.0)
        if self.a == 0 or self.b == 0:
            return x
        from scipy.special import betainc

        p = np.asarray(betainc(self.a, self.b, x), dtype=float)
        return np.where(np.isnan(p), x, p)

    def ppf(self, u: float) -> float:
        return float(self.ppf_array(np.array([u]))[0])

    def cdf(self, value: Any) -> float:
        return float(self.cdf_array(np.array([float(value)]))[0])

    def count(self) -> float:
        return 2 if self.a == self.b == 0 else super().count()


class QBeta(Beta):
    name = "q_beta"
    defaults = {"a": 1.0, "b": 1.0, "q": 1.0}
    q: int | float

    def __init__(self, a: float = 1.0, b: float = 1.0, q: float = 1.0) -> None:
        super().__init__(a, b)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    cls.name: cls
    for cls in (
        Constant, Categorical, CategoricalWithProbabilities, IntUniform, Uniform, QUniform,
        LogUniform, LogUniformValues, QLogUniform, QLogUniformValues, InvLogUniform,
        InvLogUniformValues, Normal, QNormal, LogNormal, QLogNormal, Beta, QBeta,
    )
}  # fmt: skip
"""Every distribution by its ``distribution`` name, in W&B's order."""


def make(spec: Mapping[str, Any]) -> Distribution:
    """The distribution of one normalised, non-nested parameter spec (:func:`normalise_parameters`'
    output: ``distribution`` is explicit and defaults are filled)."""
    dist = spec["distribution"]
    if dist == GROUP:
        raise ValueError("a nested parameter group has no distribution of its own; flatten it first")
    cls = DISTRIBUTIONS[dist]
    return cls(**{k: v for k, v in spec.items() if k not in ("distribution", "when")})


# --- the parameters section --------------------------------------------------------------------


def normalise_parameters(ck: Checker, params: Any, path: str = "parameters") -> dict[str, Any] | None:
    """The normalised ``parameters`` section: every spec with its ``distribution`` explicit and
    its defaults filled, nested groups at any depth.

    Accepts anything (a sweep config's plain data). Every problem is recorded in ``ck`` as one
    message naming its key path (``parameters.lr.min: must be less than max (got 0.1 >= 0.01)``),
    and a spec with a problem is left out, so the result is the section only while ``ck`` has no
    errors; None when ``params`` is not a mapping of at least one parameter.
    """
    if not isinstance(params, Mapping):
        ck.error(path, f"must be a mapping of parameter names to their specs (got {describe(params)})")
        return None
    if not params:
        ck.error(path, "must name at least one parameter")
        return None
    out: dict[str, Any] = {}
    for name, spec in params.items():
        if not _NAME_RE.fullmatch(name):
            ck.error(
                f"{path}.{name}",
                f"parameter name {name!r} is not allowed: a name starts with a letter or _ and "
                "holds only letters, digits, _, . and -",
            )
        normal = _normalise_spec(ck, spec, f"{path}.{name}")
        if normal is not None:
            out[name] = normal
    return out


_KINDS = (*DISTRIBUTIONS, GROUP)


def _spec_keys(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) keys of a spec of ``kind``, ``distribution`` aside."""
    if kind == GROUP:
        return ("parameters",), ()
    cls = DISTRIBUTIONS[kind]
    return cls.required, tuple(cls.defaults)


def _normalise_spec(ck: Checker, spec: Any, path: str) -> dict[str, Any] | None:
    if not isinstance(spec, Mapping):
        hint = ""
        if isinstance(spec, list):
            hint = "; for a list of choices write values: [...]"
        elif spec is None or isinstance(spec, (str, int, float, bool)):
            hint = "; for a constant write value: ..."
        ck.error(
            path,
            f"must be a mapping such as {{values: [1, 2]}} or {{min: 0, max: 1}} (got {describe(spec)}){hint}",
        )
        return None

    when = None
    if "when" in spec:  # a condition (sweepq.conditions), on any kind of spec
        from sweepq.conditions import normalise_when

        when = normalise_when(ck, spec["when"], f"{path}.when")
        spec = {k: v for k, v in spec.items() if k != "when"}
    normal = _normalise_kind(ck, spec, path)
    if normal is not None and when is not None:
        normal["when"] = when
    return normal


def _normalise_kind(ck: Checker, spec: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    explicit = "distribution" in spec
    if explicit:
        kind = spec["distribution"]
        if not isinstance(kind, str) or kind not in _KINDS:
            ck.error(
                f"{path}.distribution", f"unknown distribution {describe(kind)}{did_you_mean(kind, _KINDS)}"
            )
            return None
    else:
        inferred = _infer_distribution(ck, spec, path)
        if inferred is None:
            return None
        kind = inferred

    required, optional = _spec_keys(kind)
    n_errors = len(ck.errors)
    for key in spec:
        if key == "distribution" or key in required or key in optional:
            continue
        how = "" if explicit else " (inferred from its keys; set distribution to use other keys)"
        allowed = ", ".join((*required, *optional, "distribution", "when"))
        ck.error(
            f"{path}.{key}", f"is not a key of {article(kind)} {kind} parameter{how}; allowed: {allowed}"
        )
    missing = [key for key in required if key not in spec]
    if missing:
        ck.error(path, f"{article(kind)} {kind} parameter needs {' and '.join(missing)}")
    if len(ck.errors) > n_errors:
        return None

    if kind == GROUP:
        children = normalise_parameters(ck, spec["parameters"], f"{path}.parameters")
        return None if children is None else {"distribution": GROUP, "parameters": children}
    return DISTRIBUTIONS[kind].check(ck, spec, path, explicit)


def _infer_distribution(ck: Checker, spec: Mapping[str, Any], path: str) -> str | None:
    """W&B's inference (its schema's ``anyOf`` order) for a spec without ``distribution``."""
    if "parameters" in spec:
        return GROUP
    if "value" in spec and "values" in spec:
        ck.error(path, "give either value (a constant) or values (a list to choose from), not both")
        return None
    if "value" in spec:
        return Constant.name
    if "values" in spec:
        return CategoricalWithProbabilities.name if "probabilities" in spec else Categorical.name
    if "min" in spec and "max" in spec:
        return IntUniform.name if is_int(spec["min"]) and is_int(spec["max"]) else Uniform.name
    if "min" in spec or "max" in spec:
        have, missing = ("min", "max") if "min" in spec else ("max", "min")
        ck.error(path, f"has {have} but no {missing}")
        return None
    keys = ", ".join(map(str, spec)) or "none"
    ck.error(
        path,
        "cannot tell what kind of parameter this is: give value, values, min and max, "
        f"parameters, or a distribution (keys given: {keys})",
    )
    return None


# --- nested values -----------------------------------------------------------------------------


def flatten(parameters: Mapping[str, Any], prefix: ParamPath = (), *, sort: bool = True
            ) -> dict[ParamPath, dict[str, Any]]:  # fmt: skip
    """Leaf specs of a (normalised) ``parameters`` mapping, keyed by their path tuple.

    With ``sort`` (the default), keys are sorted at every level and a nested group sits at its
    parent's position, which is W&B's parameter order (grid varies the *last* path fastest);
    without it, the order is the config's own. Paths are tuples so that dotted leaf names such as
    ``input_layer.weight`` stay single components.
    """
    out: dict[ParamPath, dict[str, Any]] = {}
    for name in sorted(parameters) if sort else parameters:
        spec = parameters[name]
        if spec.get("distribution") == GROUP or ("distribution" not in spec and "parameters" in spec):
            out.update(flatten(spec["parameters"], (*prefix, name), sort=sort))
        else:
            out[(*prefix, name)] = spec
    return out


def unflatten(flat: Mapping[ParamPath, Any]) -> dict[str, Any]:
    """Nested values from ``{path: value}``: the shape a trial's ``params`` has."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


_MISSING = object()


def get_path(values: Any, path: ParamPath, default: Any = _MISSING) -> Any:
    """The value at ``path`` in nested ``values``; ``default`` (or ``KeyError``) when absent,
    including when a level on the way is not a mapping."""
    node: Any = values
    for part in path:
        if not (type(node) is dict or isinstance(node, Mapping)) or part not in node:
            if default is _MISSING:
                raise KeyError(path)
            return default
        node = node[part]
    return node
