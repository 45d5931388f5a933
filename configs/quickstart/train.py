"""A toy training loop: minimise a noisy 2-D function over a few 'epochs'.

Runs standalone (`python train.py --lr=0.1 --momentum=0.9`) or as a sweep trial; it reports
through `sweepq.init`/`run.log`, exactly like a real script would with W&B.
"""

import argparse
import math
import time

import sweepq

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--momentum", type=float, default=0.5)
parser.add_argument("--optimizer", default="sgd")
parser.add_argument("--epochs", type=int, default=8)
args = parser.parse_args()

run = sweepq.init(config=vars(args))
cfg = run.config
# a smooth bowl in (log lr, momentum) with its minimum near lr=0.03, momentum=0.8
base = (math.log10(cfg.lr) + 1.5) ** 2 + 4 * (cfg.momentum - 0.8) ** 2
if cfg.optimizer == "adam":
    base *= 0.8
for epoch in range(cfg.epochs):
    loss = base + 1.0 / (epoch + 1)
    run.log({"loss": loss, "epoch": epoch})
    time.sleep(0.05)
run.finish()
