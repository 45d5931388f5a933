"""Test training program for conditional parameters: records exactly what it was handed.

Writes ``<SWEEPQ_TEST_RECORD>/<run_id>.json`` as it starts: its argv, ``SWEEPQ_PARAMS`` (parsed)
and ``run.config`` (``sweepq.init()`` with no defaults, so it holds the trial's parameters and
nothing else). Then logs ``loss`` for ``steps`` steps (default 3), ``sleep`` seconds apart
(default 0.05): ``loss = sum((v - 0.3)^2 for every numeric parameter but steps and sleep, nested
ones included) + 1/(step+1)``, so a trial whose numbers are near 0.3 wins at every step.
"""

import json
import os
import sys
import time

import sweepq

run = sweepq.init()
cfg = dict(run.config)
rec_dir = os.environ.get("SWEEPQ_TEST_RECORD")
run_id = os.environ.get("SWEEPQ_RUN_ID", "standalone")
if rec_dir:
    rec = {
        "run": run_id,
        "argv": sys.argv[1:],
        "sweepq_params": json.loads(os.environ.get("SWEEPQ_PARAMS") or "null"),
        "config": cfg,
    }
    path = os.path.join(rec_dir, f"{run_id}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(rec, f)
    os.replace(path + ".tmp", path)


def numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return []


steps = int(cfg.get("steps", 3))
sleep = float(cfg.get("sleep", 0.05))
base = sum((x - 0.3) ** 2 for k, v in cfg.items() if k not in ("steps", "sleep") for x in numbers(v))
for step in range(steps):
    run.log({"loss": base + 1.0 / (step + 1)}, step=step)
    time.sleep(sleep)
run.finish()
