"""sweepq.config: reading, W&B's rules with key-path messages, defaults, sweepq's rulings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from sweepq.config import ConfigError, is_normalised, load_config, to_yaml, validate

BASE = {"method": "random", "parameters": {"lr": {"min": 0.001, "max": 0.1}}}


def cfg(**over):
    c = json.loads(json.dumps(BASE))
    c.update(over)
    return c


def errors_of(source) -> list[str]:
    config, errors, _ = validate(source)
    assert config is None, "expected the config to be rejected"
    assert errors
    return errors


def one_error(source, path: str, *words: str) -> str:
    errors = errors_of(source)
    hits = [e for e in errors if e.startswith(f"{path}:")]
    assert hits, f"no error about {path}: {errors}"
    for w in words:
        assert any(w in e for e in hits), f"{w!r} not in {hits}"
    return hits[0]


# --- reading -------------------------------------------------------------------------------


def test_yaml_12_floats_and_compatible_ints_bools():
    text = """
method: random
parameters:
  lr: {min: 1e-5, max: 5E-3}
  a: {value: 1_000}
  b: {value: 0x10}
  c: {value: .5}
  d: {value: "1e-5"}
  e: {value: yes}
  f: {value: 2024-01-02}
  g: {value: -1.5e+3}
  h: {value: .inf}
