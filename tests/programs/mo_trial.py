"""Test training program for multi-objective sweeps: ZDT1 on ``x1..x3`` logged as two objectives.

Logs ``f1`` and ``f2`` on separate rows at every step (``steps``, default 3): the value logged last
is the summary the Pareto front reads, so the last step's must win over earlier ones (earlier steps
log a worse ``f2`` by ``1 / (step + 1)``). ``x1 == 0.5`` exactly skips ``f2`` (a trial that never
logged an objective must stay off the front). ``SWEEPQ_TEST_RECORD`` gets ``<run>.json`` with the
values logged last.
"""

import json
import math
import os
import time

import sweepq

run = sweepq.init()
cfg = dict(run.config)
steps = int(cfg.get("steps", 3))
x = [float(cfg[f"x{i}"]) for i in (1, 2, 3)]
g = 1 + 9 * (x[1] + x[2]) / 2
f1 = x[0]
f2 = g * (1 - math.sqrt(f1 / g))
for step in range(steps):
    last = step == steps - 1
    run.log({"f1": f1}, step=step)
    if x[0] != 0.5:
        run.log({"f2": f2 + (0.0 if last else 1.0 / (step + 1))}, step=step)
    time.sleep(float(cfg.get("sleep", 0.01)))
rec_dir = os.environ.get("SWEEPQ_TEST_RECORD")
if rec_dir:
    with open(os.path.join(rec_dir, f"{os.environ.get('SWEEPQ_RUN_ID', 'standalone')}.json"), "w") as f:
        json.dump({"f1": f1, "f2": None if x[0] == 0.5 else f2}, f)
run.finish()
