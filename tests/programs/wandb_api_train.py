"""A script written against W&B's API with sweepq in wandb's place: ``import sweepq as wandb``.

It uses the common part of W&B's API (``init`` with W&B's keyword arguments, ``config`` by
attribute and item and ``config.update``, ``log`` with ``commit=False`` and ``step=``,
``summary``, ``run``, ``finish``, and the no-ops ``login``, ``watch``, ``define_metric``), and
writes what it saw to ``$WANDB_API_RECORD/<run name>.json`` (or prints it when that is unset).
It takes no command-line arguments: inside a sweep its values come only through sweepq.
"""

import json
import os
import sys

import sweepq as wandb

assert wandb.run is None, "no run before init"
wandb.login()
run = wandb.init(
    config={"lr": 0.1, "layers": 2, "optimizer": {"name": "sgd", "momentum": 0.9}},
    project="demo",
    entity="someone",
    name="ignored",
    tags=["a"],
    reinit=True,
)
assert wandb.run is run
wandb.define_metric("loss", summary="min")
wandb.watch(None, log="all")
# lr is the sweep's inside a sweep (W&B locks it: this update is ignored there), batch_size is new
wandb.config.update({"lr": 123.0, "batch_size": 64}, allow_val_change=True)
wandb.config.dropout = 0.25

lr = wandb.config.lr
layers = wandb.config["layers"]
loss = None
for step in range(4):
    loss = (lr - 0.01) ** 2 + 0.01 * layers + 1.0 / (step + 1)
    wandb.log({"lr_seen": lr}, commit=False)
    wandb.log({"loss": loss, "epoch": step})
wandb.log({"loss": loss / 2}, step=10)
wandb.summary["final_loss"] = loss
wandb.summary.update({"optimizer": wandb.config.optimizer.name})

record = {
    "id": run.id,
    "name": run.name,
    "config": dict(wandb.config),
    "summary": dict(wandb.summary),
    "history": run.history,
}
wandb.finish()
assert wandb.run is None, "no run after finish"
out = os.environ.get("WANDB_API_RECORD")
if out:
    with open(os.path.join(out, f"{record['name']}.json"), "w") as f:
        json.dump(record, f)
else:
    sys.stdout.write(json.dumps(record) + "\n")
