"""One small class per W&B distribution, plus helpers for nested parameter specs.

Every distribution is defined by its inverse CDF: ``sample(rng)`` is ``ppf(u)`` of one uniform draw
``u`` in [0, 1), as in W&B, so random search and bayes (which proposes points in the unit cube and
decodes them with ``ppf``) mean the same thing. ``cdf`` is the inverse mapping used to encode a
trial's value for bayes (WANDB-COMPAT.md section 1.3, "Bayes encoding").

Where W&B has quirks, sweepq does not copy them (WANDB-COMPAT.md section 9 item 3):

* ``ppf(0)`` of a categorical is its *first* value and of an int_uniform its ``min`` (W&B: the
  last value and ``min - 1``); ``ppf`` and ``cdf`` round-trip for both.
* Categorical values are found by value, so falsy values (0, False, None, "") encode at their real
  position; ``True`` and ``1`` stay distinct, an integral float equals its int (as grid dedupe).
* ``categorical_w_probabilities`` encodes each value at the middle of its probability interval
  (W&B crashes on it in bayes).
* ``inv_log_uniform*`` have a ``ppf`` that increases with ``u`` (a true inverse CDF); the sampled
  distribution is W&B's.

What is copied exactly is ``q`` rounding: ``round(x / q) * q`` with round-half-to-even, and an
``int`` result only when ``q`` itself is an int (so the default ``q: 1.0`` gives ``8.0``). Like
W&B, the rounded value may lie up to ``q/2`` outside ``[min, max]`` and may carry float noise
(``0.6000000000000001`` for ``q: 0.1``).
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
from collections.abc import Iterator, Mapping
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "Distribution",
    "ParamPath",
    "canonical",
    "flatten",
    "get_path",
    "make",
    "searchable",
    "unflatten",
]

ParamPath = tuple[str, ...]
"""A parameter's place in a nested config: one component per level (dots inside a name stay)."""

_U_EPS = 2.0**-53
"""Unbounded distributions clamp u into [eps, 1 - eps] so that ppf never returns +-inf."""


def canonical(value: Any) -> Any:
    """A hashable stand-in for a JSON-like value, equal exactly when W&B's grid treats values as
    the same point: dicts regardless of key order, an integral float equal to its int
    (``3e6 == 3000000``), ``True != 1``, ``list != tuple``, NaN equal to NaN. (W&B hashes the
    YAML dump of the value; this is the same relation without the YAML round trip.)"""
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


