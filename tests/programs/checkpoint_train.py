"""A training script that checkpoints when sweepq asks it to stop (``run.should_stop``).

loss = (x - 0.3)^2 + 1/(step + 1); on a stop request it writes ``<ckpt_dir>/<run id>.json`` with
the step it reached and exits 0, as a real script saves its weights before leaving.
"""

import json
import os
import time

import sweepq

run = sweepq.init(config={"x": 0.3, "steps": 12, "sleep": 0.2, "ckpt_dir": "."})
c = run.config
for step in range(int(c.steps)):
    time.sleep(float(c.sleep))
    run.log({"loss": (float(c.x) - 0.3) ** 2 + 1.0 / (step + 1)})
    if run.should_stop:
        path = os.path.join(c.ckpt_dir, f"{run.id}.json")
        with open(path + ".tmp", "w") as f:
            json.dump({"step": step, "pid": os.getpid()}, f)
        os.replace(path + ".tmp", path)
        break
run.finish()
