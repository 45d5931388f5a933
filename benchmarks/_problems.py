"""Benchmark problems for ``search_quality.py`` and ``suggest_latency.py``.

Each problem is a sweep ``parameters`` block in sweepq's normalised form (which W&B's engine also
reads) plus an objective of the suggested parameter dict: four textbook synthetic functions, one
mixed int/categorical/log space, and two cross-validated scikit-learn models on datasets that
scikit-learn ships. None of them is tuned to sweepq's bayes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Problem:
    name: str
    parameters: dict[str, Any]
    objective: Callable[[dict[str, Any]], float]
    goal: str = "minimize"
    optimum: float | None = None

    @property
    def metric(self) -> dict[str, Any]:
        return {"name": "value", "goal": self.goal, "impute": "worst", "impute_while_running": "false"}


def _u(lo: float, hi: float) -> dict[str, Any]:
    return {"distribution": "uniform", "min": float(lo), "max": float(hi)}


def branin(p: dict[str, Any]) -> float:
    x, y = p["x1"], p["x2"]
    return (
        (y - 5.1 / (4 * math.pi**2) * x * x + 5 / math.pi * x - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x)
        + 10
    )


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(1, 7)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def rosenbrock10(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i:02d}"] for i in range(1, 11)])
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def levy10(p: dict[str, Any]) -> float:
    """The standard Levy function in 10 dimensions on [-10, 10]^10 (f* = 0 at x_i = 1): a rugged,
    many-minima landscape in more dimensions than Hartmann-6, where batches of 32 must not pile up."""
    x = np.array([p[f"x{i:02d}"] for i in range(1, 11)])
    w = 1.0 + (x - 1.0) / 4.0
    head = math.sin(math.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(math.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + math.sin(2.0 * math.pi * w[-1]) ** 2)
    return float(head + mid + tail)


_ACT = {"relu": 0.0, "gelu": -0.05, "tanh": 0.25, "sigmoid": 0.6}


def mixed(p: dict[str, Any]) -> float:
    """A smooth 'training loss' whose best learning rate depends on the optimiser (an interaction
    that an ordinal encoding of categories cannot express), with an integer depth, a log-scale
    weight decay and a q-quantised width."""
    lr_opt = -3.0 if p["optimizer"] == "adam" else (-1.5 if p["optimizer"] == "sgd" else -2.2)
    f = 0.4 * (math.log10(p["lr"]) - lr_opt) ** 2
    f += 0.05 * (p["layers"] - 5) ** 2
    f += _ACT[p["activation"]]
    f += 0.3 * (math.log10(p["weight_decay"]) + 4.0) ** 2 / 4.0
    f += 0.5 * (p["dropout"] - 0.2 - 0.03 * p["layers"]) ** 2
    f += 0.2 * (math.log2(p["width"]) - 7.0) ** 2 / 4.0
    return f + 0.05  # f* = 0: adam, gelu, lr=1e-3, 5 layers, wd=1e-4, dropout 0.35, width 128


_DIGITS: tuple[np.ndarray, np.ndarray] | None = None


def svm_digits(p: dict[str, Any]) -> float:
    """3-fold CV accuracy of an SVC on 600 images of scikit-learn's bundled digits (maximise)."""
    global _DIGITS
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    if _DIGITS is None:
        X, y = load_digits(return_X_y=True)
        _DIGITS = (X[:600] / 16.0, y[:600])
    X, y = _DIGITS
    clf = SVC(C=p["C"], gamma=p["gamma"], kernel=p["kernel"], degree=p["degree"], coef0=p["coef0"])
    return float(cross_val_score(clf, X, y, cv=3).mean())


_DIABETES: tuple[np.ndarray, np.ndarray] | None = None


def krr_diabetes(p: dict[str, Any]) -> float:
    """3-fold CV mean squared error of kernel ridge regression on scikit-learn's bundled diabetes
    data (minimise). It complements svm_digits, which saturates (its CV accuracy takes few distinct
    values and every method reaches the same ceiling): an MSE is continuous."""
    global _DIABETES
    import warnings

    from sklearn.datasets import load_diabetes
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import cross_val_score

    if _DIABETES is None:
        X, y = load_diabetes(return_X_y=True)
        _DIABETES = ((X - X.mean(0)) / X.std(0), y)
    X, y = _DIABETES
    model = KernelRidge(
        alpha=p["alpha"], kernel=p["kernel"], gamma=p["gamma"], degree=p["degree"], coef0=p["coef0"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(-cross_val_score(model, X, y, cv=3, scoring="neg_mean_squared_error").mean())


PROBLEMS: dict[str, Problem] = {
    "branin": Problem("branin", {"x1": _u(-5, 10), "x2": _u(0, 15)}, branin, optimum=0.397887),
    "hartmann6": Problem("hartmann6", {f"x{i}": _u(0, 1) for i in range(1, 7)}, hartmann6, optimum=-3.322368),
    "rosenbrock10": Problem(
        "rosenbrock10", {f"x{i:02d}": _u(-5, 10) for i in range(1, 11)}, rosenbrock10, optimum=0.0
    ),
    "levy10": Problem("levy10", {f"x{i:02d}": _u(-10, 10) for i in range(1, 11)}, levy10, optimum=0.0),
    "mixed": Problem(
        "mixed",
        {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
            "weight_decay": {"distribution": "log_uniform_values", "min": 1e-7, "max": 1e-1},
            "layers": {"distribution": "int_uniform", "min": 1, "max": 10},
            "optimizer": {"distribution": "categorical", "values": ["sgd", "adam", "rmsprop"]},
            "activation": {"distribution": "categorical", "values": ["relu", "tanh", "sigmoid", "gelu"]},
            "dropout": _u(0.0, 0.8),
            "width": {"distribution": "q_uniform", "min": 16, "max": 512, "q": 16},
        },
        mixed,
        optimum=0.0,
    ),
    "svm_digits": Problem(
        "svm_digits",
        {
            "C": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1e3},
            "gamma": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e1},
            "kernel": {"distribution": "categorical", "values": ["rbf", "poly", "sigmoid"]},
            "degree": {"distribution": "int_uniform", "min": 2, "max": 5},
            "coef0": _u(-1, 1),
        },
        svm_digits,
        goal="maximize",
    ),
    "krr_diabetes": Problem(
        "krr_diabetes",
        {
            "alpha": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e2},
            "gamma": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
            "kernel": {
                "distribution": "categorical",
                "values": ["rbf", "laplacian", "polynomial", "sigmoid"],
            },
            "degree": {"distribution": "int_uniform", "min": 1, "max": 4},
            "coef0": _u(0, 2),
        },
        krr_diabetes,
    ),
}
