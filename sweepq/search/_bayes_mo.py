"""Bayes for several objectives (``metric:`` a list): expected hypervolume improvement on one GP per
objective, with the search space, kernels, candidate search and pending-trial handling of
:mod:`sweepq.search.bayes`.

Why EHVI and not random scalarisations (ParEGO): one scalarised EI per suggestion aims at one
region of the front at a time; hypervolume improvement values every gap in the front at once, and
measured higher on ZDT1 and DTLZ2 with 8 trials in flight (``benchmarks/multi_objective.py``,
``docs/bayes.md`` "Several objectives"). With independent Gaussian posteriors and the
non-dominated region cut into boxes, EHVI is exact and closed-form, so it is cheap to score
thousands of candidates in numpy (no Monte Carlo, no torch).

* **Observations.** Each objective's summary value (its last logged value, as the Pareto front
  shown to the user); ``maximize`` objectives are negated. A finished trial missing an objective
  counts as the worst value of that objective seen; failed/crashed trials as the worst of each;
  trials stopped early keep the values they logged (worst where missing); running/queued trials
  are pending.
* **Model.** One GP per objective, each on its own warp (:class:`_Scale`: monotone, so dominance is
  unchanged) with its own fitted kernel, memoised as for one metric.
* **Acquisition.** EHVI in the warped space, reference point 10 % of each objective's range beyond
  its worst observed value; the front is the observed non-dominated set. Candidates: the Sobol
  pool, moves around front points, and front points with a parameter moved onto the nearer bound;
  the best three are then polished by L-BFGS-B within a small box.
* **Pending trials.** Kriging believer in every GP, the believed vector joins the front (so its
  neighbourhood's improvement is already claimed), and the soft penalty holes of the single-metric
  search keep a batch apart: 8 or 32 suggestions in flight spread along the front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from sweepq.model import FINAL_STATES, TrialState
from sweepq.pareto import front_indices, objective_values
from sweepq.search import bayes as so

#: The reference point sits this share of each objective's observed range beyond its worst value.
REF_MARGIN = 0.1
#: Most front points (observed and believed) entering the box decomposition per objective count;
#: boxes grow as points^(m-1), so with 4 objectives the front is thinned to this many.
FRONT_CAP = {2: 512, 3: 96, 4: 28}
#: The warp's unit: this percentile's distance above the best value (one metric's warp: 25).
WARP_Q = 75.0
#: Whether pending points put the single-metric search's soft holes into the acquisition.
PENALTY = True
#: The holes' radius relative to the single-metric search's (``bayes.PENALTY_RADIUS`` length scales).
PENALTY_SCALE = 1.0
#: Whether candidates include front points with a parameter moved to a bound of its range.
EDGE_MOVES = True
#: Front points whose neighbourhoods are searched per call (random ones when the front is larger).
N_CENTRES = 16
EDGE_EACH = 32
#: How many of the best candidates are polished by L-BFGS-B on the acquisition, and how far (in
#: each numeric feature's [0, 1]) each may move: a local refinement, not a second global search.
POLISH = 3
POLISH_STEP = 0.05
#: Candidates scored per chunk (bounds memory: chunk x boxes x objectives floats).
CHUNK = 512


@dataclass
class _Data:
    X_obs: np.ndarray
    Y_obs: np.ndarray  # (n, m), minimised
    X_pend: np.ndarray
    X_all: np.ndarray
    seen: set[bytes]
    n_trials: int
    warnings: list[str]


def _collect(
    space: so._Space, objs: Sequence[Mapping[str, Any]], trials: Sequence[Mapping[str, Any]]
) -> _Data:
    names = [o["name"] for o in objs]
    signs = np.array([-1.0 if o.get("goal") == "maximize" else 1.0 for o in objs])
    m = len(names)
    X, ok = space.encode_trials([t.get("params") or {} for t in trials])
    seen = {x.tobytes() for x in np.round(X[ok], 9)}
    vals = (
        np.array(
            [[np.nan if v is None else v for v in objective_values(t, names)] for t in trials], dtype=float
        ).reshape(len(trials), m)
        * signs
    )
    terminal = np.array([t.get("state") in FINAL_STATES for t in trials], dtype=bool)
    worst = np.full(m, np.nan)
    for k in range(m):
        col = vals[terminal, k] if len(trials) else np.zeros(0)
        col = col[np.isfinite(col)]
        if len(col):
            worst[k] = float(col.max())
    obs_idx: list[int] = []
    obs_y: list[np.ndarray] = []
    pend_idx: list[int] = []
    n_missing = n_bad = 0
    for i, t in enumerate(trials):
        if not ok[i]:
            n_bad += 1
            continue
        state = t.get("state")
        own = vals[i]
        if state in (TrialState.QUEUED, TrialState.RUNNING):
            pend_idx.append(i)
            continue
        if state in (TrialState.FAILED, TrialState.CRASHED):
            y = worst.copy()
        elif state in (TrialState.FINISHED, TrialState.STOPPED, TrialState.CANCELED):
            if state == TrialState.CANCELED and not np.isfinite(own).any():
                continue
            if state == TrialState.FINISHED and not np.isfinite(own).all():
                n_missing += 1
            y = np.where(np.isfinite(own), own, worst)
        else:
            continue
        if not np.isfinite(y).all():
            continue  # nothing logged anywhere yet to impute from
        obs_idx.append(i)
        obs_y.append(y)
    warn: list[str] = []
    if n_missing:
        warn.append(
            f"{n_missing} finished trial(s) did not log every objective ({', '.join(names)}); "
            "a missing value counts as the worst seen"
        )
    if n_bad:
        warn.append(
            f"{n_bad} trial(s) have parameters outside the current search space; the model ignores them"
        )
    pend_idx = pend_idx[-so.PENDING_CAP :]
    return _Data(
        X_obs=X[obs_idx],
        Y_obs=np.asarray(obs_y, dtype=float).reshape(len(obs_idx), m),
        X_pend=X[pend_idx],
        X_all=X[ok],
        seen=seen,
        n_trials=len(trials),
        warnings=warn,
    )


# --- hypervolume improvement -------------------------------------------------------------------------


def nondominated(P: np.ndarray) -> np.ndarray:
    """The rows of ``P`` (minimised) that no other row dominates (duplicates kept once)."""
    if not len(P):
        return P
    keep = front_indices([list(map(float, p)) for p in P], ["minimize"] * P.shape[1])
    return np.unique(P[keep], axis=0)


def boxes(P: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint boxes ``[lower, upper]`` whose union is the region below ``ref`` that no point of
    ``P`` dominates (lower bounds may be -inf): slices along the last objective, each slice's
    cross-section decomposed in one dimension fewer with the points at or below the slice."""
    m = len(ref)
    P = P[(ref > P).all(axis=1)] if len(P) else P
    if m == 1:
        top = min(float(ref[0]), float(P[:, 0].min())) if len(P) else float(ref[0])
        return np.array([[-np.inf]]), np.array([[top]])
    lows: list[np.ndarray] = []
    ups: list[np.ndarray] = []
    cuts = np.unique(P[:, -1]) if len(P) else np.zeros(0)
    edges = np.concatenate([[-np.inf], cuts, [ref[-1]]])
    for j in range(len(edges) - 1):
        lo, hi = edges[j], edges[j + 1]
        if not hi > lo:
            continue
        below = P[P[:, -1] <= lo][:, :-1] if len(P) else np.zeros((0, m - 1))
        L, U = boxes(nondominated(below), ref[:-1])
        lows.append(np.hstack([L, np.full((len(L), 1), lo)]))
        ups.append(np.hstack([U, np.full((len(U), 1), hi)]))
    return np.vstack(lows), np.vstack(ups)


