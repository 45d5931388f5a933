"""Conditional benchmark problems for ``conditional.py``: spaces whose parameters carry ``when``.

Each problem is a :class:`_problems.Problem` whose ``parameters`` (sweepq's normalised form) carry
``when`` conditions, and whose objective reads only the parameters active in the trial it is given,
so the same function scores a conditional trial and a flattened one (every parameter present; the
inactive ones ignored). :func:`flattened` is the same space with every ``when`` removed: what a
search without conditional parameters, or W&B's engine, explores.

Every problem has the same kind of objective, one per *context* (a full choice of the categorical
parameters): with each active numeric parameter mapped to ``u`` in [0, 1] (log-scale parameters in
decades), ``q = sum_i w_i (u_i - c_i)^2 + w_12 (u_1 - c_1)(u_2 - c_2)`` (the first two parameters of
a context interact, as a learning rate and its regulariser do), and the value is
``base + (cap - base) (1 - exp(-q))``: a bowl near the best setting that saturates at ``cap``
(chance level) far from it. Contexts differ in ``base`` (so the choice of branch matters), in the
centre ``c`` and in the weights ``w``; no centre is at the middle or an edge of its range, and the
best context is never the first value listed. The minimum is the best context's ``base``, at its
centre.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from _problems import Problem


def _u(lo: float, hi: float, **when: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"distribution": "uniform", "min": float(lo), "max": float(hi)}
    return spec | ({"when": when} if when else {})


def _log(lo: float, hi: float, **when: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"distribution": "log_uniform_values", "min": float(lo), "max": float(hi)}
    return spec | ({"when": when} if when else {})


def _cat(*values: str, **when: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"distribution": "categorical", "values": list(values)}
    return spec | ({"when": when} if when else {})


def _unit(spec: Mapping[str, Any], x: float) -> float:
    lo, hi = spec["min"], spec["max"]
    if spec["distribution"] == "log_uniform_values":
        return (math.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    return (x - lo) / (hi - lo)


@dataclass(frozen=True)
class Context:
    """The objective in one context: ``base`` at the centre, ``terms`` = {param: (c, w)} in the
    order given (the first two interact with weight ``cross``)."""

    base: float
    terms: dict[str, tuple[float, float]]
    cross: float = 0.0

    def __call__(self, parameters: Mapping[str, Any], p: Mapping[str, Any], cap: float) -> float:
        d = {k: _unit(parameters[k], p[k]) - c for k, (c, _) in self.terms.items()}
        q = sum(w * d[k] ** 2 for k, (_, w) in self.terms.items())
        if self.cross:
            a, b = list(self.terms)[:2]
            q += self.cross * d[a] * d[b]
        return self.base + (cap - self.base) * (1.0 - math.exp(-q))


#: Per problem, the second-best context's minimum: a value below it can only come from the best one.
RUNNER_UP: dict[str, float] = {}


def _problem(
    name: str,
    parameters: dict[str, Any],
    contexts: dict[tuple[str, ...], Context],
    context_of: Callable[[Mapping[str, Any]], tuple[str, ...]],
    cap: float,
) -> Problem:
    for ctx in contexts.values():  # the quadratic form must be positive definite
        (_, w1), (_, w2) = list(ctx.terms.values())[:2]
        assert ctx.cross**2 < 4 * w1 * w2, name

    def objective(p: Mapping[str, Any]) -> float:
        return contexts[context_of(p)](parameters, p, cap)

    objective.__name__ = name
    best, runner_up = sorted(ctx.base for ctx in contexts.values())[:2]
    RUNNER_UP[name] = runner_up
    return Problem(name, parameters, objective, optimum=best)


def flattened(problem: Problem) -> Problem:
    """The same problem with every ``when`` removed: all parameters are always sampled."""
    flat = {k: {f: v for f, v in spec.items() if f != "when"} for k, spec in problem.parameters.items()}
    return replace(problem, parameters=flat)


def active(parameters: Mapping[str, Any], draw: Callable[[str, Mapping[str, Any]], Any]) -> dict[str, Any]:
    """The values of one trial, drawing only active parameters, parents first: ``draw(name,
    spec)`` gives a value (a sampler's suggestion, or a lookup in a trial's params)."""
    values: dict[str, Any] = {}
    decided: set[str] = set()
    left = dict(parameters)
    while left:
        ready = [k for k, spec in left.items() if set(spec.get("when", {})) <= decided]
        assert ready, f"cyclic conditions among {sorted(left)}"
        for name in ready:
            cond = left.pop(name).get("when", {})
            decided.add(name)
            if all(k in values and values[k] in (v if isinstance(v, list) else [v]) for k, v in cond.items()):
                values[name] = draw(name, parameters[name])
    return values


# --- branch3: a model choice with 3 branches, 2-3 parameters each, one shared ---------------------

_BRANCH3 = {
    "model": _cat("svm", "gbm", "mlp"),
    "feature_fraction": _u(0.1, 1.0),
    "svm_C": _log(1e-2, 1e4, model="svm"),
    "svm_gamma": _log(1e-5, 1.0, model="svm"),
    "gbm_learning_rate": _log(1e-3, 1.0, model="gbm"),
    "gbm_subsample": _u(0.3, 1.0, model="gbm"),
    "gbm_min_child_weight": _log(0.1, 100.0, model="gbm"),
    "mlp_learning_rate": _log(1e-5, 1e-1, model="mlp"),
    "mlp_dropout": _u(0.0, 0.7, model="mlp"),
    "mlp_width": _log(16.0, 1024.0, model="mlp"),
}
BRANCH3 = _problem(
    "branch3",
    _BRANCH3,
    {
        ("svm",): Context(
            0.19, {"svm_C": (0.62, 2.0), "svm_gamma": (0.35, 2.0), "feature_fraction": (0.75, 0.8)}, -2.8
        ),
        ("gbm",): Context(
            0.16,
            {
                "gbm_learning_rate": (0.58, 4.0),
                "gbm_min_child_weight": (0.38, 1.0),
                "gbm_subsample": (0.72, 1.5),
                "feature_fraction": (0.55, 0.8),
            },
            1.2,
        ),
        ("mlp",): Context(
            0.12,
            {
                "mlp_learning_rate": (0.42, 5.0),
                "mlp_dropout": (0.3, 1.5),
                "mlp_width": (0.68, 1.0),
                "feature_fraction": (0.82, 0.8),
            },
            -1.5,
        ),
    },
    lambda p: (p["model"],),
    cap=0.9,
)

# --- chain: optimizer -> schedule -> warmup, with the optimum at the end of the chain --------------

_CHAIN = {
    "optimizer": _cat("sgd", "adam"),
    "learning_rate": _log(1e-5, 1.0),
    "weight_decay": _log(1e-6, 1e-1),
    "momentum": _u(0.0, 0.99, optimizer="sgd"),
    "schedule": _cat("constant", "cosine", optimizer="adam"),
    "warmup": _u(0.0, 0.3, schedule="cosine"),
    "final_lr_ratio": _log(1e-3, 1.0, schedule="cosine"),
}
CHAIN = _problem(
    "chain",
    _CHAIN,
    {
        ("sgd",): Context(
            0.34,
            {"learning_rate": (0.74, 4.0), "momentum": (0.9, 2.0), "weight_decay": (0.52, 1.0)},
            -1.6,
        ),
        ("adam", "constant"): Context(0.31, {"learning_rate": (0.36, 4.0), "weight_decay": (0.8, 1.0)}, 0.8),
        ("adam", "cosine"): Context(
            0.26,
            {
                "learning_rate": (0.44, 4.0),
                "warmup": (0.22, 2.0),
                "weight_decay": (0.78, 1.0),
                "final_lr_ratio": (0.3, 0.6),
            },
            1.8,
        ),
    },
    lambda p: (p["optimizer"],) if p["optimizer"] == "sgd" else (p["optimizer"], p["schedule"]),
    cap=2.3,
)

# --- branch4x4: 4 branches of 4 parameters each, where flattening costs most -----------------------

_BRANCH4X4 = {
    "model": _cat("svm", "rf", "gbm", "mlp"),
    "svm_C": _log(1e-2, 1e4, model="svm"),
    "svm_gamma": _log(1e-5, 1.0, model="svm"),
    "svm_epsilon": _log(1e-4, 1.0, model="svm"),
    "svm_tol": _log(1e-5, 1e-1, model="svm"),
    "rf_max_features": _u(0.05, 1.0, model="rf"),
    "rf_min_samples_leaf": _log(1.0, 100.0, model="rf"),
    "rf_max_samples": _u(0.2, 1.0, model="rf"),
    "rf_ccp_alpha": _log(1e-6, 1e-1, model="rf"),
    "gbm_learning_rate": _log(1e-3, 1.0, model="gbm"),
    "gbm_subsample": _u(0.3, 1.0, model="gbm"),
    "gbm_colsample": _u(0.3, 1.0, model="gbm"),
    "gbm_min_child_weight": _log(0.1, 100.0, model="gbm"),
    "mlp_learning_rate": _log(1e-5, 1e-1, model="mlp"),
    "mlp_dropout": _u(0.0, 0.7, model="mlp"),
    "mlp_weight_decay": _log(1e-7, 1e-2, model="mlp"),
    "mlp_batch_size": _log(16.0, 1024.0, model="mlp"),
}
BRANCH4X4 = _problem(
    "branch4x4",
    _BRANCH4X4,
    {
        ("svm",): Context(
            0.17,
            {
                "svm_C": (0.62, 2.0),
                "svm_gamma": (0.35, 2.0),
                "svm_epsilon": (0.3, 1.0),
                "svm_tol": (0.6, 0.3),
            },
            -2.8,
        ),
        ("rf",): Context(
            0.15,
            {
                "rf_max_features": (0.35, 2.0),
                "rf_min_samples_leaf": (0.22, 1.5),
                "rf_max_samples": (0.8, 1.0),
                "rf_ccp_alpha": (0.25, 0.5),
            },
            1.0,
        ),
        ("gbm",): Context(
            0.11,
            {
                "gbm_learning_rate": (0.58, 4.0),
                "gbm_min_child_weight": (0.38, 1.0),
                "gbm_subsample": (0.72, 1.5),
                "gbm_colsample": (0.64, 1.5),
            },
            1.2,
        ),
        ("mlp",): Context(
            0.13,
            {
                "mlp_learning_rate": (0.42, 5.0),
                "mlp_weight_decay": (0.55, 1.0),
                "mlp_dropout": (0.3, 1.5),
                "mlp_batch_size": (0.4, 1.0),
            },
            -1.5,
        ),
    },
    lambda p: (p["model"],),
    cap=0.9,
)

PROBLEMS: dict[str, Problem] = {p.name: p for p in (BRANCH3, CHAIN, BRANCH4X4)}