"""
    c = load_config(text)
    p = c["parameters"]
    assert p["lr"] == {"distribution": "uniform", "min": 1e-5, "max": 5e-3}
    assert p["a"]["value"] == 1000 and isinstance(p["a"]["value"], int)
    assert p["b"]["value"] == 16
    assert p["c"]["value"] == 0.5
    assert p["d"]["value"] == "1e-5"  # quoted stays a string
    assert p["e"]["value"] is True  # YAML 1.1 booleans kept, as W&B reads them
    assert p["f"]["value"] == "2024-01-02"  # no timestamps: JSON cannot carry them
    assert p["g"]["value"] == -1500.0
    assert p["h"]["value"] == math.inf


def test_sources_path_str_bytes_dict(tmp_path: Path):
    text = yaml.safe_dump(BASE)
    f = tmp_path / "s.yaml"
    f.write_text(text)
    expected = load_config(BASE)
    assert load_config(f) == expected
    assert load_config(str(f)) == expected
    assert load_config(text) == expected
    assert load_config(text.encode()) == expected
    assert load_config(json.dumps(BASE)) == expected  # JSON is YAML


def test_missing_file_and_directory(tmp_path: Path):
    assert "no such file" in errors_of(str(tmp_path / "nope.yaml"))[0]
    assert "no such file" in errors_of(tmp_path / "nope.yaml")[0]
    assert "directory" in errors_of(tmp_path)[0]


def test_only_validates_own_output_skips_the_check():
    c = load_config(BASE)
    assert is_normalised(c) and "_normalised" not in c
    again = load_config(c)
    assert again == c and is_normalised(again) and again is not c  # a shallow copy, unchecked
    # anything else is checked in full: a plain copy, a JSON round trip (what a store holds)
    one_error(dict(c, name=5), "name", "must be a string")
    stored = json.loads(json.dumps(c))
    assert not is_normalised(stored) and load_config(stored) == c


def _forged(**over) -> dict:
    """A normalised config as JSON (the shape the engine relies on) claiming the old marker."""
    c = json.loads(json.dumps(load_config({**BASE, "metric": {"name": "loss"}})))
    c.update(over, _normalised=True)
    return c


@pytest.mark.parametrize(("over", "path", "needle"), [
    ({"parameters": {"lr": {"distribution": "uniform", "min": 2.0, "max": 1.0}}}, "parameters.lr.min", "less than max"),
    ({"run_cap": -7}, "run_cap", "at least 1"),
    ({"queue": "bad queue!!"}, "queue", "queue name"),
    ({"parameters": {"<img src=x onerror=alert(1)>": {"distribution": "constant", "value": 1}}},
     "parameters.<img src=x onerror=alert(1)>", "not allowed"),
    ({"method": "grid"}, "parameters.lr", "grid search cannot enumerate"),
    ({"max_concurrent": "abc"}, "max_concurrent", "must be an integer"),
    ({"retries": -1}, "retries", "at least 0"),
    ({"early_terminate": {"type": "hyperband", "min_iter": 0}}, "early_terminate.min_iter", "at least 1"),
])  # fmt: skip
def test_the_old_marker_gives_no_trust(over, path, needle):
    one_error(_forged(**over), path, needle)


def test_the_old_marker_is_dropped_with_a_warning_other_internal_keys_refused():
    config, errors, warnings = validate(_forged())
    assert not errors and "_normalised" not in config and is_normalised(config)
    assert [w for w in warnings if w.startswith("_normalised:")]
    one_error(cfg(_trusted=True), "_trusted", "internal keys")
    one_error(cfg(_id="x"), "_id", "internal keys")


def test_config_error_is_value_error():
    with pytest.raises(ValueError) as info:
        load_config(cfg(method="nope"))
    assert isinstance(info.value, ConfigError)
    assert info.value.errors and info.value.errors[0].startswith("method:")


def test_output_round_trips_through_yaml():
    text = (
        Path(__file__).parent.parent / "data/wandb-configs/017-tsilva-mnist-classifier-bayes-nested.yaml"
    ).read_text()
    c = load_config(text)
    again = load_config(to_yaml(c))
    assert again == c
    assert "_normalised" not in to_yaml(c)


# --- inference and defaults ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "dist"),
    [
        ({"value": 3}, "constant"),
        ({"value": None}, "constant"),
        ({"values": [1, "a", None]}, "categorical"),
        ({"values": [1, 2], "probabilities": [0.25, 0.75]}, "categorical_w_probabilities"),
        ({"min": 1, "max": 5}, "int_uniform"),
        ({"min": 1, "max": 5.0}, "uniform"),
        ({"min": 0.5, "max": 5}, "uniform"),
        ({"min": 1, "max": 5, "distribution": "uniform"}, "uniform"),
        ({"parameters": {"x": {"value": 1}}}, "param_dict"),
    ],
)
def test_inference(spec, dist):
    c = load_config(cfg(parameters={"p": spec}))
    assert c["parameters"]["p"]["distribution"] == dist


def test_defaults_filled():
    c = load_config(
        cfg(
            parameters={
                "a": {"distribution": "q_uniform", "min": 0, "max": 10},
                "b": {"distribution": "normal"},
                "c": {"distribution": "q_beta"},
                "d": {"distribution": "q_log_normal", "q": 2},
                "e": {"min": 1, "max": 3, "distribution": "uniform"},
            },
            metric={"name": "loss"},
        )
    )
    p = c["parameters"]
    assert p["a"] == {"distribution": "q_uniform", "min": 0, "max": 10, "q": 1.0}
    assert p["b"] == {"distribution": "normal", "mu": 0.0, "sigma": 1.0}
    assert p["c"] == {"distribution": "q_beta", "a": 1.0, "b": 1.0, "q": 1.0}
    assert p["d"]["q"] == 2 and isinstance(p["d"]["q"], int)
    assert p["e"]["min"] == 1.0 and isinstance(p["e"]["min"], float)
    assert c["metric"] == {
        "name": "loss",
        "goal": "minimize",
        "impute": "worst",
        "impute_while_running": "false",
    }
    assert c["command"] == ["${env}", "${interpreter}", "${program}", "${args}"]
    for key, value in {"seed": None, "max_concurrent": None, "trial_timeout": None, "retries": 1,
                       "gpus_per_trial": 1, "queue": "sweepq", "stop_grace": 30.0}.items():  # fmt: skip
        assert c[key] == value


def test_sweepq_keys():
    c = load_config(
        cfg(
            seed=7,
            max_concurrent=4,
            trial_timeout=60,
            retries=0,
            gpus_per_trial=2,
            queue="gpu.a100",
            stop_grace=5,
        )
    )
    assert (c["seed"], c["max_concurrent"], c["trial_timeout"], c["retries"], c["gpus_per_trial"]) == (
        7,
        4,
        60.0,
        0,
        2,
    )
    assert isinstance(c["trial_timeout"], float) and c["stop_grace"] == 5.0
    one_error(cfg(seed="x"), "seed", "integer")
    one_error(cfg(max_concurrent=0), "max_concurrent", "at least 1")
    one_error(cfg(trial_timeout=0), "trial_timeout", "greater than 0")
    one_error(cfg(retries=-1), "retries")
    one_error(cfg(gpus_per_trial=True), "gpus_per_trial")
    one_error(cfg(queue="a b"), "queue")
    one_error(cfg(stop_grace=-1), "stop_grace")


def test_nested_any_depth_kept():
    c = load_config(cfg(parameters={"a": {"parameters": {"b": {"parameters": {"c.d": {"values": [1, 2]}}}}}}))
    leaf = c["parameters"]["a"]["parameters"]["b"]["parameters"]["c.d"]
    assert leaf == {"distribution": "categorical", "values": [1, 2]}


def test_metric_target_and_impute():
    c = load_config(cfg(metric={"name": "acc", "goal": "maximize", "target": 1, "impute": "best",
                                "impute_while_running": "latest"}))  # fmt: skip
    assert c["metric"]["target"] == 1.0 and c["metric"]["impute_while_running"] == "latest"


def test_early_terminate_forms():
    m = {"name": "loss"}
    hb = load_config(cfg(metric=m, early_terminate={"type": "hyperband", "min_iter": 3}))["early_terminate"]
    assert hb == {"type": "hyperband", "min_iter": 3, "eta": 3, "strict": True}
    hb2 = load_config(cfg(metric=m, early_terminate={"type": "hyperband", "max_iter": 27, "s": 2.0}))[
        "early_terminate"
    ]
    assert hb2["s"] == 2 and isinstance(hb2["s"], int)
    asha = load_config(cfg(metric=m, early_terminate={"type": "asha"}))["early_terminate"]
    assert asha == {"type": "asha", "min_iter": 1, "eta": 3}
    med = load_config(cfg(metric=m, early_terminate={"type": "median"}))["early_terminate"]
    assert med == {"type": "median", "warmup_steps": 5, "min_trials": 5}


def test_project_entity_and_w_and_b_keys_kept():
    c = load_config(cfg(project="p", entity="e", name="n", description="d", run_cap=5, program="t.py"))
    assert (c["project"], c["entity"], c["name"], c["run_cap"], c["program"]) == ("p", "e", "n", 5, "t.py")


# --- rejections with key paths ---------------------------------------------------------------


def test_min_not_less_than_max():
    msg = one_error(cfg(parameters={"lr": {"min": 0.1, "max": 0.01}}), "parameters.lr.min", "less than max")
    assert "0.1" in msg and "0.01" in msg


def test_nested_errors_name_the_full_path():
    one_error(
        cfg(parameters={"m": {"parameters": {"w": {"min": 2, "max": 1}}}}), "parameters.m.parameters.w.min"
    )


@pytest.mark.parametrize(
    ("spec", "path", "word"),
    [
        ({"values": [1, 2], "probabilities": [0.5]}, "parameters.p.probabilities", "one entry per value"),
        ({"values": [1, 2], "probabilities": [0.5, 0.6]}, "parameters.p.probabilities", "sum to 1"),
        ({"values": [1, 2], "probabilities": [-0.5, 1.5]}, "parameters.p.probabilities[0]", "at least 0"),
        ({"values": 10}, "parameters.p.values", "list"),
        ({"values": []}, "parameters.p.values", "at least one"),
        (
            {"distribution": "log_uniform_values", "min": -0.1, "max": -0.001},
            "parameters.p.min",
            "greater than 0",
        ),
        ({"distribution": "int_uniform", "min": 2.0, "max": 8.0}, "parameters.p.min", "integer"),
        ({"distribution": "unifrom", "min": 0, "max": 1}, "parameters.p.distribution", "uniform"),
        ({"value": 1, "values": [1]}, "parameters.p", "not both"),
        ({"min": 1}, "parameters.p", "no max"),
        ({"mu": 0, "sigma": 1}, "parameters.p", "cannot tell"),
        ({"min": 0, "max": 10, "q": 2}, "parameters.p.q", "not a key"),
        ({"distribution": "normal", "sigma": -1}, "parameters.p.sigma", "at least 0"),
        ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}, "parameters.p.q", "greater than 0"),
        ({"distribution": "beta", "a": -1}, "parameters.p.a", "at least 0"),
        ({"distribution": "uniform", "min": "1e-5", "max": 1}, "parameters.p.min", "without quotes"),
        ({"distribution": "uniform", "min": float("nan"), "max": 1}, "parameters.p.min", "finite"),
        ({"distribution": "uniform", "min": True, "max": 2}, "parameters.p.min", "number"),
        ({"values": [1], "desc": "x"}, "parameters.p.desc", "not a key"),
        (
            {"distribution": "categorical", "values": [1, 2], "probabilities": [0.5, 0.5]},
            "parameters.p.probabilities",
            "not a key",
        ),
        ({"parameters": {}}, "parameters.p.parameters", "at least one"),
        ({"distribution": "constant"}, "parameters.p", "needs value"),
        ({}, "parameters.p", "cannot tell"),
        ({"min": -1e308, "max": 1e308}, "parameters.p", "too wide"),
        ({"distribution": "log_uniform", "min": 0, "max": 800}, "parameters.p.max", "overflows"),
        ({"distribution": "inv_log_uniform", "min": -800, "max": 0}, "parameters.p.min", "overflows"),
    ],
)
def test_parameter_rejections(spec, path, word):
    one_error(cfg(parameters={"p": spec}), path, word)


@pytest.mark.parametrize("bad", [[1, 2], 3, "x", None])
def test_parameter_spec_must_be_mapping(bad):
    one_error(cfg(parameters={"p": bad}), "parameters.p", "mapping")


@pytest.mark.parametrize("name", ["1a", "a/b", "a b", ""])
def test_bad_names(name):
    one_error(cfg(parameters={name: {"value": 1}}), f"parameters.{name}", "not allowed")


@pytest.mark.parametrize("name", ["a.b-c", "_x", "A9"])
def test_good_names(name):
    assert validate(cfg(parameters={name: {"value": 1}}))[0] is not None


def test_nested_names_checked():
    one_error(
        cfg(parameters={"g": {"parameters": {"9x": {"value": 1}}}}),
        "parameters.g.parameters.9x",
        "not allowed",
    )


def test_top_level_rules():
    one_error(cfg(count=10), "count", "--count")
    one_error(cfg(paramters={}), "paramters", "did you mean parameters")
    one_error(cfg(method="custom"), "method", "grid, random or bayes")
    one_error(cfg(method="hyper"), "method")
    one_error({"parameters": BASE["parameters"]}, "method", "missing")
    one_error({"method": "random"}, "parameters", "missing")
    one_error(cfg(parameters={}), "parameters", "at least one")
    one_error(cfg(command="python train.py"), "command", "list")
    one_error(cfg(command=None), "command", "list")
    one_error(cfg(program=3), "program", "string")
    one_error(cfg(run_cap=0), "run_cap", "at least 1")
    one_error(cfg(run_cap=True), "run_cap", "integer")
    one_error(cfg(kind="job"), "kind")
    one_error(cfg(controller={"type": "remote"}), "controller.type")
    one_error(cfg(metrics=[{"name": "a"}, {"name": "b"}]), "metrics", "custom")
    one_error(["method", "random"], "config", "mapping")
    one_error("just a string", "config", "mapping")


def test_metric_rules():
    one_error(cfg(metric={"goal": "minimize"}), "metric", "needs a name")
    one_error(cfg(metric={"name": "l", "goal": "minimise"}), "metric.goal", "did you mean minimize")
    one_error(cfg(metric={"name": "l", "goal": "hello world wrt wandb sweep function"}), "metric.goal")
    one_error(cfg(metric={"name": "l", "impute": "mean"}), "metric.impute")
    one_error(
        cfg(metric={"name": "l", "impute_while_running": False}), "metric.impute_while_running", '"false"'
    )
    one_error(cfg(metric={"name": "l", "target": "high"}), "metric.target", "number")
    one_error(cfg(metric={"name": "l", "mode": "max"}), "metric.mode", "unknown")
    one_error(cfg(metric="loss"), "metric", "mapping")


def test_early_terminate_rules():
    m = {"name": "l"}
    one_error(cfg(metric=m, early_terminate="hyperband"), "early_terminate", "mapping")
    one_error(
        cfg(metric=m, early_terminate={"type": "hyperband", "min_iter": 20, "eta": 1}),
        "early_terminate.eta",
        "greater than 1",
    )
    one_error(
        cfg(metric=m, early_terminate={"type": "hyperband", "max_iter": 27}),
        "early_terminate",
        "min_iter, or max_iter together with s",
    )
    one_error(
        cfg(metric=m, early_terminate={"type": "hyperband", "min_iter": 0}),
        "early_terminate.min_iter",
        "at least 1",
    )
    one_error(
        cfg(metric=m, early_terminate={"type": "hyperband", "max_iter": 27, "s": 2.5}),
        "early_terminate.s",
        "integer",
    )
    one_error(
        cfg(metric=m, early_terminate={"type": "hyperband", "min_iter": 3, "strict": "yes"}),
        "early_terminate.strict",
    )
    one_error(
        cfg(metric=m, early_terminate={"type": "hyperband", "min_iter": 3, "foo": 1}), "early_terminate.foo"
    )
    one_error(cfg(metric=m, early_terminate={"type": "pbt"}), "early_terminate.type")
    one_error(cfg(metric=m, early_terminate={"min_iter": 3}), "early_terminate.type", "missing")
    one_error(cfg(early_terminate={"type": "hyperband", "min_iter": 3}), "early_terminate", "needs a metric")
    one_error(cfg(metric=m, early_terminate={"type": "asha", "eta": 1}), "early_terminate.eta")
    one_error(
        cfg(metric=m, early_terminate={"type": "asha", "min_iter": 5, "max_iter": 2}),
        "early_terminate.max_iter",
    )
    one_error(cfg(metric=m, early_terminate={"type": "asha", "min_iter": 0}), "early_terminate.min_iter")
    one_error(
        cfg(metric=m, early_terminate={"type": "median", "warmup_steps": -1}), "early_terminate.warmup_steps"
    )
    one_error(
        cfg(metric=m, early_terminate={"type": "median", "min_trials": 0}), "early_terminate.min_trials"
    )
    one_error(
        cfg(metric=m, early_terminate={"type": "median", "min_iter": 3}),
        "early_terminate.min_iter",
        "not a key of median",
    )


def test_grid_rules():
    one_error(cfg(method="grid"), "parameters.lr", "grid search cannot enumerate a uniform")
    one_error(
        cfg(method="grid", parameters={"a": {"values": [1, 2], "probabilities": [0.5, 0.5]}}),
        "parameters.a",
        "probabilities",
    )
    one_error(
        cfg(method="grid", parameters={"g": {"parameters": {"x": {"distribution": "normal"}}}}),
        "parameters.g.parameters.x",
        "normal",
    )
    one_error(cfg(method="grid", parameters={"a": {"min": 0, "max": 10**9}}), "parameters.a", "grid points")
    ok = cfg(method="grid", parameters={"a": {"values": [1]}, "b": {"value": 2}, "c": {"min": 1, "max": 3},
                                         "d": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}})  # fmt: skip
    assert validate(ok)[0] is not None


def test_grid_refuses_a_q_below_float_precision():
    """Its values would repeat (numpy.arange in doubles); grid search relies on distinct values."""
    fine = {"distribution": "q_uniform", "min": 1.0, "max": 1.0000000005, "q": 1e-15}
    one_error(cfg(method="grid", parameters={"a": fine}), "parameters.a", "float precision")
    assert validate(cfg(method="random", parameters={"a": fine}))[0] is not None  # sampling is fine


def test_bayes_rules():
    one_error(cfg(method="bayes"), "metric", "bayes search needs a metric")
    one_error(
        cfg(method="bayes", metric={"name": "l"}, parameters={"a": {"value": 1}}),
        "parameters",
        "at least one parameter that varies",
    )
    assert validate(cfg(method="bayes", metric={"name": "l"}))[0] is not None


def test_all_errors_reported_at_once():
    errors = errors_of(
        {"method": "nope", "parameters": {"a": {"min": 2, "max": 1}}, "metric": {"goal": "up"}, "count": 1}
    )
    for path in ("method", "parameters.a.min", "metric", "metric.goal", "count"):
        assert any(e.startswith(f"{path}:") for e in errors), (path, errors)


def test_messages_are_single_lines():
    errors = errors_of({"method": "x", "parameters": {"a": {"values": "a\nb"}, "b\nc": {"value": 1}}})
    assert all("\n" not in e for e in errors)


# --- warnings ------------------------------------------------------------------------------


def test_deprecated_log_distributions_warn():
    for dist in ("log_uniform", "q_log_uniform", "inv_log_uniform"):
        config, errors, warnings = validate(
            cfg(parameters={"lr": {"distribution": dist, "min": -9.2, "max": -2.3}})
        )
        assert config is not None, errors
        assert any(
            w.startswith("parameters.lr:") and "exponents" in w and f"{dist}_values" in w for w in warnings
        )


def test_command_warnings():
    _, _, warnings = validate(
        cfg(program="t.py", command=["${env}", "${interpreter}", "${program}", "${argz}"])
    )
    assert any(w.startswith("command[3]:") and "unknown macro ${argz}" in w and "args" in w for w in warnings)
    _, _, warnings = validate(cfg(program="t.py", command=["python", "t.py", "--lr=${lr}", "${args}"]))
    assert any(w.startswith("command[2]:") and "literally" in w for w in warnings)
    _, _, warnings = validate(cfg(program="t.py", command=["python", "t.py", "${envvar:HOME}", "${args}"]))
    assert warnings == []
    _, _, warnings = validate(cfg())
    assert any(w.startswith("program:") for w in warnings)


def test_duplicate_yaml_keys_warn():
    text = "method: random\nparameters:\n  lr: {values: [1]}\n  lr: {values: [2]}\n"
    config, _, warnings = validate(text)
    assert config["parameters"]["lr"]["values"] == [2]  # the last one, as YAML and W&B
    assert any(w.startswith("line 4:") and "'lr'" in w and "line 3" in w for w in warnings)


def test_inference_surprises_warn():
    _, _, warnings = validate(cfg(parameters={"a": {"min": 0, "max": 1}}))
    assert any(w.startswith("parameters.a:") and "whole numbers" in w for w in warnings)
    _, _, warnings = validate(cfg(parameters={"a": {"min": 1, "max": 2.5}}))
    assert any(w.startswith("parameters.a:") and "ambiguous" in w for w in warnings)
    _, _, warnings = validate(
        cfg(program="t.py", parameters={"a": {"min": 0, "max": 10}, "b": {"min": 0.0, "max": 1.0}})
    )
    assert warnings == []


# --- never raises ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        b"\x00\x01\xff\xfe garbage \x80",
        b"\xff\xfe\xfd",
        "- a\n- b\n",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" * 50,
        "{" * 5000,
        "- " * 3000 + "x",
        "a: &a [*a]\n",
        "a: !!python/object/apply:os.system ['echo hi']\n",
        "method: grid\n---\nmethod: random\n",
        "\t\tmethod: grid",
        "",
        "   \n",
        "method: [unclosed",
        "? [1, 2]\n: 3\n",
        "{[1]: 2}",
        "x" * 5000,
        "parameters: {a: {value: 2024-13-45}}",
        123,
        None,
        object(),
        ["not", "a", "dict"],
        {1: 2},
        {"method": "grid", "parameters": {"a": {"values": [{1, 2}]}}},
    ],
)
def test_never_raises(source):
    config, errors, warnings = validate(source)
    assert config is None
    assert errors and all(isinstance(e, str) and "\n" not in e for e in errors)


def test_alias_bomb_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("method: random\nparameters: {p: {value: *a9}}")
    config, errors, _ = validate("\n".join(lines))
    assert config is None and "values" in errors[0]


def test_self_referencing_dict():
    d: dict = {"method": "random", "parameters": {"a": {"value": None}}}
    d["parameters"]["a"]["value"] = d
    config, errors, _ = validate(d)
    assert config is None and errors


def test_ten_megabyte_file(tmp_path: Path):
    f = tmp_path / "big.yaml"
    f.write_bytes(b"method: random\n" + b"# padding\n" * 1_000_000)
    config, errors, _ = validate(f)
    assert config is None and "too large" in errors[0]
    config, errors, _ = validate(f.read_text())
    assert config is None and "too large" in errors[0]


def test_non_utf8_file(tmp_path: Path):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("method: random\nname: caf\xe9\n".encode("latin-1"))
    config, errors, _ = validate(f)
    assert config is None and "UTF-8" in errors[0]


def test_deeply_nested_parameters_dict():
    spec: dict = {"value": 1}
    for _ in range(300):
        spec = {"parameters": {"a": spec}}
    config, errors, _ = validate({"method": "random", "parameters": {"a": spec}})
    assert config is None and "nested" in errors[0]


def test_scheduler_engines_w_and_b_pairs_only_with_custom_are_refused() -> None:
    """W&B rejects scheduler.engine optuna/ax beside grid, random or bayes (they need method:
    custom); its own engine is a Launch setting sweepq accepts and ignores, with a warning."""
    base = {"method": "bayes", "metric": {"name": "loss"}, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    for engine in ("optuna", "ax"):
        cfg, errors, _ = validate({**base, "scheduler": {"engine": engine}})
        assert cfg is None and any(
            e.startswith(f"scheduler.engine: {engine} runs only with method: custom") for e in errors
        ), errors
    cfg, errors, warnings = validate({**base, "scheduler": {"engine": "wandb"}})
    assert cfg is not None and not errors and any(w.startswith("scheduler:") for w in warnings), (
        errors,
        warnings,
    )
