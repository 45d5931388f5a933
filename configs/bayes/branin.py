"""Branin-Hoo (a standard 2-D optimisation test function, minimum 0.397887), reported per 'epoch'."""

import argparse
import math

import sweepq

p = argparse.ArgumentParser()
p.add_argument("--x1", type=float, default=0.0)
p.add_argument("--x2", type=float, default=0.0)
args = p.parse_args()
run = sweepq.init(config=vars(args))
x1, x2 = run.config.x1, run.config.x2
a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
value = a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s
run.log({"branin": value})
run.finish()