def ehvi(mu: np.ndarray, sd: np.ndarray, L: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Expected hypervolume improvement of independent Gaussians ``N(mu, sd^2)`` (candidates x
    objectives) over the boxes ``[L, U]``: per box the product over objectives of
    ``E[max(0, u - max(l, Y))] = (u - l) Phi(a) + (u - mu)(Phi(b) - Phi(a)) + sd (phi(b) - phi(a))``
    with ``a = (l - mu) / sd``, ``b = (u - mu) / sd`` (the first term is 0 for ``l = -inf``)."""
    out = np.zeros(len(mu))
    for s in range(0, len(mu), CHUNK):
        m_, s_ = mu[s : s + CHUNK, None, :], sd[s : s + CHUNK, None, :]
        a = (L[None] - m_) / s_
        b = (U[None] - m_) / s_
        Pa, Pb = stats.norm.cdf(a), stats.norm.cdf(b)
        pa, pb = stats.norm.pdf(a), stats.norm.pdf(b)
        width = np.where(np.isfinite(L), U - L, 0.0)[None]
        term = width * np.where(np.isfinite(L)[None], Pa, 0.0) + (U[None] - m_) * (Pb - Pa) + s_ * (pb - pa)
        out[s : s + CHUNK] = np.prod(np.maximum(term, 0.0), axis=2).sum(axis=1)
    return out


def _edge_moves(space: so._Space, centres: np.ndarray, each: int, rng: np.random.Generator) -> np.ndarray:
    """Copies of each centre with one or two numeric features moved onto the nearer bound of their
    range.

    A front's ends lie where a parameter is at its bound (the smallest model, no dropout), and the
    hypervolume is most sensitive there; random and Sobol candidates never land exactly on a bound.
    The nearer bound only: a jump to the far one is exploration, which the Sobol pool does, and
    as edge moves such jumps measured as wasted trials at the space's corners (ZDT1)."""
    nc = space.numeric_cols
    if not len(centres) or not len(nc):
        return np.zeros((0, space.n_features))
    C = np.repeat(centres, each, axis=0)
    rows = np.arange(len(C))
    for _ in range(2):
        cols = nc[rng.integers(0, len(nc), len(C))]
        hit = rng.random(len(C)) < 0.7
        C[rows[hit], cols[hit]] = np.round(C[rows[hit], cols[hit]])
    return space.snap(C)


class _Scale:
    """What an objective's GP models: a gentler form of the single-metric warp (``bayes._warp``),
    ``log(1 + (y - min y) / s)`` standardised, with ``s`` the distance of the *upper quartile*
    above the best value (``WARP_Q``) instead of the lower one.

    Why: one metric's warp resolves the few values near the best and compresses the rest, right
    when only the best matters; a front is a whole range of each objective, and that warp made
    the GPs of DTLZ2's objectives model the front's ends and blur its middle. Plain
    standardisation blurs instead the good values of an objective with a long tail of bad ones
    (ZDT1's second). The upper quartile keeps most values on a linear scale and still compresses a
    long tail. Measured per choice in docs/bayes.md, "Several objectives"."""

    def __init__(self, y: np.ndarray):
        self.lo = float(np.min(y))
        s = float(np.percentile(y, WARP_Q)) - self.lo
        if not s > 0:
            s = float(np.max(y)) - self.lo
        self.s = s if s > 0 else 1.0
        w = np.log1p((y - self.lo) / self.s)
        self.wm, sd = float(w.mean()), float(np.std(w))
        self.wsd = sd if sd > 0 else 1.0

    def model(self, y: np.ndarray) -> np.ndarray:
        """The GP's targets."""
        return (np.log1p(np.maximum(y - self.lo, -0.999 * self.s) / self.s) - self.wm) / self.wsd


def _polish(space: so._Space, starts: np.ndarray, acq: Any) -> np.ndarray:
    """The best candidates moved uphill on the acquisition by L-BFGS-B, each within a box of
    ``POLISH_STEP`` around where it started (numeric features only).

    Why: random moves place a pick within a few hundredths of where the acquisition peaks; a
    front needs every point *on* it, and the parameters that bring a point onto the front (DTLZ2's
    x3..x6 at 0.5) were left a few hundredths off, so front points sat 6 % beyond the true front.
    Unbounded, the optimiser climbed to exploratory peaks of high variance and did worse; within
    a small box it only finishes what the candidates found (docs/bayes.md, "Several objectives")."""
    nc = space.numeric_cols
    if not len(nc):
        return np.zeros((0, space.n_features))
    out = []
    for x0 in starts:
        lo = np.clip(x0[nc] - POLISH_STEP, 0.0, 1.0)
        hi = np.clip(x0[nc] + POLISH_STEP, 0.0, 1.0)

        def f(u: np.ndarray, x0: np.ndarray = x0) -> float:
            x = x0.copy()
            x[nc] = u
            return -float(acq(space.snap(x[None, :]))[0])

        res = optimize.minimize(
            f, x0[nc], method="L-BFGS-B", bounds=list(zip(lo, hi, strict=True)), options={"maxiter": 20}
        )
        x = x0.copy()
        x[nc] = res.x
        out.append(x)
    return space.snap(np.asarray(out)) if out else np.zeros((0, space.n_features))


def _thin(P: np.ndarray, cap: int) -> np.ndarray:
    """At most ``cap`` rows of a front: its extremes, then farthest-point picks (keeps its spread)."""
    if len(P) <= cap:
        return P
    chosen = list(dict.fromkeys(int(i) for i in np.concatenate([P.argmin(axis=0), P.argmax(axis=0)])))[:cap]
    d = ((P[:, None, :] - P[None, chosen, :]) ** 2).sum(axis=2).min(axis=1)
    while len(chosen) < cap:
        j = int(np.argmax(d))
        chosen.append(j)
        d = np.minimum(d, ((P - P[j]) ** 2).sum(axis=1))
    return P[chosen]


# --- the strategy ------------------------------------------------------------------------------------


def suggest_with_info(
    config: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], n: int = 1, seed: int | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``bayes.suggest_with_info`` for a list metric; ``predicted`` holds per suggestion the GPs'
    means and stds on their warped scales (lower is better)."""
    objs = list(config["metric"])
    m = len(objs)
    space = so._space_for(config.get("parameters") or {})
    rng = so._rng(seed, len(trials))
    data = _collect(space, objs, trials)
    info: dict[str, Any] = {"warnings": data.warnings, "phase": "space-filling", "predicted": []}
    if not space.params:
        return ([] if trials or n < 1 else [space.decode(np.zeros(0))[0]]), info
    seen = set(data.seen)
    Y = data.Y_obs
    n_obs = len(Y)
    flat = [o["name"] for k, o in enumerate(objs) if n_obs >= 2 and float(np.ptp(Y[:, k])) == 0.0]
    if flat:
        info["warnings"].append(
            f"all {n_obs} observed values of {', '.join(repr(f) for f in flat)} are equal; the model "
            "cannot rank points, so bayes suggests space-filling points"
        )
    n0 = so.n_initial(space.active_dim)
    if not (n_obs >= 2 and not flat and (data.n_trials >= n0 or n_obs >= n0)):
        return so._space_filling(space, data.X_all, n, seen, rng), info

    info["phase"] = "model"
    n_fit = so._refit_point(n_obs)
    scales = [_Scale(Y[:, k]) for k in range(m)]
    Z = np.column_stack([sc.model(Y[:, k]) for k, sc in enumerate(scales)])
    # the GP sees at most MODEL_CAP observations: ranked by their best rank on any objective, so
    # every objective's good region is kept whole
    ranks = np.argsort(np.argsort(Z, axis=0, kind="stable"), axis=0, kind="stable").min(axis=1)
    idx = so._select(data.X_obs, ranks.astype(float), so.MODEL_CAP)
    Xm = data.X_obs[idx]
    posts: list[so._Posterior] = []
    ls_eff = np.ones(space.n_features)
    for k in range(m):
        # the kernel is fitted on the first n_fit values' own warp: a pure function of those values,
        # so its memo holds whatever came later
        fit_on = Y[:n_fit, k]
        amp, ls, noise, _ = so._fit_hyper(
            data.X_obs[:n_fit], fit_on, space.cat_mask, transform=_Scale(fit_on).model
        )
        posts.append(so._Posterior(Xm, Z[idx, k], amp, ls, noise))
        ls_eff = np.minimum(ls_eff, ls)
    front = nondominated(Z)
    ref = Z.max(axis=0) + REF_MARGIN * np.maximum(np.ptp(Z, axis=0), 1e-9)
    believed: list[np.ndarray] = []  # pending points' believed values (the GPs' means)
    for xp in data.X_pend:
        z = np.array([float(p.predict(p.project(xp[None, :]))[0][0]) for p in posts])
        for k, p in enumerate(posts):
            p.add(xp, float(z[k]), [])
        believed.append(z)

    def decomposition() -> tuple[np.ndarray, np.ndarray]:
        P = nondominated(np.vstack([front, *believed])) if believed else front
        return boxes(_thin(P, FRONT_CAP.get(m, 28)), ref)

    L, U = decomposition()
    pending = list(data.X_pend)
    # Stage 1 candidates: a Sobol pool and moves around observed front points.
    front_obs = data.X_obs[front_indices([list(map(float, z)) for z in Z], ["minimize"] * m)]
    pick = rng.permutation(len(front_obs))[:N_CENTRES]
    C1 = np.vstack(
        [
            space.sobol(so.N_GLOBAL, rng),
            so._perturb(space, front_obs[pick], so.N_LOCAL_EACH, (0.005, 0.02, 0.08), rng, cat_prob=0.15),
        ]
    )
    if EDGE_MOVES:
        C1 = np.vstack([C1, _edge_moves(space, front_obs[pick], EDGE_EACH, rng)])
    v1 = [p.project(C1) for p in posts]
    ls_eff = ls_eff * PENALTY_SCALE
    if not PENALTY:
        ls_eff = np.full(space.n_features, 1e-6)  # holes of no width
    pen1 = so._log_penalty(C1, pending, ls_eff)
    limit = space.size()
    out: list[dict[str, Any]] = []

    def score(vs: list[np.ndarray], pen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pred = [p.predict(v) for p, v in zip(posts, vs, strict=True)]
        mu = np.column_stack([a for a, _ in pred])
        sd = np.column_stack([b for _, b in pred])
        return np.log(np.maximum(ehvi(mu, sd, L, U), 1e-300)) + pen, mu, sd

    for _ in range(max(n, 0)):
        if len(seen) >= limit:
            break
        a1, mu1, sd1 = score(v1, pen1)
        top = C1[np.argsort(-a1)[: so.N_REFINE_CENTRES]]
        C2 = so._perturb(space, top, so.N_REFINE_EACH, (0.002, 0.008, 0.03), rng, cat_prob=0.05)
        a2, mu2, sd2 = score([p.project(C2) for p in posts], so._log_penalty(C2, pending, ls_eff))
        C = np.vstack([C1, C2])
        a = np.concatenate([a1, a2])
        mu, sd = np.vstack([mu1, mu2]), np.vstack([sd1, sd2])
        if POLISH:

            def acq(X: np.ndarray) -> np.ndarray:
                return score([p.project(X) for p in posts], so._log_penalty(X, pending, ls_eff))[0]

            C3 = _polish(space, C[np.argsort(-a)[:POLISH]], acq)
            a3, mu3, sd3 = score([p.project(C3) for p in posts], so._log_penalty(C3, pending, ls_eff))
            C, a = np.vstack([C, C3]), np.concatenate([a, a3])
            mu, sd = np.vstack([mu, mu3]), np.vstack([sd, sd3])
        chosen = None
        for j in np.argsort(-a)[:256]:
            params, key = space.decode(C[j])
            if key not in seen:
                chosen = int(j)
                break
        if chosen is None:
            found, key = so._unseen_random(space, seen, rng)
            if found is None:
                info["warnings"].append("no unseen point found; the search space looks exhausted")
                break
            params = found
            x = space.encode_trials([params])[0][0]
            y = np.array([float(p.predict(p.project(x[None, :]))[0][0]) for p in posts])
            info["predicted"].append(None)
        else:
            x = C[chosen]
            y = mu[chosen]
            info["predicted"].append({"mean": [float(v) for v in y], "std": [float(v) for v in sd[chosen]]})
        seen.add(key)
        out.append(params)
        v1 = [p.add(x, float(y[k]), [(C1, v1[k])])[0] for k, p in enumerate(posts)]
        believed.append(y)
        L, U = decomposition()
        pending.append(x)
        pen1 = pen1 + so._log_penalty(C1, [x], ls_eff)
    return out, info
