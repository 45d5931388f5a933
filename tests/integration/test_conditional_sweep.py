"""Conditional parameters (``when``) through the whole system: a real controller, real Redis, real
``celery worker`` processes (and ``sweepq run``), and a trial program that records its argv,
``SWEEPQ_PARAMS`` and ``run.config``.

A parameter whose condition does not hold must be absent from all three; grid must run exactly
the active combinations, each once; random and bayes must never hand a trial an inactive
parameter; early termination must work unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROGRAMS, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PROGRAM = str(PROGRAMS / "conditional_trial.py")
COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]


def conditional_config(method: str, parameters: dict[str, Any], **over: Any) -> dict[str, Any]:
    cfg = {
        "method": method,
        "program": PROGRAM,
        "command": COMMAND,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {**parameters, "steps": {"value": 2}, "sleep": {"value": 0.01}},
        **over,
    }
    return cfg


def expected_keys(params: dict[str, Any], parameters: dict[str, Any]) -> set[str]:
    """The top-level names a trial with these values must hold: each parameter whose ``when``
    holds (its parent present, with one of the listed values; so chains follow), and every one
    without ``when``."""
    keys: set[str] = set()
    for name, spec in parameters.items():
        when = spec.get("when") or {}
        ok = True
        for parent, allowed in when.items():
            allowed = allowed if isinstance(allowed, list) else [allowed]
            if parent not in params or params[parent] not in allowed:
                ok = False
        if ok:
            keys.add(name)
    return keys


def argv_of(params: dict[str, Any]) -> list[str]:
    """``${args}`` for these parameters: ``--k=v`` in sorted key order, dicts with sorted keys."""

    def srt(v: Any) -> Any:
        return {k: srt(v[k]) for k in sorted(v)} if isinstance(v, dict) else v

    return [f"--{k}={srt(params[k])}" for k in sorted(params)]


def check_trials(store, sid: str, rec_dir: Path, parameters: dict[str, Any]) -> list[dict[str, Any]]:  # noqa: ANN001
    """Every trial of the sweep holds exactly its active parameters, and its process got exactly
    those: in argv, in ``SWEEPQ_PARAMS`` and in ``run.config``. Returns the trials."""
    trials = store.get_trials(store.trial_ids(sid))
    records = {r["run"]: r for r in (json.loads(p.read_text()) for p in rec_dir.glob("*.json"))}
    for t in trials:
        p = t["params"]
        assert set(p) == expected_keys(p, parameters) | {"steps", "sleep"}, p
        if t["state"] in ("queued", "canceled"):
            continue  # never ran: nothing recorded
        rec = records[t["id"]]
        assert rec["argv"] == argv_of(p), (rec["argv"], p)
        assert rec["sweepq_params"] == p
        assert rec["config"] == p
    return trials


GRID = {
    "opt": {"values": ["sgd", "adam"]},
    "momentum": {"values": [0.5, 0.9], "when": {"opt": "sgd"}},
    "beta": {"values": [0.9, 0.99, 0.999], "when": {"opt": "adam"}},
}


def test_grid_runs_exactly_the_active_combinations(store, start_worker, controller, tmp_path) -> None:  # noqa: ANN001
    from sweepq.config import load_config

    rec = tmp_path / "rec"
    rec.mkdir()
    sid = store.create_sweep(load_config(conditional_config("grid", GRID)))
    start_worker(concurrency=2, env={"SWEEPQ_TEST_RECORD": str(rec)})
    controller()
    wait_for(lambda: sid not in store.active_sweeps(), 90, what="grid end", info=lambda: store.status(sid))
    trials = check_trials(store, sid, rec, GRID)
    points = sorted(
        (t["params"]["opt"], t["params"].get("momentum"), t["params"].get("beta")) for t in trials
    )
    assert points == sorted(
        [
            ("sgd", 0.5, None),
            ("sgd", 0.9, None),
            ("adam", None, 0.9),
            ("adam", None, 0.99),
            ("adam", None, 0.999),
        ]
    )
    assert len(trials) == 5 and all(t["state"] == "finished" for t in trials)
    assert len(list(rec.glob("*.json"))) == 5  # each point ran once
    st = store.status(sid)
    assert st["state"] == "finished" and st["end_reason"] == "search space exhausted"
    assert st["best"]["params"] == {"opt": "sgd", "momentum": 0.5, "steps": 2, "sleep": 0.01}


CHAIN = {
    "opt": {"values": ["sgd", "adam"]},
    "lr": {"min": 0.0, "max": 1.0},
    "momentum": {"min": 0.0, "max": 1.0, "when": {"opt": "sgd"}},
    "sched": {"values": ["constant", "invscaling"], "when": {"opt": "sgd"}},
    "power_t": {"min": 0.0, "max": 1.0, "when": {"sched": "invscaling"}},  # a chain
    "adam": {  # a group: its when applies to all it holds
        "when": {"opt": ["adam"]},
        "parameters": {"beta1": {"values": [0.8, 0.9]}, "beta2": {"min": 0.9, "max": 1.0}},
    },
}


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_random_and_bayes_never_pass_an_inactive_parameter(
    store,  # noqa: ANN001
    start_worker,  # noqa: ANN001
    controller,  # noqa: ANN001
    tmp_path: Path,
    method: str,
) -> None:
    from sweepq.config import load_config

    rec = tmp_path / "rec"
    rec.mkdir()
    sid = store.create_sweep(load_config(conditional_config(method, CHAIN, run_cap=16, seed=5)))
    start_worker(concurrency=2, env={"SWEEPQ_TEST_RECORD": str(rec)})
    controller()
    wait_for(
        lambda: sid not in store.active_sweeps(), 120, what=f"{method} end", info=lambda: store.status(sid)
    )
    trials = check_trials(store, sid, rec, CHAIN)
    assert len(trials) == 16 and all(t["state"] == "finished" for t in trials), [t["state"] for t in trials]
    assert len(list(rec.glob("*.json"))) == 16
    # both branches and both ends of the chain were exercised
    assert {t["params"]["opt"] for t in trials} == {"sgd", "adam"}
    assert any("power_t" in t["params"] for t in trials)
    assert any(t["params"].get("sched") == "constant" for t in trials)


HYPERBAND = {
    "opt": {"values": ["sgd", "adam"]},
    # loss = (v - 0.3)^2 + 1/(step+1): one clear winner (sgd, x 0.3), the others lose at every step
    "x": {"values": [0.3, 2.0, 3.0], "when": {"opt": "sgd"}},
    "y": {"values": [1.5, 2.5], "when": {"opt": "adam"}},
}


def test_hyperband_on_a_conditional_sweep_through_sweepq_run(sq_env, store, tmp_path) -> None:  # noqa: ANN001
    """``sweepq run`` (controller and local workers) with hyperband: losers are stopped, the
    sweep ends normally with exactly the active grid points."""
    rec = tmp_path / "rec"
    rec.mkdir()
    cfg = conditional_config(
        "grid",
        HYPERBAND,
        early_terminate={"type": "hyperband", "min_iter": 2, "eta": 2},
        stop_grace=5,
    )
    cfg["parameters"].update({"steps": {"value": 12}, "sleep": {"value": 0.15}})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "sweepq.cli", "run", str(path), "--workers", "3", "--json"],
        env={**sq_env, "SWEEPQ_TEST_RECORD": str(rec)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert st["state"] == "finished" and st["end_reason"] == "search space exhausted"
    trials = store.get_trials(store.trial_ids(st["id"]))
    for t in trials:  # the parameters the trial held are all it got (steps/sleep are constants)
        p = t["params"]
        assert set(p) == expected_keys(p, HYPERBAND) | {"steps", "sleep"}, p
        rec_t = json.loads((rec / f"{t['id']}.json").read_text())
        assert rec_t["argv"] == argv_of(p) and rec_t["sweepq_params"] == p == rec_t["config"]
    assert sorted((t["params"]["opt"], t["params"].get("x"), t["params"].get("y")) for t in trials) == sorted(
        [("sgd", 0.3, None), ("sgd", 2.0, None), ("sgd", 3.0, None), ("adam", None, 1.5), ("adam", None, 2.5)]
    )
    states = {t["state"] for t in trials}
    assert states <= {"finished", "stopped"} and "stopped" in states, [
        (t["params"], t["state"]) for t in trials
    ]
    assert st["best"]["params"]["x"] == 0.3
    assert next(t for t in trials if t["params"].get("x") == 0.3)["state"] == "finished"


def test_example_preview_holds_no_inactive_parameter() -> None:
    """configs/conditional: the argv of its first suggestions (`sweepq preview -n 30 --json`)
    name only the parameters whose conditions hold, and each branch of the chain comes up."""
    root = Path(__file__).resolve().parents[2]
    path = root / "configs" / "conditional" / "sweep.yaml"
    parameters = yaml.safe_load(path.read_text())["parameters"]
    r = subprocess.run(
        [sys.executable, "-m", "sweepq.cli", "preview", str(path), "-n", "30", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    argvs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(argvs) == 30
    seen: set[str] = set()
    for argv in argvs:
        args = dict(a[2:].split("=", 1) for a in argv if a.startswith("--"))
        assert set(args) == expected_keys(args, parameters), argv
        seen.add(args["solver"] + ("+power_t" if "power_t" in args else ""))
    assert seen == {"sgd", "sgd+power_t", "adam"}, seen
