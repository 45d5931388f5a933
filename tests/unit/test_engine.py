"""sweepq.engine: dispatch, random search seeding, to_stop, and the validate/preview commands."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sweepq import engine
from sweepq.cli import main
from sweepq.config import ConfigError, load_config

RANDOM = {
    "method": "random",
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
        "layers": {"min": 1, "max": 8},
        "act": {"values": ["relu", "gelu"]},
        "fixed": {"value": "x"},
        "model": {"parameters": {"width": {"values": [64, 128]}, "drop": {"min": 0.0, "max": 0.5}}},
    },
}


def as_trials(points):
    return [
        {"id": f"t{i}", "params": p, "state": "finished", "metric": None, "history": []}
        for i, p in enumerate(points)
    ]


def test_random_is_nested_with_constants_and_types():
    (p,) = engine.suggest(RANDOM, [], seed=3)
    assert set(p) == {"lr", "layers", "act", "fixed", "model"} and set(p["model"]) == {"width", "drop"}
    assert p["fixed"] == "x" and type(p["layers"]) is int and type(p["lr"]) is float


def test_random_seed_reproducible_and_batch_equals_sequential():
    a = engine.suggest(RANDOM, [], n=5, seed=42)
    assert a == engine.suggest(RANDOM, [], n=5, seed=42)
    trials: list = []
    for _ in range(5):
        trials += as_trials(engine.suggest(RANDOM, trials, seed=42))[-1:]
        trials[-1]["id"] = f"t{len(trials)}"
    assert [t["params"] for t in trials] == a
    # later calls in a live sweep differ from the first ones
    assert engine.suggest(RANDOM, as_trials(a), n=5, seed=42) != a
    assert len({json.dumps(p, sort_keys=True) for p in a}) == 5


def test_config_seed_used_and_argument_overrides():
    cfg = dict(RANDOM, seed=9)
    assert engine.suggest(cfg, []) == engine.suggest(RANDOM, [], seed=9)
    assert engine.suggest(cfg, [], seed=10) == engine.suggest(RANDOM, [], seed=10)


def test_no_seed_fresh_entropy():
    got = {json.dumps(engine.suggest(RANDOM, [])[0], sort_keys=True) for _ in range(5)}
    assert len(got) == 5


def test_probabilities_in_random():
    cfg = {"method": "random", "parameters": {"a": {"values": ["x", "y"], "probabilities": [0.0, 1.0]}}}
    assert {p["a"] for p in engine.suggest(cfg, [], n=50, seed=1)} == {"y"}


def test_config_sources_and_errors(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(RANDOM))
    assert engine.suggest(str(f), [], seed=1) == engine.suggest(RANDOM, [], seed=1)
    assert engine.suggest(yaml.safe_dump(RANDOM), [], seed=1) == engine.suggest(
        load_config(RANDOM), [], seed=1
    )
    with pytest.raises(ConfigError):
        engine.suggest({"method": "grid"}, [])
    assert engine.suggest(RANDOM, [], n=0) == []


def test_bayes_dispatch_returns_n_points_in_the_space():
    cfg = {
        "method": "bayes",
        "metric": {"name": "loss"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "c": {"value": 1}},
    }
    pts = engine.suggest(cfg, [], n=3, seed=0)
    assert len(pts) == 3 and all(0.0 <= p["x"] <= 1.0 and p["c"] == 1 for p in pts)


def test_to_stop():
    assert engine.to_stop(RANDOM, []) == []
    cfg = {"method": "random", "metric": {"name": "loss"}, "parameters": {"x": {"values": [1]}},
           "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2}}  # fmt: skip
    trials = [
        {"id": "good", "params": {"x": 1}, "state": "finished", "metric": 0.1, "history": [0.1, 0.1]},
        {"id": "good2", "params": {"x": 1}, "state": "finished", "metric": 0.2, "history": [0.2, 0.2]},
        {"id": "bad", "params": {"x": 1}, "state": "running", "metric": 9.0, "history": [9.0, 9.0]},
    ]
    assert engine.to_stop(cfg, trials) == ["bad"]


# --- the CLI -------------------------------------------------------------------------------------


def cli(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin)


def test_validate_prints_normalised_yaml_and_warnings(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text("method: random\nparameters:\n  lr: {distribution: log_uniform, min: -9, max: -2}\n")
    r = cli("validate", str(f))
    assert r.exit_code == 0
    out = yaml.safe_load(r.stdout)
    assert out["parameters"]["lr"]["distribution"] == "log_uniform" and out["retries"] == 1
    assert "_normalised" not in r.stdout
    assert any(line.startswith("warning: parameters.lr:") for line in r.stderr.splitlines())
    # the printed config is itself a valid config with the same meaning
    g = tmp_path / "again.yaml"
    g.write_text(r.stdout)
    assert load_config(g) == load_config(f)


def test_validate_errors_exit_2_one_line_each(tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text("method: grid\nparameters:\n  lr: {min: 0.1, max: 0.01}\ncount: 3\n")
    r = cli("validate", str(f))
    assert r.exit_code == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert any(line.startswith("error: parameters.lr.min:") for line in lines)
    assert any(line.startswith("error: count:") for line in lines)
    assert all(line.startswith(("error: ", "warning: ")) for line in lines)


def test_validate_missing_file_stdin_and_junk(tmp_path: Path):
    r = cli("validate", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2 and "no such file" in r.stderr
    r = cli("validate", "-", stdin="method: random\nparameters: {a: {value: 1}}\n")
    assert r.exit_code == 0 and "method: random" in r.stdout
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 10)
    r = cli("validate", str(junk))
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_preview_grid_human_and_json(tmp_path: Path):
    f = tmp_path / "g.yaml"
    f.write_text(yaml.safe_dump({
        "method": "grid", "program": "train.py",
        "parameters": {"a": {"values": [1, 2]}, "msg": {"value": "two words; rm -rf ~"}},
    }))  # fmt: skip
    r = cli("preview", str(f), "-n", "5")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 2  # the grid has 2 points, even though 5 were asked for
    assert shlex.split(lines[0]) == [
        "/usr/bin/env",
        "python",
        "train.py",
        "--a=1",
        "--msg=two words; rm -rf ~",
    ]
    r = cli("preview", str(f), "-n", "5", "--json")
    assert [json.loads(line)[3] for line in r.stdout.splitlines()] == ["--a=1", "--a=2"]


def test_preview_params_fill_and_errors(tmp_path: Path):
    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump(dict(RANDOM, program="t.py")))
    r = cli("preview", str(f), "--params", json.dumps({"lr": 0.5, "extra": True}), "--json")
    assert r.exit_code == 0, r.stderr
    argv = json.loads(r.stdout)
    assert "--lr=0.5" in argv and "--extra=True" in argv and "--fixed=x" in argv
    assert "layers not given" in r.stderr and "extra is not a parameter" in r.stderr
    r = cli("preview", str(f), "--params", "{not json")
    assert r.exit_code == 2 and "--params" in r.stderr
    r = cli("preview", str(f), "--params", "[1]")
    assert r.exit_code == 2
    r = cli("preview", str(f), "-n", "0")
    assert r.exit_code == 2


def test_preview_bayes_shows_initial_random_points(tmp_path: Path):
    f = tmp_path / "b.yaml"
    f.write_text(yaml.safe_dump({"method": "bayes", "metric": {"name": "loss"}, "program": "t.py",
                                 "parameters": {"x": {"min": 0.0, "max": 1.0}}}))  # fmt: skip
    r = cli("preview", str(f), "-n", "3", "--json", "--seed", "1")
    assert r.exit_code == 0, r.stderr
    xs = [float(json.loads(line)[-1].split("=")[1]) for line in r.stdout.splitlines()]
    assert len(xs) == 3 and len(set(xs)) == 3 and all(0 <= x <= 1 for x in xs)
