"""``import sweepq as wandb``: a script written against W&B's API runs standalone and as a trial
of a sweep on a real worker, with each trial's own parameters in ``wandb.config`` and every
``wandb.log`` row in sweepq."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, wait_for

pytestmark = pytest.mark.redis

PROGRAM = str(PROGRAMS / "wandb_api_train.py")
DEFAULTS = {"lr": 0.1, "layers": 2, "optimizer": {"name": "sgd", "momentum": 0.9}}


def expected_history(lr: float, layers: int) -> list[dict]:
    rows = []
    for step in range(4):
        loss = (lr - 0.01) ** 2 + 0.01 * layers + 1.0 / (step + 1)
        rows.append({"lr_seen": lr, "loss": loss, "epoch": step, "_step": step})
    rows.append({"loss": rows[-1]["loss"] / 2, "_step": 10})
    return rows


def test_standalone_outside_a_sweep() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPQ_") and k != "WANDB_API_RECORD"}
    r = subprocess.run([sys.executable, PROGRAM], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and not lines[0].startswith("@sweepq"), r.stdout  # no metric lines
    rec = json.loads(lines[0])
    assert rec["id"] is None and rec["name"] == "standalone"
    # outside a sweep nothing is locked: the script's own update wins
    assert rec["config"] == {**DEFAULTS, "lr": 123.0, "batch_size": 64, "dropout": 0.25}
    assert rec["history"] == expected_history(123.0, 2)
    assert rec["summary"]["final_loss"] == rec["history"][3]["loss"]
    assert rec["summary"]["optimizer"] == "sgd" and rec["summary"]["lr_seen"] == 123.0
    assert "ignored" not in r.stderr


def test_trials_of_a_sweep_get_their_own_config_and_every_row(
    store,
    start_worker,
    controller,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    from sweepq.config import load_config

    rec_dir = tmp_path / "records"
    rec_dir.mkdir()
    sid = store.create_sweep(
        load_config(
            {
                "method": "grid",
                "program": PROGRAM,
                "command": [
                    "${env}",
                    sys.executable,
                    "${program}",
                ],  # no arguments: values only through sweepq
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {
                    "lr": {"values": [0.01, 0.05]},
                    "layers": {"value": 3},
                    "optimizer": {"parameters": {"name": {"values": ["adam", "sgd"]}}},
                },
            }
        )
    )
    start_worker(concurrency=2, env={"WANDB_API_RECORD": str(rec_dir)})
    controller()
    wait_for(lambda: sid not in store.active_sweeps(), 120, what="sweep end", info=lambda: store.status(sid))
    trials = store.get_trials(store.trial_ids(sid))
    assert len(trials) == 4 and all(t["state"] == "finished" for t in trials), [
        (t["id"], t["state"], t["reason"]) for t in trials
    ]
    assert sorted((t["params"]["lr"], t["params"]["optimizer"]["name"]) for t in trials) == [
        (0.01, "adam"),
        (0.01, "sgd"),
        (0.05, "adam"),
        (0.05, "sgd"),
    ]
    for t in trials:
        rec = json.loads((rec_dir / f"{t['id']}.json").read_text())
        assert rec["id"] == t["id"] and rec["name"] == t["id"]
        # the sweep's values over the defaults (a nested group replaces the default subtree),
        # locked against the script's update; the script's new keys are kept
        assert rec["config"] == {**DEFAULTS, **t["params"], "batch_size": 64, "dropout": 0.25}
        history = expected_history(t["params"]["lr"], 3)
        assert rec["history"] == history
        assert store.trial_rows(t["id"]) == history  # every row reached sweepq, in order
        assert t["history"] == [row["loss"] for row in history]
        assert t["metric"] == pytest.approx(history[-1]["loss"])
        assert t["steps"] == len(history)