class Distribution:
    """A parameter's distribution. Subclasses implement ``ppf`` and ``cdf``; ``sample`` is
    ``ppf`` of a uniform draw. ``grid()`` returns the values grid search enumerates, or ``None``
    where W&B's grid refuses the distribution."""

    name = ""
    searchable = True
    """False only for constants: nothing to search, excluded from bayes' space."""

    def sample(self, rng: np.random.Generator) -> Any:
        """One value drawn from the distribution."""
        return self.ppf(float(rng.random()))

    def ppf(self, u: float) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def cdf(self, value: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def grid(self) -> list[Any] | None:
        return None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Constant(Distribution):
    name = "constant"
    searchable = False

    def __init__(self, value: Any) -> None:
        self.value = value

    def ppf(self, u: float) -> Any:
        return copy.deepcopy(self.value)

    def cdf(self, value: Any) -> float:
        return 0.5

    def grid(self) -> list[Any]:
        return [copy.deepcopy(self.value)]


class Categorical(Distribution):
    """Uniform over ``values``; value i occupies ``(i/K, (i+1)/K]`` of the unit interval."""

    name = "categorical"

    def __init__(self, values: list[Any]) -> None:
        self.values = list(values)
        self._index: dict[Any, int] = {}
        for i, v in enumerate(self.values):
            self._index.setdefault(canonical(v), i)

    def index(self, value: Any) -> int:
        """Position of ``value`` in ``values`` (by value, see :func:`canonical`)."""
        try:
            return self._index[canonical(value)]
        except KeyError:
            raise ValueError(f"{value!r} is not one of the values {self.values!r}") from None

    def ppf(self, u: float) -> Any:
        k = len(self.values)
        i = min(max(math.ceil(u * k) - 1, 0), k - 1)
        return copy.deepcopy(self.values[i])

    def cdf(self, value: Any) -> float:
        return (self.index(value) + 1) / len(self.values)

    def grid(self) -> list[Any]:
        # Duplicates collapse to one point at the first one's position; the *later* object is
        # the one suggested (W&B: [1, 2, 1, 1.0] gives 1.0, 2).
        unique: dict[Any, Any] = {}
        for v in self.values:
            unique[canonical(v)] = v
        return [copy.deepcopy(v) for v in unique.values()]


class CategoricalWithProbabilities(Categorical):
    """``values`` drawn with ``probabilities``: the first index whose cumulative probability
    exceeds u. Not enumerable by grid (as W&B)."""

    name = "categorical_w_probabilities"

    def __init__(self, values: list[Any], probabilities: list[float]) -> None:
        super().__init__(values)
        self.probabilities = [float(p) for p in probabilities]
        self._cum = list(itertools.accumulate(self.probabilities))

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


class IntUniform(Distribution):
    """Integers ``min..max`` inclusive, each with probability ``1/(max-min+1)``."""

    name = "int_uniform"

    def __init__(self, min: int, max: int) -> None:  # noqa: A002 - W&B's key names
        self.min, self.max = int(min), int(max)

    def ppf(self, u: float) -> int:
        n = self.max - self.min + 1
        return self.min + min(max(math.ceil(u * n) - 1, 0), n - 1)

    def cdf(self, value: Any) -> float:
        return _clip01((value - self.min + 1) / (self.max - self.min + 1))

    def grid(self) -> list[int]:
        return list(range(self.min, self.max + 1))


class Uniform(Distribution):
    name = "uniform"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max

    def ppf(self, u: float) -> float:
        return float(self.min + u * (self.max - self.min))

    def cdf(self, value: Any) -> float:
        return _clip01((value - self.min) / (self.max - self.min))


class QUniform(Uniform):
    name = "q_uniform"

    def __init__(self, min: float, max: float, q: float = 1.0) -> None:  # noqa: A002
        super().__init__(min, max)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)

    def grid(self) -> list[Any]:
        # W&B enumerates numpy.arange(min, max, q): max excluded, float noise included
        # (0.001, 0.007, 0.013000000000000001, ...). Ints stay ints when min, max and q are ints.
        return np.arange(self.min, self.max, self.q).tolist()


class LogUniform(Distribution):
    """Deprecated v1 form: ``min``/``max`` are natural-log exponents; ``ln X ~ U(min, max)``."""

    name = "log_uniform"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max
        self._lo, self._hi = float(min), float(max)

    def ppf(self, u: float) -> float:
        return _exp(self._lo + u * (self._hi - self._lo))

    def cdf(self, value: Any) -> float:
        return _clip01((_log(value) - self._lo) / (self._hi - self._lo))


class LogUniformValues(LogUniform):
    """``min``/``max`` are the limit values (> 0); ``ln X ~ U(ln min, ln max)``."""

    name = "log_uniform_values"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max
        self._lo, self._hi = math.log(min), math.log(max)


class QLogUniform(LogUniform):
    name = "q_log_uniform"

    def __init__(self, min: float, max: float, q: float = 1.0) -> None:  # noqa: A002
        super().__init__(min, max)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)


class QLogUniformValues(LogUniformValues):
    name = "q_log_uniform_values"

    def __init__(self, min: float, max: float, q: float = 1.0) -> None:  # noqa: A002
        super().__init__(min, max)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)


class InvLogUniform(Distribution):
    """Deprecated v1 form: ``ln(1/X) ~ U(min, max)``, so X lies in ``[e^-max, e^-min]``."""

    name = "inv_log_uniform"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max
        self._lo, self._hi = float(min), float(max)  # bounds of ln(1/X)

    def ppf(self, u: float) -> float:
        # P(X <= x) = P(ln(1/X) >= ln(1/x)), so the u-quantile has ln(1/x) at the (1-u) point.
        return _exp(-(self._hi - u * (self._hi - self._lo)))

    def cdf(self, value: Any) -> float:
        return _clip01((self._hi + _log(value)) / (self._hi - self._lo))


class InvLogUniformValues(InvLogUniform):
    """``min``/``max`` are limit values: ``ln(1/X) ~ U(ln(1/max), ln(1/min))``."""

    name = "inv_log_uniform_values"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002
        self.min, self.max = min, max
        self._lo, self._hi = -math.log(max), -math.log(min)


