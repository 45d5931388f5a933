"""Bayesian search (``method: bayes``): a Gaussian process on scikit-optimize, built for many workers.

This module is a pure strategy of ``(config, trials)``: everything it needs is in its arguments, so a
controller that restarts loses nothing. It is the only module of sweepq that imports scikit-optimize.

How it works (``docs/bayes.md`` has the reasoning and the measurements):

* **Space.** Every searched parameter becomes one scikit-optimize dimension whose ``normalize`` /
  ``onehot`` transform gives the model's features in [0, 1], placed where its distribution in
  :mod:`sweepq.params` says (bounds and scale, or its CDF; ``q`` rounding): ``Real`` for uniform and log
  families (log-uniform prior, so the GP works in log space), ``Integer`` for ``int_uniform``,
  ``Categorical`` over the *indices* of ``values`` (one-hot, so no false order, and any value,
  falsy or unhashable, is an ordinary category). Normal, log-normal and beta families are searched
  through their CDF, ``u = CDF(v)`` in ``[eps, 1 - eps]``, and decoded with ``ppf``, which keeps the
  user's prior as the scale of the search. ``q`` families search the continuous value and round it.
  Nested parameters are flattened to paths and re-nested on output.
* **Conditional parameters** (``when``). A parameter its trial's choices do not activate keeps
  its columns at a fixed place (``INACTIVE_AT``; no category), and each distinct condition adds a
  0/1 feature saying whether it holds: an absent dimension adds no noise and its length scale is
  fitted only on the trials that have it. Candidates are conditioned the same way and decoded
  without their inactive parameters; the cold start counts the largest branch's dimension.
* **Observations.** Finished trials give their best value over history and summary (as W&B);
  failed/crashed trials are imputed with ``metric.impute`` (``worst`` = the worst value any
  terminal trial logged); trials stopped early or canceled keep their *own* best value, because
  that is a real measurement (W&B imputes ``worst`` for them); nothing is ever imputed as ``0.0``.
* **Surrogate.** A GP with an ARD Matern-5/2 kernel (one-hot category columns' length scales
  bounded, so a category tried a few times in its bad region is not written off) on a robustly
  warped metric (log of the distance above the best value, in units of the best quarter's spread:
  the good values stay on a linear scale, a heavy tail of bad or diverged trials is compressed
  and cannot flatten the model). Kernel
  hyper-parameters are fitted by scikit-optimize's ``GaussianProcessRegressor`` on a schedule
  (every observation up to 10, then every 15 % growth) and memoised by a hash of the data they
  were fitted on, so the result is identical with a cold or a warm cache. Above ``MODEL_CAP``
  observations the GP sees the best half plus a farthest-point (space-filling) subset of the rest.
* **Pairs of scale parameters.** Where two log-scale parameters interact through their product or
  ratio (``C * gamma``, ``alpha / gamma``), the good region is a diagonal ridge in log space. The
  GP can take each pair's sum and difference in decades as extra features, and does so only where
  that raises the fit's marginal likelihood by more than ``PAIR_EVIDENCE`` nats.
* **Acquisition.** Log expected improvement, scored on a few thousand candidates: a Sobol pool,
  perturbations of the best observations, then perturbations of the best candidates.
* **Pending trials.** Queued and running trials (and earlier picks of the same batch) enter the GP
  as a kriging believer (the GP's own mean there: variance shrinks, nothing is invented), and
  each puts a soft hole of ``PENALTY_RADIUS`` length scales in the acquisition, so a batch spreads
  out instead of piling up next to one point. Constant lies (skopt's ``cl_*``) measured worse.
* **Fleets.** Past ``FLEET_IN_FLIGHT`` trials in flight the holes shrink to
  ``FLEET_PENALTY_RADIUS`` (wide holes around the many pending points near the incumbent fence
  the optimum off) and the best few candidates of each pick are polished by L-BFGS-B on the
  acquisition, with its analytic gradient, within a small box.
* **Cold start.** Until ``n_initial = clip(2 * dim, 5, 20)`` trials exist (and while fewer than
  two observations do), suggestions are
  maximin picks from a scrambled Sobol pool relative to all existing trials, which stays
  space-filling even with many suggestions in flight and without a shared seed.
* **Uniqueness.** No suggestion equals an existing trial or another suggestion of the batch; a
  finite space that is exhausted returns fewer suggestions (``[]`` at the end).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special, stats
from scipy.linalg import LinAlgError, cholesky, solve_triangular
from scipy.spatial.distance import cdist
from scipy.stats import qmc
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from skopt.space import Categorical, Dimension, Integer, Real

from sweepq import params
from sweepq.conditions import Conditions
from sweepq.model import FINAL_STATES, TrialState, finite_number
from sweepq.params import Distribution, flatten, get_path, make

__all__ = ["suggest", "suggest_with_info", "last_warnings", "MODEL_CAP", "LIE"]

# --- tunables (docs/bayes.md says which were measured and how) -------------------------------------------

#: Most observations the GP is conditioned on. Above it: best half + space-filling rest.
MODEL_CAP = 256
#: Most observations the kernel hyper-parameters are fitted on (same selection rule).
HYPER_CAP = 128
#: Iteration cap of each kernel hyper-parameter fit.
HYPER_MAXITER = 60
#: Most pending trials that enter the model (the most recent ones).
PENDING_CAP = 128
#: Value pending points are believed to have: "kb" (kriging believer: the GP mean there, measured
#: best), or a constant lie "mean" / "max" / "min" of the warped observations.
LIE = "kb"
#: What a trial stopped early (or canceled) counts as: "own" = the best value it logged (a real,
#: pessimistic measurement: it was stopped before it finished improving), "worst" = W&B's rule.
#: benchmarks/search_quality.py --stopping measures the two.
STOPPED_RULE = "own"
#: Radius (in kernel length scales) of the soft hole that each pending point puts in the acquisition.
PENALTY_RADIUS = 0.15
#: The radius when more than ``FLEET_IN_FLIGHT`` trials are in flight (pending ones plus this
#: call's picks). With 32 in flight, holes of 0.15 length scales around the pending points that
#: crowd the incumbent keep the next picks off the optimum (Hartmann-6 stalled at -3.304 of
#: -3.322); with the polish below, 0.01 gave the best medians over seeds 0-9 on both fleet
#: problems (docs/bayes.md, "32 trials in flight"). At 8 in flight 0.05 let 8 picks on 2-D Branin
#: come within 0.017 of each other, so small holes are for fleets.
FLEET_PENALTY_RADIUS = 0.01
FLEET_IN_FLIGHT = 16
#: How many of the best candidates of each pick are polished by L-BFGS-B on the (penalised)
#: acquisition, and how far each may move (in each continuous feature's [0, 1]): a local finish
#: of what the candidates found, with the analytic gradient, not a second global search. Only
#: past ``FLEET_IN_FLIGHT`` trials in flight: at 8 in flight it measured better on Hartmann-6 but
#: worse on the mixed space. A box of 0.15 rather than 0.05 reaches across a basin of Levy-10's
#: (median over seeds 0-9 at 32 in flight: 3.82 -> 2.07, with holes of 0.01).
POLISH = 3
POLISH_STEP = 0.15
POLISH_MAXITER = 20
#: Width of the CDF box for normal / log-normal / beta families (u in [eps, 1 - eps]).
CDF_EPS = 1e-3
#: Candidate counts of the acquisition search.
N_GLOBAL = 1024
N_LOCAL_CENTRES = 5
N_LOCAL_EACH = 128
N_REFINE_CENTRES = 8
N_REFINE_EACH = 48
#: Upper bound of the length scale of a one-hot category column. At 2.0, two categories are
#: correlated at most 0.70 (Matern-5/2 at distance sqrt(2)/2; 0.83 for a two-value parameter, one
#: column): a category borrows strength from the others but keeps its own uncertainty. Without a
#: bound (20) an undersampled category is written off (docs/bayes.md, "Categories").
CAT_LS_MAX = 2.0
#: Pairs of log-scale parameters get two extra model features: the sum and the difference of
#: their values in decades. Spaces with more log-scale parameters than this get none.
LOG_PAIRS_MAX = 4
#: The pair features are used only where they raise the kernel fit's log marginal likelihood by
#: more than this (nats; one per extra length scale): where two scale parameters do not interact,
#: they are irrelevant dimensions that slow convergence (docs/bayes.md, "Pairs of log-scale
#: parameters").
PAIR_EVIDENCE = 2.0

#: Where an inactive (absent) numeric parameter sits in the model's [0, 1] features.
INACTIVE_AT = 0.5
#: Whether each distinct condition gets an activity-indicator feature of its own.
INDICATORS = True

#: Warnings of the most recent call in this process (``suggest_with_info`` returns them too).
last_warnings: list[str] = []


# --- the search space ---------------------------------------------------------------------------


@dataclass
class _Param:
    """One searched parameter: its distribution, its skopt dimension, and value-level encode/decode."""

    path: tuple[str, ...]
    dist: Distribution
    dim: Dimension
    #: float values -> points of ``dim`` (before skopt's transform), NaN where not valid.
    to_dim: Callable[[np.ndarray], np.ndarray]
    #: points of ``dim`` (an array) -> the values trials get (a list of Python values).
    from_dim: Callable[[np.ndarray], list[Any]]
    #: probabilities of categories (categorical only), used to draw candidates.
    probs: np.ndarray | None = None
    #: columns of the feature matrix.
    cols: slice = field(default_factory=lambda: slice(0, 0))

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def is_categorical(self) -> bool:
        return isinstance(self.dim, Categorical)

    @property
    def is_discrete(self) -> bool:
        return isinstance(self.dim, Integer | Categorical) or self.dist.q is not None

    def encode(self, values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Values (one per trial) -> (feature columns (n, n_cols), valid mask (n,)).

        Vectorised per parameter: a controller calls this on every trial of the sweep, every time.
        """
        n = len(values)
        width = self.dim.transformed_size
        out = np.zeros((n, width))
        if isinstance(self.dist, params.Categorical):
            find = self.dist.find
            idx = np.fromiter((find(v) for v in values), dtype=int, count=n)
            return self.onehot(idx), idx >= 0
        raw = np.fromiter((_num_or_nan(v) for v in values), dtype=float, count=n)
        pts = self.to_dim(raw)
        ok = np.isfinite(pts)
        if ok.any():
            out[ok, 0] = np.asarray(self.dim.transform(pts[ok]), dtype=float).reshape(-1)
        return out, ok

    def onehot(self, idx: np.ndarray) -> np.ndarray:
        """Category indices -> skopt's one-hot columns (two categories: one 0/1 column); -1 -> 0s."""
        width = self.dim.transformed_size
        out = np.zeros((len(idx), width))
        if width == 1:
            out[:, 0] = idx == 1
        else:
            ok = idx >= 0
            out[np.flatnonzero(ok), idx[ok]] = 1.0
        return out

    def decode(self, cols: np.ndarray) -> list[Any]:
        """Feature columns (n, n_cols) -> values."""
        if self.is_categorical:
            if cols.shape[1] == 1:  # skopt encodes two categories as one 0/1 column
                idx = (cols[:, 0] > 0.5).astype(int)
            else:
                idx = np.argmax(cols, axis=1)
            return self.from_dim(idx)
        pts = self.dim.inverse_transform(np.clip(cols[:, 0], 0.0, 1.0))
        return self.from_dim(np.atleast_1d(np.asarray(pts, dtype=float)))

    def snap(self, cols: np.ndarray) -> np.ndarray:
        """Move candidate features onto values this parameter can take (ints, q grids)."""
        if self.is_categorical or not self.is_discrete:
            return cols
        return self.encode(self.decode(cols))[0]


