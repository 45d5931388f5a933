"""A real ML tuning task: an SGD classifier on scikit-learn's digits dataset (ships offline).

Trains for `epochs` passes with partial_fit and logs the validation error after each, so
early-termination rules (hyperband, asha, median) have a learning curve to judge.
"""

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import sweepq

p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float, default=1e-4)
p.add_argument("--eta0", type=float, default=0.01)
p.add_argument("--loss", default="hinge")
p.add_argument("--penalty", default="l2")
p.add_argument("--epochs", type=int, default=15)
args = p.parse_args()
run = sweepq.init(config=vars(args))
cfg = run.config

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
clf = SGDClassifier(
    alpha=cfg.alpha,
    eta0=cfg.eta0,
    learning_rate="constant",
    loss=cfg.loss,
    penalty=cfg.penalty,
    random_state=0,
)
classes = np.unique(y)
rng = np.random.default_rng(0)
for epoch in range(cfg.epochs):
    order = rng.permutation(len(X_tr))
    clf.partial_fit(X_tr[order], y_tr[order], classes=classes)
    err = 1.0 - clf.score(X_va, y_va)
    run.log({"val_error": err, "epoch": epoch})
    if run.should_stop:  # early-terminated: a real script would checkpoint here
        break
run.finish()
