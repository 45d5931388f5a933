"""Fuzzing: whatever it is given, ``validate`` answers (never raises), and what it accepts runs.

Thousands of generated inputs in total: random YAML/JSON structures, random text and bytes,
and valid real configs mutated at random paths. For mutated configs the checks go further:
an accepted config must round-trip through its printed YAML, suggest and render without error,
and anything W&B's own validator rejects must be rejected too (rejection parity).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import warnings
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweepq import engine
from sweepq.cli import main
from sweepq.command import render
from sweepq.config import _Loader, is_normalised, to_yaml, validate

CORPUS = Path(__file__).resolve().parent.parent / "data" / "wandb-configs"
VALID = []
for _path in sorted(CORPUS.glob("*.yaml")):
    _cfg, _errors, _ = validate(_path)
    if _cfg is not None:
        VALID.append(yaml.load(_path.read_text(), Loader=_Loader))  # noqa: S506 - a SafeLoader

FAST = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

KEYS = st.sampled_from([
    "method", "parameters", "metric", "name", "goal", "values", "value", "min", "max", "q",
    "distribution", "probabilities", "mu", "sigma", "a", "b", "early_terminate", "type", "min_iter",
    "max_iter", "s", "eta", "strict", "command", "program", "seed", "retries", "queue", "run_cap",
    "x", "1a", "lr", "impute", "target",
]) | st.text(max_size=6)  # fmt: skip
SCALARS = (
    st.none() | st.booleans() | st.integers(-(10**20), 10**20)
    | st.floats() | st.text(max_size=8)
    | st.sampled_from(["grid", "random", "bayes", "custom", "uniform", "int_uniform", "q_uniform", "categorical",
                       "log_uniform_values", "normal", "beta", "hyperband", "asha", "median", "minimize", "1e-5",
                       "${args}", "${env}", "${bogus}"])
)  # fmt: skip
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=15,
)


def check_answer(result) -> None:
    config, errors, warns = result
    assert isinstance(errors, list) and isinstance(warns, list)
    assert all(isinstance(m, str) and "\n" not in m and m for m in errors + warns)
    if config is None:
        assert errors
    else:
        assert not errors and is_normalised(config)
        # checking a plain copy again (what a config read back from JSON gets) changes nothing
        again, errors2, _ = validate(json.loads(json.dumps(config)))
        assert not errors2 and json.dumps(again) == json.dumps(config)


@settings(FAST, max_examples=700)
@given(data=JSONISH)
def test_random_structures(data):
    check_answer(validate(data))
    if isinstance(data, dict):
        check_answer(validate({"method": "random", "parameters": data}))
        check_answer(validate({"method": "grid", "parameters": {"p": data}}))


@settings(FAST, max_examples=300)
@given(data=JSONISH, as_json=st.booleans())
def test_random_yaml_and_json_text(data, as_json):
    try:
        text = json.dumps(data) if as_json else yaml.safe_dump(data)
    except ValueError:
        return
    check_answer(validate(text))


@settings(FAST, max_examples=500)
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_random_text_and_bytes(text):
    check_answer(validate(text if isinstance(text, bytes) else text + "\n"))


# --- mutated real configs ----------------------------------------------------------------------


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated_configs(draw):
    cfg = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(cfg))[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = cfg
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["delete", "replace", "insert"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(JSONISH)
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(JSONISH)
    return cfg


def _without_newer_keys(cfg):
    """The config as the installed W&B validator (sweeps 0.2.0) knows it: keys its 0.3.0 schema
    added (run_cap, metric.impute_while_running, early_terminate.strict) are left out."""
    cfg = copy.deepcopy(cfg)
    cfg.pop("run_cap", None)
    if isinstance(cfg.get("metric"), dict):
        cfg["metric"].pop("impute_while_running", None)
    if isinstance(cfg.get("early_terminate"), dict):
        cfg["early_terminate"].pop("strict", None)
    return cfg


def _w_and_b_rejects(cfg) -> bool:
    from sweeps.config import schema_violations_from_proposed_config

    try:
        plain = json.loads(json.dumps(_without_newer_keys(cfg)))
    except (TypeError, ValueError):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            violations = schema_violations_from_proposed_config(plain)
        except Exception:  # W&B raises ValueError for non-dict parameters and the like
            return True
    # sweepq accepts W&B's deprecated log distributions with a warning (ruling 3)
    return any("uses log_uniform" not in v and "uses q_log_uniform" not in v and "uses inv_log_uniform" not in v
               for v in violations)  # fmt: skip


def _has_nan(node) -> bool:
    return any(isinstance(v, float) and math.isnan(v) for v in _leaves(node))


def _leaves(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


@settings(FAST, max_examples=800)
@given(cfg=mutated_configs())
def test_mutated_configs(cfg):
    result = validate(cfg)
    check_answer(result)
    config = result[0]
    if config is None:
        return
    # accepted => printable, re-readable to the same config, and runnable
    if not _has_nan(config):
        assert validate(to_yaml(config))[0] == config
    params = engine.suggest(config, [], n=2, seed=0) if config["method"] != "bayes" else (
        engine.suggest(dict(config, method="random"), [], n=2, seed=0))  # fmt: skip
    for p in params:
        argv = render(config, p, sweep_id="s", run_id="r")
        assert all(isinstance(a, str) for a in argv)


# --- through the CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@settings(FAST, max_examples=50)
@given(blob=st.binary(max_size=300) | JSONISH.map(lambda d: yaml.safe_dump(d).encode()))
def test_cli_validate_never_tracebacks(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_bytes(blob)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@settings(FAST, max_examples=30)
@given(cfg=mutated_configs(), as_json=st.booleans())
def test_cli_preview_never_tracebacks(tmp_path_factory, cfg, as_json):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    try:
        path.write_text(yaml.safe_dump(cfg))
    except yaml.YAMLError:
        return
    if validate(path)[0] is not None and validate(path)[0]["method"] == "bayes":
        return  # bayes previews are exercised in test_conformance; keep the fuzz loop fast
    args = ["preview", str(path), "-n", "2"] + (["--json"] if as_json else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(
    importlib.util.find_spec("sweeps") is None, reason="W&B's sweeps package (dev extra) not installed"
)
@settings(FAST, max_examples=120)
@given(cfg=mutated_configs())
def test_rejection_parity_with_w_and_b(cfg):
    """Whatever sweepq accepts, W&B's validator accepts (bar deprecation notices): W&B is slow
    (jsonschema), so it is only asked about configs sweepq accepted."""
    if validate(cfg)[0] is not None:
        assert not _w_and_b_rejects(cfg), f"W&B rejects this config but sweepq accepted it: {cfg}"