def _num_or_nan(v: Any) -> float:
    if type(v) is float or type(v) is int:  # the common case, fast
        return float(v)
    f = finite_number(v)
    return math.nan if f is None else f


def _canon(v: Any) -> str:
    """Canonical text of a JSON-like value (the key of the search-space cache)."""
    return json.dumps(v, sort_keys=True, default=repr)


def _make_param(path: tuple[str, ...], dist: Distribution) -> _Param:
    """The dimension of one distribution that varies (``not dist.is_fixed``).

    The distribution says where to search (``bounds``, ``log_scale``) or, without bounds, how to
    search through its CDF; and how a point becomes a value (``snap``). Categories are searched
    by their index, one-hot.
    """
    if isinstance(dist, params.Categorical):
        values = dist.values
        return _Param(
            path,
            dist,
            Categorical(list(range(len(values))), transform="onehot"),
            to_dim=lambda a: a,
            from_dim=lambda idx: [copy.deepcopy(values[int(i)]) for i in idx],
            probs=dist.weights(),
        )
    if isinstance(dist, params.IntUniform):
        lo, hi = dist.min, dist.max
        return _Param(
            path,
            dist,
            Integer(lo, hi, transform="normalize"),
            to_dim=lambda a: np.clip(np.round(a), lo, hi),
            from_dim=dist.snap,
        )
    bounds = dist.bounds()
    if bounds is not None:
        lo_f, hi_f = bounds
        if dist.log_scale:
            return _Param(
                path,
                dist,
                Real(lo_f, hi_f, prior="log-uniform", transform="normalize"),
                to_dim=lambda a: np.where(a > 0, np.clip(a, lo_f, hi_f), np.nan),
                from_dim=dist.snap,
            )
        return _Param(
            path,
            dist,
            Real(lo_f, hi_f, transform="normalize"),
            to_dim=lambda a: np.clip(a, lo_f, hi_f),
            from_dim=dist.snap,
        )
    eps = CDF_EPS
    return _Param(
        path,
        dist,
        Real(eps, 1 - eps, transform="normalize"),
        to_dim=lambda a: np.clip(dist.cdf_array(a), eps, 1 - eps),
        from_dim=lambda u: dist.snap(dist.ppf_array(u)),
    )


