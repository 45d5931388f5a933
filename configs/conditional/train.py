"""Conditional parameters in a real model: scikit-learn's MLPClassifier on the digits dataset.

The optimizer decides which parameters exist: ``momentum``, ``nesterovs_momentum`` and
``learning_rate`` only for ``solver=sgd`` (and ``power_t`` only for ``learning_rate=invscaling``),
``beta_1`` and ``beta_2`` only for ``solver=adam`` (configs/conditional/sweep.yaml). The script
passes the model exactly the parameters its trial holds: one the trial lacks is never given a
default here, so it is absent from ``run.config`` and the model keeps scikit-learn's own value,
which that solver ignores anyway. A parameter of the other optimizer is an error, so a sweep that
handed one over would show failed trials.

Trains ``epochs`` passes with partial_fit and logs the validation error after each, so hyperband
has a learning curve to judge. Standalone: ``python configs/conditional/train.py --solver=adam
--beta_1=0.85``.
"""

import argparse
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import sweepq

# which optimizer owns each conditional parameter
OWNED = {
    "sgd": ("momentum", "nesterovs_momentum", "learning_rate", "power_t"),
    "adam": ("beta_1", "beta_2"),
}


def flag(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


p = argparse.ArgumentParser()
p.add_argument("--solver", default="adam", choices=sorted(OWNED))
p.add_argument("--learning_rate_init", type=float, default=1e-3)
p.add_argument("--alpha", type=float, default=1e-4)
p.add_argument("--hidden", type=int, default=64)
p.add_argument("--epochs", type=int, default=27)
# conditional ones: no default, so a trial that lacks one has nothing in its place
for name, kind in (
    ("momentum", float),
    ("nesterovs_momentum", flag),
    ("learning_rate", str),
    ("power_t", float),
    ("beta_1", float),
    ("beta_2", float),
):
    p.add_argument(f"--{name}", type=kind, default=argparse.SUPPRESS)
run = sweepq.init(config=vars(p.parse_args()))
cfg = run.config

foreign = [k for solver, names in OWNED.items() if solver != cfg.solver for k in names if k in cfg]
if foreign:
    sys.exit(f"{', '.join(foreign)}: not a parameter of solver {cfg.solver}")
if "power_t" in cfg and cfg.get("learning_rate") != "invscaling":
    sys.exit("power_t: only for learning_rate invscaling")
extra = {k: cfg[k] for k in OWNED[cfg.solver] if k in cfg}
print(f"solver={cfg.solver} with {extra}", flush=True)

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
clf = MLPClassifier(
    hidden_layer_sizes=(cfg.hidden,),
    solver=cfg.solver,
    learning_rate_init=cfg.learning_rate_init,
    alpha=cfg.alpha,
    batch_size=64,
    random_state=0,
    **extra,
)
classes = np.unique(y)
for epoch in range(cfg.epochs):
    clf.partial_fit(X_tr, y_tr, classes=classes)
    err = 1.0 - clf.score(X_va, y_va)
    run.log({"val_error": err, "epoch": epoch})
    if run.should_stop:  # early-terminated: a real script would checkpoint here
        break
print(f"val_error {err:.4f} after {epoch + 1} epochs", flush=True)
run.finish()
