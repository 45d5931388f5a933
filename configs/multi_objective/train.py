"""Accuracy against model size: a small neural network on scikit-learn's digits (ships offline).

Logs ``val_accuracy`` (maximised) and ``n_weights`` (minimised, the number of trained weights: a
stand-in for the memory and latency that a real deployment trades against accuracy). The sweep
config lists both as objectives; ``sweepq best SWEEP_ID`` prints the Pareto front.
"""

import argparse
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import sweepq

p = argparse.ArgumentParser()
p.add_argument("--width", type=int, default=32)
p.add_argument("--depth", type=int, default=1)
p.add_argument("--alpha", type=float, default=1e-4)
p.add_argument("--lr", type=float, default=1e-3)
args = p.parse_args()
run = sweepq.init(config=vars(args))
cfg = run.config

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
clf = MLPClassifier(
    hidden_layer_sizes=(cfg.width,) * cfg.depth,
    alpha=cfg.alpha,
    learning_rate_init=cfg.lr,
    max_iter=60,
    random_state=0,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(X_tr, y_tr)
n_weights = sum(w.size for w in clf.coefs_) + sum(b.size for b in clf.intercepts_)
run.log({"val_accuracy": clf.score(X_va, y_va), "n_weights": n_weights})
run.finish()