class _Space:
    """The flattened search space of a normalised config."""

    def __init__(self, parameters: Mapping[str, Any]):
        self.params: list[_Param] = []
        self.constants: list[tuple[tuple[str, ...], Any]] = []
        for path, spec in flatten(parameters).items():
            dist = make(spec)
            if dist.is_fixed:
                self.constants.append((path, dist.ppf(0.5)))
            else:
                self.params.append(_make_param(path, dist))
        start = 0
        for p in self.params:
            width = p.dim.transformed_size
            p.cols = slice(start, start + width)
            start += width
        self.cond = Conditions(parameters)
        #: one activity-indicator feature per distinct condition (conditional spaces only)
        self.indicators: list[tuple[tuple[str, ...], int]] = []
        if self.cond:
            by_rules: dict[Any, int] = {}
            for p in self.params:
                rules = self.cond.rules.get(p.path)
                if rules is not None and INDICATORS and rules not in by_rules:
                    by_rules[rules] = start + len(by_rules)
                    self.indicators.append((p.path, by_rules[rules]))
            start += len(by_rules)
            self._prepare_conditions()
        self.n_features = start
        #: the most searched parameters active together: the largest branch's dimension
        self.active_dim = (
            self.cond.max_active(within={p.path for p in self.params}) if self.cond else len(self.params)
        )
        self._size: float | None = None
        #: per-feature weight for distances: a category change counts 1, like a full-range move.
        self.dist_weight = np.ones(self.n_features)
        #: one-hot category columns (their kernel length scale is bounded by CAT_LS_MAX)
        self.cat_mask = np.zeros(self.n_features, dtype=bool)
        for p in self.params:
            if p.is_categorical:
                self.cat_mask[p.cols] = True
                if p.cols.stop - p.cols.start > 1:
                    self.dist_weight[p.cols] = 1 / math.sqrt(2)
        searched = np.ones(self.n_features, dtype=bool)
        searched[[col for _, col in self.indicators]] = False  # set from activity, never searched
        self.numeric_cols = np.flatnonzero(~self.cat_mask & searched)
        discrete = np.zeros(self.n_features, dtype=bool)
        for p in self.params:
            discrete[p.cols] = p.is_discrete
        #: numeric columns that take any value in [0, 1] (not int, not ``q``): what the polish moves
        self.continuous_cols = np.flatnonzero(~self.cat_mask & searched & ~discrete)
        logs = [
            p
            for p in self.params
            if isinstance(p.dim, Real)
            and p.dim.prior == "log-uniform"
            and p.dim.high > p.dim.low
            and p.path not in self.cond.rules  # a pair feature of an absent value means nothing
        ]
        #: (column a, column b, decades of a, decades of b) per pair of log-scale parameters
        self.log_pairs: list[tuple[int, int, float, float]] = []
        if 2 <= len(logs) <= LOG_PAIRS_MAX:
            for i, a in enumerate(logs):
                for b in logs[i + 1 :]:
                    self.log_pairs.append(
                        (
                            a.cols.start,
                            b.cols.start,
                            math.log10(a.dim.high / a.dim.low),
                            math.log10(b.dim.high / b.dim.low),
                        )
                    )
        #: category mask of the model's features (``model_features``: the extra ones are numeric)
        self.model_cat_mask = np.concatenate([self.cat_mask, np.zeros(2 * len(self.log_pairs), dtype=bool)])

    # --- conditional spaces ------------------------------------------------------------------

    def _prepare_conditions(self) -> None:
        """Per leaf, its rules as (parent's searched index or None, allowed category indices or
        a fixed truth value), for :meth:`activity` to evaluate on feature rows."""
        index = {p.path: i for i, p in enumerate(self.params)}
        fixed = dict(self.constants)
        self._rules: list[tuple[tuple[str, ...], list[tuple[tuple[str, ...], int | None, Any]]]] = []
        for path in self.cond.order:
            rules: list[tuple[tuple[str, ...], int | None, Any]] = []
            for parent, allowed in self.cond.rules.get(path, ()):
                j = index.get(parent)
                if j is None:  # a constant (or a one-value categorical): the rule is fixed
                    rules.append((parent, None, params.canonical(fixed.get(parent)) in allowed))
                else:
                    values = self.params[j].dist.values  # type: ignore[attr-defined]
                    ok = np.array([params.canonical(v) in allowed for v in values], dtype=bool)
                    rules.append((parent, j, ok))
            self._rules.append((path, rules))
        self._index = index

    def activity(self, X: np.ndarray) -> np.ndarray:
        """(n, n_params) bool: which searched parameters each feature row activates, decided
        parents first from the category columns of the parents."""
        n = len(X)
        act: dict[tuple[str, ...], np.ndarray] = {}
        for path, rules in self._rules:
            a = np.ones(n, dtype=bool)
            for parent, j, ok in rules:
                a &= act[parent]
                if j is None:
                    a &= bool(ok)
                else:
                    p = self.params[j]
                    cols = X[:, p.cols]
                    idx = (cols[:, 0] > 0.5).astype(int) if cols.shape[1] == 1 else np.argmax(cols, axis=1)
                    a &= ok[idx]
            act[path] = a
        return np.stack([act[p.path] for p in self.params], axis=1) if self.params else np.zeros((n, 0), bool)

    def condition(self, X: np.ndarray, act: np.ndarray | None = None) -> np.ndarray:
        """Rows as the model sees them (in place): an inactive parameter's columns hold a fixed
        value (``INACTIVE_AT`` for numbers, no category for categories), and each condition's
        indicator column says whether it holds. So two trials that differ only in a value they
        do not use are the same point, and an absent dimension adds no noise to the model."""
        if not self.cond or not len(X):
            return X
        act = self.activity(X) if act is None else act
        for i, p in enumerate(self.params):
            off = ~act[:, i]
            if off.any():
                X[np.flatnonzero(off), p.cols] = 0.0 if p.is_categorical else INACTIVE_AT
        for path, col in self.indicators:
            X[:, col] = act[:, self._index[path]]
        return X

    @property
    def dim(self) -> int:
        return len(self.params)

    def size(self) -> float:
        """Number of distinct points (inf unless every parameter is discrete)."""
        if self.cond:  # counted over the parents' choices once: the space is cached
            if self._size is None:
                self._size = self.cond.count({p.path: p.dist.count() for p in self.params})
            return self._size
        total = 1.0
        for p in self.params:
            total *= p.dist.count()
            if math.isinf(total):
                return math.inf
        return total

    def encode_trials(self, params_list: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Trials' nested params -> (features (n, F), valid mask (n,))."""
        n = len(params_list)
        X = np.zeros((n, self.n_features))
        ok = np.ones(n, dtype=bool)
        invalid: list[np.ndarray] = []
        for p in self.params:
            if len(p.path) == 1:  # top-level names, the common case: one dict lookup per trial
                name = p.path[0]
                raw = [
                    d.get(name, _MISSING) if type(d) is dict else get_path(d, p.path, _MISSING)
                    for d in params_list
                ]
            else:
                raw = [get_path(d, p.path, _MISSING) for d in params_list]
            raw = [_unwrap(v) if type(v) is dict else v for v in raw]
            cols, valid = p.encode(raw)
            X[:, p.cols] = cols
            if self.cond:
                invalid.append(~valid)
            else:
                ok &= valid
        if self.cond and self.params:
            act = self.activity(X)
            ok = ~(np.stack(invalid, axis=1) & act).any(axis=1)  # an absent value is fine if inactive
            self.condition(X, act)
        return X, ok

    def decode(self, x: np.ndarray) -> tuple[dict[str, Any], bytes]:
        """One feature row -> (nested params, key of the row the params encode to)."""
        flat: list[tuple[tuple[str, ...], Any]] = []
        row = np.zeros(self.n_features)
        act = self.activity(x[None, :])[0] if self.cond else None
        for i, p in enumerate(self.params):
            if act is not None and not act[i]:
                continue  # absent from this point
            v = p.decode(x[None, p.cols])[0]
            v = v.item() if isinstance(v, np.generic) else v
            flat.append((p.path, v))
            row[p.cols] = p.encode([v])[0][0]
        constants = self.constants
        if act is not None:
            self.condition(row[None, :])
            active = self.cond.prune({**dict(self.constants), **dict(flat)})
            constants = [(path, v) for path, v in self.constants if path in active]
        out: dict[str, Any] = {}
        for path, v in [*constants, *flat]:
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = copy.deepcopy(v)
        return out, _row_key(row)

    def snap(self, X: np.ndarray) -> np.ndarray:
        """Candidates moved onto points a trial can be: discrete values, absent values fixed."""
        for p in self.params:
            if p.is_discrete and not p.is_categorical:
                X[:, p.cols] = p.snap(X[:, p.cols])
        return self.condition(X)

    def random_categoricals(
        self, X: np.ndarray, rng: np.random.Generator, rows: np.ndarray | None = None, prob: float = 1.0
    ) -> None:
        """Draw the categorical columns of X (in place) from each parameter's probabilities."""
        rows = np.arange(len(X)) if rows is None else rows
        for p in self.params:
            if p.probs is None:  # not a categorical
                continue
            chg = rows[rng.random(len(rows)) < prob]
            if not len(chg):
                continue
            idx = rng.choice(len(p.probs), size=len(chg), p=p.probs)
            X[chg, p.cols] = p.onehot(idx)

    def model_features(self, X: np.ndarray) -> np.ndarray:
        """The GP's inputs: the features, plus the sum and difference in decades of each pair of
        log-scale parameters, each scaled to [0, 1].

        Why: two scale parameters often matter only through their product or ratio (an SVM's
        ``C * gamma``, a ridge's ``alpha / gamma``, ``lr * weight_decay``), so the good region is a
        diagonal ridge in log space; an axis-aligned ARD kernel needs many points to map a
        diagonal, while an extra feature along it gets a length scale of its own. Candidates,
        decoding and distances between trials stay in the parameters' own space.
        """
        if not self.log_pairs:
            return X
        X = np.atleast_2d(X)
        extra = np.empty((len(X), 2 * len(self.log_pairs)))
        for k, (ca, cb, ra, rb) in enumerate(self.log_pairs):
            a, b = X[:, ca] * ra, X[:, cb] * rb
            extra[:, 2 * k] = (a + b) / (ra + rb)
            extra[:, 2 * k + 1] = (a - b + rb) / (ra + rb)
        return np.hstack([X, extra])

    def sobol(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """m space-filling candidates (scrambled Sobol for numbers, probabilities for categories)."""
        X = np.zeros((m, self.n_features))
        nc = len(self.numeric_cols)
        if nc:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Sobol's "not a power of 2" balance warning
                X[:, self.numeric_cols] = qmc.Sobol(nc, scramble=True, seed=rng).random(m)
        self.random_categoricals(X, rng)
        return self.snap(X)


_MISSING = object()


def _row_key(row: np.ndarray) -> bytes:
    """Identity of a point: equal parameter values encode to equal (rounded) feature rows."""
    return np.round(row, 9).tobytes()


def _unwrap(value: dict[str, Any]) -> Any:
    """The value inside a W&B-style ``{"value": v}`` wrapper; any other dict as it is."""
    return value["value"] if len(value) == 1 and "value" in value else value


_SPACE_CACHE: OrderedDict[str, _Space] = OrderedDict()
_LOCK = threading.Lock()


def _space_for(parameters: Mapping[str, Any]) -> _Space:
    key = hashlib.sha1(_canon(parameters).encode()).hexdigest()
    with _LOCK:
        sp = _SPACE_CACHE.get(key)
        if sp is not None:
            _SPACE_CACHE.move_to_end(key)
            return sp
    sp = _Space(parameters)
    with _LOCK:
        _SPACE_CACHE[key] = sp
        while len(_SPACE_CACHE) > 64:
            _SPACE_CACHE.popitem(last=False)
    return sp


# --- observations -------------------------------------------------------------------------------


@dataclass
class _Data:
    X_obs: np.ndarray
    y_obs: np.ndarray  # minimised (sign flipped for maximize)
    X_pend: np.ndarray
    X_all: np.ndarray  # every trial with valid params (for space-filling distances)
    seen: set[bytes]
    n_trials: int
    warnings: list[str]


def _metric_values(trial: Mapping[str, Any]) -> list[float]:
    hist = trial.get("history") or []
    if all(type(h) is float for h in hist):  # the common case, fast
        finite = [h for h in hist if math.isfinite(h)]
        f = trial.get("metric")
        if type(f) is float:
            return finite + [f] if math.isfinite(f) else finite
        f = finite_number(f)
        return finite + [f] if f is not None else finite
    vals: list[float] = []
    for h in hist:
        f = finite_number(h)
        if f is not None:
            vals.append(f)
    f = finite_number(trial.get("metric"))
    if f is not None:
        vals.append(f)
    return vals


def _last_history_value(trial: Mapping[str, Any]) -> float | None:
    """The last finite value in the trial's history (its summary is not part of it)."""
    for h in reversed(trial.get("history") or []):
        f = finite_number(h)
        if f is not None:
            return f
    return None


def _collect(space: _Space, metric: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> _Data:
    """Turn trials into observations and pending points, by the documented imputation rule."""
    sign = -1.0 if metric.get("goal") == "maximize" else 1.0
    impute = metric.get("impute", "worst")
    while_running = str(metric.get("impute_while_running", "false")).lower()
    name = metric.get("name", "?")
    warn: list[str] = []

    X, ok = space.encode_trials([t.get("params") or {} for t in trials])
    seen = {x.tobytes() for x in np.round(X[ok], 9)}

    per: list[list[float]] = [[sign * v for v in _metric_values(t)] for t in trials]
    terminal_vals = [
        v for t, vs in zip(trials, per, strict=True) if t.get("state") in FINAL_STATES for v in vs
    ]
    worst = max(terminal_vals) if terminal_vals else None

    obs_idx: list[int] = []
    obs_y: list[float] = []
    pend_idx: list[int] = []
    n_unlogged = n_unimputable = n_bad_params = 0
    for i, (t, vs) in enumerate(zip(trials, per, strict=True)):
        state = t.get("state")
        if not ok[i]:
            n_bad_params += 1
            continue
        y: float | None = None
        if state == TrialState.FINISHED:
            if vs:
                y = min(vs)
            else:
                n_unlogged += 1  # includes NaN/inf only: a diverged run counts as the worst run
                y = worst
        elif state in (TrialState.FAILED, TrialState.CRASHED):
            if impute == "latest":  # W&B: the last valid *history* value, not the summary
                last = _last_history_value(t)
                own = None if last is None else sign * last
            else:
                own = min(vs) if vs and impute == "best" else None
            y = own if own is not None else worst
        elif state in (TrialState.STOPPED, TrialState.CANCELED):
            own_best = min(vs) if vs and STOPPED_RULE == "own" else None
            y = own_best if own_best is not None else (worst if state == TrialState.STOPPED else None)
        elif state == TrialState.RUNNING:
            if while_running in ("latest", "best", "worst") and vs:
                y = {"latest": vs[-1], "best": min(vs), "worst": max(vs)}[while_running]
            else:
                pend_idx.append(i)
                continue
        elif state == TrialState.QUEUED:
            pend_idx.append(i)
            continue
        else:
            continue
        if y is None:
            if state != TrialState.CANCELED:
                n_unimputable += 1
            continue
        obs_idx.append(i)
        obs_y.append(y)

    n_finished = sum(1 for t in trials if t.get("state") == TrialState.FINISHED)
    if n_finished and n_unlogged == n_finished and not terminal_vals:
        warn.append(
            f"metric '{name}' was never logged by any of the {n_finished} finished trials; "
            "bayes suggests space-filling points until it is (check the metric name)"
        )
    elif n_unlogged:
        warn.append(
            f"{n_unlogged} finished trial(s) logged no finite value of metric '{name}'; "
            "they count as the worst value seen"
        )
    if n_unimputable and terminal_vals:
        warn.append(f"{n_unimputable} trial(s) could not be imputed and are ignored by the model")
    if n_bad_params:
        warn.append(
            f"{n_bad_params} trial(s) have parameters outside the current search space; "
            "the model ignores them"
        )

    pend_idx = pend_idx[-PENDING_CAP:]
    return _Data(
        X_obs=X[obs_idx],
        y_obs=np.asarray(obs_y, dtype=float),
        X_pend=X[pend_idx],
        X_all=X[ok],
        seen=seen,
        n_trials=len(trials),
        warnings=warn,
    )


# --- the Gaussian process -----------------------------------------------------------------------


def _warp(y: np.ndarray) -> np.ndarray:
    """GP targets: log of the distance above the best value, in units of the good quarter's spread.

    ``z = log(1 + (y - min y) / s)`` with ``s = q25(y) - min y`` (the spread of the best quarter of
    the observations), then standardised. Why: loss surfaces are heavy-tailed (a diverged run at
    1e10 next to a plateau at 3e3 whose 1 % differences matter); any scale estimated from the
    whole sample, the IQR included, is set by the tail, and squashes the good values together,
    so the GP cannot tell the plateau's points apart and explores where the tail is. Measuring
    from the best value in units of the best quarter's spread keeps the good values on a linear
    scale of unit order and log-compresses everything far above it (a diverged run costs a few
    units, not thousands). Invariant to shifting and scaling the metric, monotone, and it keeps
    magnitudes (a rank transform does not, and converged worse on smooth problems).
    """
    y = np.asarray(y, dtype=float)
    lo = float(np.min(y))
    s = float(np.percentile(y, 25)) - lo
    if not s > 0:  # the best quarter is all ties: use the whole range
        s = float(np.max(y)) - lo
    if not s > 0:
        s = 1.0
    z = np.log1p((y - lo) / s)
    sd = float(np.std(z))
    return (z - z.mean()) / (sd if sd > 0 else 1.0)


def _select(X: np.ndarray, z: np.ndarray, cap: int) -> np.ndarray:
    """Indices of at most ``cap`` rows: the best half, then farthest-point picks from the rest.

    Why not W&B's 100 random rows with replacement: the best rows are where the optimum is and
    must be modelled exactly; the rest only need to cover the space so the GP knows which
    regions are bad. Deterministic, so hyper-parameter fits can be memoised.
    """
    n = len(z)
    if n <= cap:
        return np.arange(n)
    order = np.argsort(z, kind="stable")
    k_best = cap // 2
    chosen = list(order[:k_best])
    rest = order[k_best:]
    Xr = X[rest]
    d = cdist(Xr, X[chosen], "sqeuclidean").min(axis=1)
    for _ in range(cap - k_best):
        j = int(np.argmax(d))
        chosen.append(rest[j])
        d = np.minimum(d, ((Xr - Xr[j]) ** 2).sum(axis=1))
        d[j] = -1.0
    return np.sort(np.asarray(chosen))


def _refit_point(n: int) -> int:
    """Largest n' <= n at which kernel hyper-parameters are refitted (all n <= 10, then +15 %)."""
    if n <= 10:
        return n
    s = 10
    while True:
        nxt = max(s + 1, math.ceil(s * 1.15))
        if nxt > n:
            return s
        s = nxt


_HYPER_CACHE: OrderedDict[str, tuple[float, np.ndarray, float, float]] = OrderedDict()


def _fit_hyper(
    X_all: np.ndarray,
    y_all: np.ndarray,
    cat: np.ndarray | None = None,
    n_sel: int | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, np.ndarray, float, float]:
    """Kernel hyper-parameters (amplitude, ARD length scales, noise) and the log marginal
    likelihood they reach, fitted on the ``_select``-ed subset of these observations (selected by
    the first ``n_sel`` columns, so fits with and without extra features see the same rows).

    ``cat`` marks one-hot category columns, whose length scale is bounded by ``CAT_LS_MAX``: with
    a few trials of a category, all far from where it is good, "the category does not matter" fits
    as well as anything, and an unbounded length scale then copies the other categories'
    landscape onto it, so the model stops trying it (``docs/bayes.md``, "Categories").

    ``transform`` maps the values to the GP's targets (default :func:`_warp`; several objectives
    standardise instead).

    Memoised by a hash of the data, so a warm cache changes speed, never results.
    """
    d = X_all.shape[1]
    cat = np.zeros(d, dtype=bool) if cat is None else np.asarray(cat, dtype=bool)
    ls_bounds = np.tile([0.01, 20.0], (d, 1))
    ls_bounds[cat, 1] = CAT_LS_MAX
    # the bounds enter the key only where they differ from the default (the key also seeds the
    # fit's random restart, so spaces without categories keep their fits)
    extra = ls_bounds.tobytes() if cat.any() else b""
    if transform is not None:
        extra += transform.__name__.encode()
    key = hashlib.sha1(X_all.tobytes() + y_all.tobytes() + str(X_all.shape).encode() + extra).hexdigest()
    with _LOCK:
        hit = _HYPER_CACHE.get(key)
        if hit is not None:
            _HYPER_CACHE.move_to_end(key)
            return hit
    z_all = (transform or _warp)(y_all)
    idx = _select(X_all if n_sel is None else X_all[:, :n_sel], z_all, HYPER_CAP)
    X, z = X_all[idx], z_all[idx]
    kernel = ConstantKernel(1.0, (0.05, 20.0)) * Matern(
        length_scale=np.full(d, 0.3), length_scale_bounds=ls_bounds, nu=2.5
    ) + WhiteKernel(1e-3, (1e-6, 0.5))
    gp = GaussianProcessRegressor(
        kernel=kernel,
        normalize_y=False,
        optimizer=_lbfgs,
        # a random restart pays off in small spaces; with many features each costs too much
        n_restarts_optimizer=1 if d <= 10 else 0,
        random_state=int(key[:8], 16),
        noise=None,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(X, z)
        k = gp.kernel_
        amp = float(k.k1.k1.constant_value)
        ls = np.atleast_1d(np.asarray(k.k1.k2.length_scale, dtype=float))
        if ls.size == 1:
            ls = np.full(d, float(ls[0]))
        noise = float(k.k2.noise_level)
        out = (amp, ls, noise, float(gp.log_marginal_likelihood_value_))
    except (LinAlgError, ValueError, np.linalg.LinAlgError):
        out = (1.0, np.full(d, 0.3), 1e-3, -math.inf)
    with _LOCK:
        _HYPER_CACHE[key] = out
        while len(_HYPER_CACHE) > 512:
            _HYPER_CACHE.popitem(last=False)
    return out


def _fit_model(space: _Space, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, float, bool]:
    """Kernel hyper-parameters, and whether the model uses the log-pair features.

    The pair features enter only when they earn it: fitted with and without them on the same rows,
    they must raise the log marginal likelihood by more than ``PAIR_EVIDENCE``. Where two scale
    parameters do not interact they are irrelevant dimensions, and with them convergence near the
    optimum measured slower (docs/bayes.md, "Pairs of log-scale parameters").
    """
    amp, ls, noise, lml = _fit_hyper(X, y, space.cat_mask)
    if space.log_pairs:
        p_amp, p_ls, p_noise, p_lml = _fit_hyper(
            space.model_features(X), y, space.model_cat_mask, n_sel=space.n_features
        )
        if p_lml > lml + PAIR_EVIDENCE:
            return p_amp, p_ls, p_noise, True
    return amp, ls, noise, False


def _lbfgs(obj_func: Callable[..., Any], theta0: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
    """scikit-learn's L-BFGS-B, capped at HYPER_MAXITER iterations: the marginal likelihood is
    flat near its optimum, and the cap bounds the cost of a refit in many dimensions."""
    res = optimize.minimize(
        obj_func, theta0, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": HYPER_MAXITER}
    )
    return res.x, float(res.fun)


def _matern52(A: np.ndarray, B: np.ndarray, ls: np.ndarray, amp: float) -> np.ndarray:
    r = cdist(A / ls, B / ls)
    s5r = math.sqrt(5.0) * r
    return amp * (1.0 + s5r + (5.0 / 3.0) * r * r) * np.exp(-s5r)


class _Posterior:
    """GP posterior with fixed hyper-parameters that can absorb one more point in O(n * m).

    Why our own: skopt's ``predict(return_std=True)`` runs a three-operand einsum that costs
    ~10x a triangular solve; and batch picks (constant liar) must add points without refitting.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, amp: float, ls: np.ndarray, noise: float):
        self.amp, self.ls, self.noise = amp, ls, max(noise, 1e-6)
        K = _matern52(X, X, ls, amp)
        jitter = self.noise
        for _ in range(6):
            try:
                self.L = cholesky(K + jitter * np.eye(len(X)), lower=True)
                break
            except LinAlgError:
                jitter *= 10
        else:  # pragma: no cover - K + 1e0*I is always positive definite
            raise LinAlgError("kernel matrix not positive definite")
        self.jitter = jitter
        self.X = X
        self.w = solve_triangular(self.L, y, lower=True)
        self._alpha: np.ndarray | None = None

    def alpha(self) -> np.ndarray:
        """(K + jitter I)^-1 y, so that mu(x) = k(x)^T alpha (for gradients; cached until ``add``)."""
        if self._alpha is None:
            self._alpha = solve_triangular(self.L, self.w, lower=True, trans="T", check_finite=False)
        return self._alpha

    def project(self, C: np.ndarray) -> np.ndarray:
        """v = L^-1 k(X, C); cache it per candidate set and pass it to ``predict``/``add``."""
        return solve_triangular(
            self.L, _matern52(self.X, C, self.ls, self.amp), lower=True, check_finite=False
        )

    def predict(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu = v.T @ self.w
        var = np.maximum(self.amp - np.einsum("ij,ij->j", v, v), 1e-12)
        return mu, np.sqrt(var)

    def add(self, x: np.ndarray, y: float, vs: Iterable[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Condition on one more point; update each (candidates C, v) pair and return the new v's."""
        kx = _matern52(self.X, x[None, :], self.ls, self.amp)[:, 0]
        row = solve_triangular(self.L, kx, lower=True)
        d = math.sqrt(max(self.amp + self.jitter - float(row @ row), 1e-10))
        n = len(self.X)
        L = np.zeros((n + 1, n + 1))
        L[:n, :n] = self.L
        L[n, :n] = row
        L[n, n] = d
        self.L = L
        self.w = np.append(self.w, (y - float(row @ self.w)) / d)
        self.X = np.vstack([self.X, x])
        self._alpha = None
        out = []
        for C, v in vs:
            kc = _matern52(x[None, :], C, self.ls, self.amp)[0]
            out.append(np.vstack([v, (kc - row @ v) / d]))
        return out


def _log_h(z: np.ndarray) -> np.ndarray:
    """log h(z), h(z) = phi(z) + z Phi(z) (EI in units of sd), stable far into the tail."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    hi = z > -6.0
    zh = z[hi]
    out[hi] = np.log(np.maximum(stats.norm.pdf(zh) + zh * stats.norm.cdf(zh), 1e-300))
    zl = z[~hi]
    # h(z) = phi(z) + z Phi(z) ~ phi(z) / z^2 (1 - 3 / z^2) for z -> -inf
    out[~hi] = -0.5 * zl * zl - 0.5 * math.log(2 * math.pi) - 2 * np.log(-zl) + np.log1p(-3 / (zl * zl))
    return out


def _log_ei(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """log E[max(best - f, 0)], stable far into the tail (plain EI underflows to 0 there)."""
    return _log_h((best - mu) / sd) + np.log(sd)


def _log_ei_grad(
    post: _Posterior,
    xf: np.ndarray,
    best: float,
    pending: np.ndarray,
    ls_pen: np.ndarray,
    radius: float,
) -> tuple[float, np.ndarray]:
    """The penalised log EI at one point of the model's features, and its gradient there.

    Analytic: mu = k^T alpha and var = amp - |L^-1 k|^2, so both need only dk/dx, which for
    Matern-5/2 is -(5/3) amp (1 + sqrt5 r) exp(-sqrt5 r) (x - X_i) / ls^2; and
    d log h / dz = Phi(z) / h(z). A finite-difference gradient costs d + 1 predictions per step.
    """
    ls2 = post.ls * post.ls
    diff = xf[None, :] - post.X
    r = np.sqrt(np.maximum(((diff * diff) / ls2).sum(axis=1), 0.0))
    s5r = math.sqrt(5.0) * r
    e = np.exp(-s5r)
    k = post.amp * (1.0 + s5r + (5.0 / 3.0) * r * r) * e
    dk = (-(5.0 / 3.0) * post.amp * (1.0 + s5r) * e)[:, None] * diff / ls2
    v = solve_triangular(post.L, k, lower=True, check_finite=False)
    mu = float(v @ post.w)
    var = post.amp - float(v @ v)
    dmu = dk.T @ post.alpha()
    if var > 1e-12:
        u = solve_triangular(post.L, v, lower=True, trans="T", check_finite=False)
        sd = math.sqrt(var)
        dsd = -(dk.T @ u) / sd
    else:
        sd, dsd = 1e-6, np.zeros_like(xf)
    z = (best - mu) / sd
    logh = float(_log_h(np.array([z]))[0])
    ratio = math.exp(float(special.log_ndtr(z)) - logh)  # Phi(z) / h(z)
    val = logh + math.log(sd)
    grad = ratio * (-dmu - z * dsd) / sd + dsd / sd
    if len(pending):
        dp = xf[None, :] - pending
        q = np.exp(-((dp * dp) / (ls_pen * ls_pen)).sum(axis=1) / (2 * radius**2))
        val += float(np.log1p(-q + 1e-12).sum())
        grad = grad + ((q / (1.0 - q + 1e-12))[:, None] * dp / (ls_pen * ls_pen)).sum(axis=0) / radius**2
    return val, grad


def _polish(
    space: _Space,
    starts: np.ndarray,
    post: _Posterior,
    best: float,
    pending: Sequence[np.ndarray],
    ls_pen: np.ndarray,
    radius: float,
    mf: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """The best candidates moved uphill on the penalised log EI by L-BFGS-B, each within a box of
    ``POLISH_STEP`` around where it started (continuous features only: an integer or ``q``
    column moved by a few hundredths snaps back or jumps a step the gradient knows nothing of).

    Why: random moves leave a pick a few hundredths from where the acquisition peaks, and near the
    optimum those hundredths are the remaining regret (Hartmann-6 stalled at -3.317 of -3.322).
    Bounded, the optimiser only finishes what the candidates found; it does not climb to
    exploratory peaks of high variance elsewhere.
    """
    nc = space.continuous_cols
    if not len(nc) or not len(starts):
        return np.zeros((0, space.n_features))
    # model_features is affine: its Jacobian maps the gradient back to the parameters' features
    zero = mf(np.zeros((1, space.n_features)))[0]
    J = mf(np.eye(space.n_features)) - zero
    P = np.asarray(pending) if len(pending) else np.zeros((0, len(zero)))
    out = []
    for x0 in starts:
        cols = nc
        if space.cond:  # an absent parameter's columns are fixed: nothing to polish there
            act = space.activity(x0[None, :])[0]
            on = np.zeros(space.n_features, dtype=bool)
            for i, p in enumerate(space.params):
                on[p.cols] = act[i]
            cols = nc[on[nc]]
            if not len(cols):
                continue

        def f(u: np.ndarray, x0: np.ndarray = x0, cols: np.ndarray = cols) -> tuple[float, np.ndarray]:
            x = x0.copy()
            x[cols] = u
            val, g = _log_ei_grad(post, zero + x @ J, best, P, ls_pen, radius)
            return -val, -(J[cols] @ g)

        lo = np.clip(x0[cols] - POLISH_STEP, 0.0, 1.0)
        hi = np.clip(x0[cols] + POLISH_STEP, 0.0, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = optimize.minimize(
                f,
                x0[cols],
                jac=True,
                method="L-BFGS-B",
                bounds=list(zip(lo, hi, strict=True)),
                options={"maxiter": POLISH_MAXITER},
            )
        x = x0.copy()
        x[cols] = np.clip(res.x, lo, hi)
        out.append(x)
    return space.snap(np.asarray(out)) if out else np.zeros((0, space.n_features))


def _log_penalty(
    C: np.ndarray, points: Sequence[np.ndarray], ls: np.ndarray, radius: float | None = None
) -> np.ndarray:
    """log prod_j (1 - exp(-r_j^2 / (2 rho^2))), r_j = length-scale distance of C to point j,
    rho = ``radius`` (default ``PENALTY_RADIUS``)."""
    if not len(points):
        return np.zeros(len(C))
    rho = PENALTY_RADIUS if radius is None else radius
    r2 = cdist(C / ls, np.asarray(points) / ls, "sqeuclidean")
    return np.log1p(-np.exp(-r2 / (2 * rho**2)) + 1e-12).sum(axis=1)


def penalty_radius(in_flight: int) -> float:
    """The soft holes' radius for a call that leaves ``in_flight`` trials pending (those already
    pending plus its own picks): ``FLEET_PENALTY_RADIUS`` past ``FLEET_IN_FLIGHT``."""
    return FLEET_PENALTY_RADIUS if in_flight > FLEET_IN_FLIGHT else PENALTY_RADIUS


# --- candidate search ---------------------------------------------------------------------------


def _perturb(
    space: _Space,
    centres: np.ndarray,
    each: int,
    scales: Sequence[float],
    rng: np.random.Generator,
    cat_prob: float,
) -> np.ndarray:
    """Gaussian moves of the numeric features of each centre (a random subset of dims per move)."""
    if not len(centres):
        return np.zeros((0, space.n_features))
    C = np.repeat(centres, each, axis=0)
    nc = space.numeric_cols
    if len(nc):
        sd = rng.choice(np.asarray(scales), size=(len(C), 1))
        p_dim = min(1.0, max(0.3, 3.0 / len(nc)))
        mask = rng.random((len(C), len(nc))) < p_dim
        mask[np.arange(len(C)), rng.integers(0, len(nc), len(C))] = True
        C[:, nc] = np.clip(C[:, nc] + mask * rng.normal(0.0, 1.0, (len(C), len(nc))) * sd, 0.0, 1.0)
    space.random_categoricals(C, rng, prob=cat_prob)
    return space.snap(C)


def _maximin_pick(space: _Space, existing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A pool point far from every existing trial (and from the box edges, to avoid corners)."""
    pool = space.sobol(256 if space.n_features <= 8 else 512, rng)
    if not len(existing):
        return pool[0]
    w = space.dist_weight
    d = cdist(pool * w, existing * w).min(axis=1)
    nc = space.numeric_cols
    if len(nc):
        edge = np.minimum(pool[:, nc], 1.0 - pool[:, nc]).min(axis=1)
        d = np.minimum(d, 2.0 * edge + 0.5 / math.sqrt(len(nc) + 1))
    return pool[int(np.argmax(d + 1e-9 * rng.random(len(d))))]


# --- the strategy -------------------------------------------------------------------------------


def n_initial(space_dim: int) -> int:
    """Trials suggested space-filling before the model takes over."""
    return int(min(max(5, 2 * space_dim), 20))


def _rng(seed: int | None, n_trials: int) -> np.random.Generator:
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, n_trials, 0xBA7E5])


def suggest_with_info(
    config: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], n: int = 1, seed: int | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Like :func:`suggest`, and also return ``{"warnings": [...], "phase": ..., "predicted": [...]}``.

    ``warnings`` are user-facing lines for the sweep's status (e.g. a metric never logged);
    ``phase`` is ``"space-filling"`` or ``"model"``; ``predicted`` holds, per suggestion in model
    phase, the GP's mean and std of the metric in the user's units and sign.
    """
    metric = config.get("metric")
    if isinstance(metric, list):  # several objectives: expected hypervolume improvement
        from sweepq.search import _bayes_mo

        return _bayes_mo.suggest_with_info(config, trials, n, seed)
    if not isinstance(metric, Mapping) or not metric.get("name"):
        raise ValueError("metric: bayes search needs a metric with a name")
    space = _space_for(config.get("parameters") or {})
    rng = _rng(seed, len(trials))
    data = _collect(space, metric, trials)
    info: dict[str, Any] = {"warnings": data.warnings, "phase": "space-filling", "predicted": []}

    if not space.params:
        # Only constants: one point, so exhausted once any trial exists.
        return ([] if trials or n < 1 else [space.decode(np.zeros(0))[0]]), info

    limit = space.size()
    out: list[dict[str, Any]] = []
    seen = set(data.seen)
    y = data.y_obs
    n_obs = len(y)
    degenerate = n_obs >= 2 and float(np.ptp(y)) == 0.0
    if degenerate:
        info["warnings"].append(
            f"all {n_obs} observed values of '{metric.get('name')}' are equal; the model cannot rank "
            "points, so bayes suggests space-filling points"
        )
    use_model = (
        n_obs >= 2
        and not degenerate
        and (data.n_trials >= n_initial(space.active_dim) or n_obs >= n_initial(space.active_dim))
    )

    if not use_model:
        return _space_filling(space, data.X_all, n, seen, rng), info

    info["phase"] = "model"
    z = _warp(y)
    # Hyper-parameters: fitted at a scheduled data size on the first observations, so repeated
    # calls between refit points reuse them (memoised), and an empty cache gives the same answer.
    n_fit = _refit_point(n_obs)
    amp, ls, noise, pairs = _fit_model(space, data.X_obs[:n_fit], y[:n_fit])
    mf: Callable[[np.ndarray], np.ndarray] = space.model_features if pairs else np.asarray
    pend_f = mf(data.X_pend)  # pending trials as the model sees them

    idx = _select(data.X_obs, z, MODEL_CAP)
    Xm, zm = data.X_obs[idx], z[idx]
    lie = {"max": float(np.max(zm)), "mean": float(np.mean(zm)), "min": float(np.min(zm))}.get(LIE)
    if lie is None:  # kriging believer: each pending point believes the current GP mean there
        post = _Posterior(mf(Xm), zm, amp, ls, noise)
        for xp in pend_f:
            mu_p, _ = post.predict(post.project(xp[None, :]))
            post.add(xp, float(mu_p[0]), [])
    else:
        X_train = np.vstack([Xm, data.X_pend]) if len(data.X_pend) else Xm
        y_train = np.concatenate([zm, np.full(len(data.X_pend), lie)])
        post = _Posterior(mf(X_train), y_train, amp, ls, noise)
    best = float(np.min(zm))

    # Stage 1 candidates: global Sobol pool + moves around the best observations.
    centres = Xm[np.argsort(zm, kind="stable")[:N_LOCAL_CENTRES]]
    C1 = np.vstack(
        [
            space.sobol(N_GLOBAL, rng),
            _perturb(space, centres, N_LOCAL_EACH, (0.005, 0.02, 0.08), rng, cat_prob=0.15),
        ]
    )
    C1f = mf(C1)
    v1 = post.project(C1f)
    # Kriging believer alone lets a batch pile up next to one promising point (W&B's failure);
    # a soft hole around each pending point, in length-scale units, keeps picks apart.
    ls_eff = np.minimum(ls, 1.0)
    pending = list(pend_f)
    # A fleet (many trials in flight) gets smaller holes and the polish; see FLEET_IN_FLIGHT.
    in_flight = len(pend_f) + max(n, 0)
    radius = penalty_radius(in_flight)
    polish = POLISH if in_flight > FLEET_IN_FLIGHT else 0
    pen1 = _log_penalty(C1f, pending, ls_eff, radius)

    for _ in range(max(n, 0)):
        if len(seen) >= limit:
            break
        mu1, sd1 = post.predict(v1)
        a1 = _log_ei(mu1, sd1, best) + pen1
        top = C1[np.argsort(-a1)[:N_REFINE_CENTRES]]
        C2 = _perturb(space, top, N_REFINE_EACH, (0.002, 0.008, 0.03), rng, cat_prob=0.05)
        C2f = mf(C2)
        v2 = post.project(C2f)
        mu2, sd2 = post.predict(v2)
        a2 = _log_ei(mu2, sd2, best) + _log_penalty(C2f, pending, ls_eff, radius)
        C = np.vstack([C1, C2])
        a = np.concatenate([a1, a2])
        mu = np.concatenate([mu1, mu2])
        sd = np.concatenate([sd1, sd2])
        if polish:
            C3 = _polish(space, C[np.argsort(-a)[:polish]], post, best, pending, ls_eff, radius, mf)
            C3f = mf(C3)
            mu3, sd3 = post.predict(post.project(C3f))
            a3 = _log_ei(mu3, sd3, best) + _log_penalty(C3f, pending, ls_eff, radius)
            C, a = np.vstack([C, C3]), np.concatenate([a, a3])
            mu, sd = np.concatenate([mu, mu3]), np.concatenate([sd, sd3])
        chosen = None
        for j in np.argsort(-a)[:256]:
            params, key = space.decode(C[j])
            if key not in seen:
                chosen = j
                break
        if chosen is None:
            found, key = _unseen_random(space, seen, rng)
            if found is None:
                info["warnings"].append("no unseen point found; the search space looks exhausted")
                break
            params = found
            x = space.encode_trials([params])[0][0]
            pred = None
        else:
            x = C[chosen]
            pred = (float(mu[chosen]), float(sd[chosen]))
        seen.add(key)
        out.append(params)
        # GP mean/std on the warped, standardised scale (lower is better): for logs and debugging.
        info["predicted"].append(None if pred is None else {"mean": pred[0], "std": pred[1]})
        if lie is None:
            y_lie = pred[0] if pred is not None else float(np.mean(zm))
        else:
            y_lie = lie
        xf = mf(x[None, :])[0]
        (v1,) = post.add(xf, y_lie, [(C1f, v1)])
        pending.append(xf)
        pen1 = pen1 + _log_penalty(C1f, [xf], ls_eff, radius)
    return out, info


def _space_filling(
    space: _Space, X_all: np.ndarray, n: int, seen: set[bytes], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Up to ``n`` maximin picks, each far from every trial and earlier pick (the cold start)."""
    out: list[dict[str, Any]] = []
    existing = [X_all]
    limit = space.size()
    for _ in range(max(n, 0)):
        if len(seen) >= limit:
            break
        for _attempt in range(20):
            x = _maximin_pick(space, np.vstack(existing), rng)
            params, key = space.decode(x)
            if key not in seen:
                break
        else:
            found, key = _unseen_random(space, seen, rng)
            if found is None:
                break
            params = found
        seen.add(key)
        out.append(params)
        existing.append(x[None, :])
    return out


def _unseen_random(space: _Space, seen: set[bytes], rng: np.random.Generator) -> tuple[dict | None, bytes]:
    """A random point not in ``seen`` (for nearly exhausted discrete spaces), or (None, "")."""
    for _ in range(8):
        pool = space.sobol(512, rng)
        for x in pool:
            params, key = space.decode(x)
            if key not in seen:
                return params, key
    return None, b""


def suggest(
    config: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], n: int = 1, seed: int | None = None
) -> list[dict[str, Any]]:
    """Suggest ``n`` new parameter sets for a bayes sweep (nested as in the config).

    ``config`` is the normalised config (``sweepq.config.load_config``); ``trials`` are dicts
    ``{id, params, state, metric, history}``. Queued/running trials are treated as pending and
    steer the batch away from themselves. With ``seed`` the answer is a pure function of
    ``(config, trials, n, seed)``; without it each call draws fresh randomness, so concurrent
    callers never get the same points. Fewer than ``n`` (down to ``[]``) means a finite space is
    exhausted. Warnings of the call are left in :data:`last_warnings`.
    """
    out, info = suggest_with_info(config, trials, n=n, seed=seed)
    last_warnings[:] = info["warnings"]
    return out
