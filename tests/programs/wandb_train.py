"""A W&B training script as W&B users write them: it imports wandb (never sweepq), takes its
hyperparameters from ``wandb.config`` over its defaults and logs with ``wandb.log``.

For the tests it also writes what it saw and logged to ``$WANDB_TRAIN_RECORD/<run id>.json``
after every step (a stopped run leaves what it got to), so a test can compare that with what
sweepq recorded. The loss depends on ``lr`` (best near 0.003), ``optimizer.name`` (sgd is worse)
and ``layers``, and falls with the epoch.
"""

import json
import math
import os
import time

import wandb

defaults = {
    "lr": 0.1,
    "layers": 2,
    "optimizer": {"name": "sgd", "momentum": 0.9},
    "epochs": 6,
    "sleep": 0.3,
}
run = wandb.init(config=defaults, project="sweepq-compat")
config = wandb.config
lr = config.lr
layers = config["layers"]
optimizer = config.optimizer["name"]
epochs = int(config.epochs)

record_dir = os.environ.get("WANDB_TRAIN_RECORD")
record = {"run": run.id, "pid": os.getpid(), "config": dict(config), "logged": [], "done": False}


def save() -> None:
    if record_dir:
        path = os.path.join(record_dir, f"{run.id}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)


save()
penalty = {"adam": 0.0, "sgd": 0.5}.get(optimizer, 1.0)
for epoch in range(epochs):
    loss = 0.1 * (math.log10(lr) + 2.5) ** 2 + penalty + 0.01 * layers + 1.0 / (epoch + 1)
    row = {"loss": loss, "epoch": epoch, "train": {"acc": 1.0 - loss / 10, "lr": lr}}
    record["logged"].append(row)  # recorded first: a stop may land between the two
    save()
    wandb.log(row)
    time.sleep(float(config.sleep))
wandb.summary["final_loss"] = loss
wandb.finish()
record["done"] = True
save()