class Normal(Distribution):
    name = "normal"

    def __init__(self, mu: float = 0.0, sigma: float = 1.0) -> None:
        self.mu, self.sigma = float(mu), float(sigma)

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


class QNormal(Normal):
    name = "q_normal"

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


class QLogNormal(LogNormal):
    name = "q_log_normal"

    def __init__(self, mu: float = 0.0, sigma: float = 1.0, q: float = 1.0) -> None:
        super().__init__(mu, sigma)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(super().ppf(u), self.q)


class Beta(Distribution):
    """Beta(a, b) on [0, 1]. W&B allows ``a`` or ``b`` = 0: the limit is a point mass at 0 (a=0)
    or 1 (b=0), and a fair coin between them when both are 0."""

    name = "beta"

    def __init__(self, a: float = 1.0, b: float = 1.0) -> None:
        self.a, self.b = float(a), float(b)

    def _beta_ppf(self, u: float) -> float:
        if self.a == 0 or self.b == 0:
            if self.a == self.b:
                return 0.0 if u < 0.5 else 1.0
            return 0.0 if self.a == 0 else 1.0
        from scipy.special import betaincinv

        x = float(betaincinv(self.a, self.b, u))
        if math.isnan(x):
            # a and b so small that scipy gives up: the distribution is then (up to float
            # precision) its limit, mass b/(a+b) at 0 and a/(a+b) at 1.
            return 0.0 if u < self.b / (self.a + self.b) else 1.0
        return x

    def ppf(self, u: float) -> float:
        return self._beta_ppf(u)

    def cdf(self, value: Any) -> float:
        if self.a == 0 or self.b == 0:
            return _clip01(float(value))
        from scipy.special import betainc

        p = float(betainc(self.a, self.b, _clip01(float(value))))
        return _clip01(float(value)) if math.isnan(p) else p


class QBeta(Beta):
    name = "q_beta"

    def __init__(self, a: float = 1.0, b: float = 1.0, q: float = 1.0) -> None:
        super().__init__(a, b)
        self.q = q

    def ppf(self, u: float) -> int | float:
        return _quantise(self._beta_ppf(u), self.q)


_CLASSES: dict[str, type[Distribution]] = {
    cls.name: cls
    for cls in (
        Constant, Categorical, CategoricalWithProbabilities, IntUniform, Uniform, QUniform,
        LogUniform, LogUniformValues, QLogUniform, QLogUniformValues, InvLogUniform,
        InvLogUniformValues, Normal, QNormal, LogNormal, QLogNormal, Beta, QBeta,
    )
}  # fmt: skip


def make(spec: Mapping[str, Any]) -> Distribution:
    """The distribution of one normalised, non-nested parameter spec (``config.validate``'s
    output: ``distribution`` is explicit and defaults are filled)."""
    dist = spec["distribution"]
    if dist == "param_dict":
        raise ValueError("a nested parameter group has no distribution of its own; flatten it first")
    cls = _CLASSES[dist]
    return cls(**{k: v for k, v in spec.items() if k != "distribution"})


def flatten(parameters: Mapping[str, Any], prefix: ParamPath = ()) -> dict[ParamPath, dict[str, Any]]:
    """Leaf specs of a (normalised) ``parameters`` mapping, keyed by their path tuple.

    Keys are sorted at every level and a nested group sits at its parent's position, which is
    W&B's parameter order (grid varies the *last* path fastest). Paths are tuples so that dotted
    leaf names such as ``input_layer.weight`` stay single components.
    """
    out: dict[ParamPath, dict[str, Any]] = {}
    for name in sorted(parameters):
        spec = parameters[name]
        if spec.get("distribution") == "param_dict" or (
            "distribution" not in spec and "parameters" in spec
        ):
            out.update(flatten(spec["parameters"], (*prefix, name)))
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


def get_path(values: Mapping[str, Any], path: ParamPath, default: Any = _MISSING) -> Any:
    """The value at ``path`` in nested ``values``; ``default`` (or ``KeyError``) when absent."""
    node: Any = values
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(path)
            return default
        node = node[part]
    return node


def searchable(parameters: Mapping[str, Any]) -> Iterator[tuple[ParamPath, Distribution]]:
    """``(path, distribution)`` of every leaf that varies (constants left out), in W&B's order."""
    for path, spec in flatten(parameters).items():
        dist = make(spec)
        if dist.searchable:
            yield path, dist
