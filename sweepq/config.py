"""Parse, validate and normalise a sweep config (W&B Sweeps format plus sweepq's own keys).

The rules are W&B's (``WANDB-COMPAT.md`` section 1), restated as plain checks rather than a
JSON schema so that every problem becomes one line that names its key path in plain words
(``parameters.lr.min: must be less than max (got 0.1 >= 0.01)``) instead of a raw schema dump.
Each section is checked by the module that owns its meaning, through one
:class:`sweepq.checks.Checker`: ``parameters`` by :mod:`sweepq.params` (the registry of
distributions), ``early_terminate`` by :mod:`sweepq.stopping` (each rule its own keys); this
module reads the source and checks the top level, ``metric``, ``command``, W&B's other keys and
sweepq's own. Where sweepq deliberately differs from W&B (the "rulings" of ``WANDB-COMPAT.md``):

* YAML is read with YAML 1.2's float rule, so ``1e-5`` is a number, not a string (ruling 1).
  Timestamps are not special either: ``2024-01-01`` stays a string, because a date object could
  never reach a training script as JSON anyway.
* Nested parameters are kept, at any depth (ruling 2).
* Deprecated "v1" log distributions are accepted with a warning (ruling 3).
* Non-finite numeric bounds (``.nan``, ``.inf``) are rejected: W&B's schema lets them through and
  then samples NaN.
* Problems that W&B only reports when the sweep runs (grid over a continuous distribution, bayes
  without a metric, hyperband without a metric) are reported here, before any GPU time is spent.
* A grid axis of more than :data:`MAX_GRID_AXIS` values is refused, and so is a q_uniform grid
  axis whose q is below the float precision of its range (its values would repeat). The grid
  as a whole has no limit: grid search enumerates it lazily (``sweepq/search/grid.py``).

:func:`validate` never raises, whatever it is given; :func:`load_config` raises
:class:`ConfigError`. Both accept a path, YAML text (bytes or str) or a dict.

Trust: every config from outside (a file, YAML text, a JSON body, any plain dict) is checked in
full. Only the dict that :func:`validate` itself returns (a private ``dict`` subclass, a type no
YAML or JSON can produce) skips the check when handed back, so the controller can call
``engine.suggest`` on every pass cheaply. A ``_normalised`` key (found in configs stored by
sweepq 0.x) carries no trust: it is dropped with a warning; every other key starting with ``_``
is refused as unknown.
"""

from __future__ import annotations

import copy
import numbers
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sweepq import conditions, stopping
from sweepq.checks import Checker, describe, did_you_mean, one_line
from sweepq.command import DEFAULT_COMMAND as _COMMAND_DEFAULT
from sweepq.command import macro_names
from sweepq.errors import BadInput
from sweepq.model import DEFAULT_QUEUE, is_multi_objective, objectives, primary_metric
from sweepq.params import flatten, make, normalise_parameters
from sweepq.search import METHODS

__all__ = [
    "ConfigError",
    "DEFAULT_COMMAND",
    "SWEEPQ_DEFAULTS",
    "is_multi_objective",
    "is_normalised",
    "load_config",
    "nesting_depth",
    "objectives",
    "primary_metric",
    "to_yaml",
    "validate",
]

MAX_BYTES = 256 * 1024
"""Largest config accepted (256 KiB). Real configs are a few KiB; the cap keeps a stray 10 MB
file (or an HTTP body) from stalling the pure-Python YAML parser, which reads ~0.2 MB/s. The
C parser is not used because it recurses in C per nesting level, unguarded."""

MAX_DEPTH = 100
"""Deepest nesting of mappings/lists accepted; also what stops self-referencing YAML anchors."""

MAX_NODES = 200_000
"""Most values (after expanding YAML aliases) accepted; stops "billion laughs" alias bombs."""

MAX_GRID_AXIS = 1_000_000
"""Most grid points one int_uniform / q_uniform parameter may produce."""

DEFAULT_COMMAND = list(_COMMAND_DEFAULT)

SWEEPQ_DEFAULTS: dict[str, Any] = {
    "seed": None,
    "max_concurrent": None,
    "trial_timeout": None,
    "retries": 1,
    "fail_fast": 3,
    "gpus_per_trial": 1,
    "queue": DEFAULT_QUEUE,
    "stop_grace": 30.0,
}
"""sweepq's own top-level keys and their defaults (docs/design.md)."""

_QUEUE_RE = re.compile(r"[A-Za-z0-9_.:\-]+")
_TOKEN_MACRO_RE = re.compile(r"\$\{([^}]*)\}")
_ENVVAR_RE = re.compile(r"\$\{envvar:[A-Z0-9_]*\}")

_W_AND_B_KEYS = (
    "method", "parameters", "metric", "metrics", "early_terminate", "command", "program", "name",
    "description", "project", "entity", "run_cap", "controller", "scheduler", "job", "image_uri",
    "apiVersion", "kind",
)  # fmt: skip
_TOP_LEVEL_KEYS = frozenset(_W_AND_B_KEYS) | frozenset(SWEEPQ_DEFAULTS)
_OLD_MARKER = "_normalised"
"""The key earlier versions wrote into normalised configs (and so into every stored sweep)."""

_GOALS = ("minimize", "maximize")
_OBJECTIVE_KEYS = ("name", "goal")
MIN_OBJECTIVES, MAX_OBJECTIVES = 2, 4
_IMPUTES = ("latest", "best", "worst")
_IMPUTES_WHILE_RUNNING = ("false", "latest", "best", "worst")


class _Normalised(dict):
    """A config :func:`validate` produced. Only this type skips re-validation: a user can write
    any key into YAML or JSON, but cannot make either produce an instance of a private class.
    Derived from ``dict`` so that ``json.dumps``, ``copy`` and item access work unchanged;
    ``dict(config)`` is a plain dict again, and is checked in full if passed back."""

    __slots__ = ()


class ConfigError(BadInput, ValueError):
    """A sweep config that sweepq cannot run. ``errors`` holds one plain line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors) or ["config: invalid"]
        super().__init__("; ".join(self.errors))


# --------------------------------------------------------------------------------------------
# Reading YAML


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats (``1e-5`` is a float) and no timestamps.

    Booleans and integers keep PyYAML's (YAML 1.1) rules so that a config means what it means to
    W&B; only the float rule changes, which is ruling 1 of WANDB-COMPAT.md. Keys written twice in
    one mapping are noted in ``duplicates`` (YAML keeps the last silently, and so does W&B).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, _value in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    self.duplicates.append(
                        f"line {line}: key {key_node.value!r} is written twice (also on line "
                        f"{seen[key_node.value]}); the last one is used"
                    )
                else:
                    seen[key_node.value] = line
        return super().construct_mapping(node, deep)


_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_FLOAT_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# Registered after the int resolver, so plain integers still resolve to int first.
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
            |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    """Quotes every string that either YAML 1.1 (W&B's reader) or sweepq's reader would take for
    something else, so printed configs read back the same in both (``"1e-5"`` stays a string)."""


_Dumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
}
for _first, _resolvers in _Loader.yaml_implicit_resolvers.items():
    for _resolver in _resolvers:
        if _resolver[0] == _FLOAT_TAG:
            _Dumper.yaml_implicit_resolvers.setdefault(_first, []).append(_resolver)


def _read_source(source: Any) -> tuple[Any, list[str], list[str]]:
    """Turn a path, YAML text or dict into plain data; ``(data, errors, warnings)``."""
    if isinstance(source, Mapping):
        return source, [], []
    if isinstance(source, Path):
        return _read_file(source)
    if isinstance(source, (bytes, bytearray)):
        return _parse_yaml(bytes(source), "config")
    if isinstance(source, str):
        if "\n" not in source and len(source) < 4096:
            try:
                is_file = os.path.isfile(source)
            except (OSError, ValueError):
                is_file = False
            if is_file:
                return _read_file(Path(source))
            if source.endswith((".yaml", ".yml", ".json")) or os.sep in source:
                return None, [f"{source}: no such file"], []
        return _parse_yaml(source, "config")
    return None, [f"config: must be a path, YAML text or a mapping (got {type(source).__name__})"], []


def _read_file(path: Path) -> tuple[Any, list[str], list[str]]:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return (
                None,
                [f"{path}: file is too large for a sweep config ({size} bytes; limit {MAX_BYTES})"],
                [],
            )
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None, [f"{path}: no such file"], []
    except IsADirectoryError:
        return None, [f"{path}: is a directory, not a config file"], []
    except OSError as exc:
        return None, [f"{path}: cannot be read ({exc.strerror or exc})"], []
    return _parse_yaml(data, str(path))


def _parse_yaml(text: str | bytes, where: str) -> tuple[Any, list[str], list[str]]:
    if len(text) > MAX_BYTES:
        return None, [f"{where}: too large for a sweep config ({len(text)} bytes; limit {MAX_BYTES})"], []
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return None, [f"{where}: not UTF-8 text (bad byte at offset {exc.start})"], []
    if nesting_depth(text) > MAX_DEPTH:
        return None, [f"{where}: nested deeper than {MAX_DEPTH} levels; not a sweep config"], []
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return None, [f"{where}: not valid YAML: {one_line(problem)}{at}"], []
    except yaml.YAMLError as exc:
        return None, [f"{where}: not valid YAML: {one_line(str(exc))}"], []
    except RecursionError:
        return None, [f"{where}: nested too deeply to be a sweep config"], []
    finally:
        loader.dispose()
    if data is None:
        return None, [f"{where}: is empty; a sweep config needs at least method and parameters"], []
    return data, [], loader.duplicates


_BRACKETS_RE = re.compile(r"[\[\]{}]")


def nesting_depth(text: str | bytes) -> int:
    """Deepest ``[``/``{`` nesting, counting brackets inside strings too (an over-estimate that
    no real config comes near). PyYAML and ``json`` recurse per level, so thousands of levels
    would cost seconds (or a ``RecursionError``) before failing; callers refuse text deeper than
    :data:`MAX_DEPTH` up front."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    depth = deepest = 0
    for m in _BRACKETS_RE.finditer(text):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


# --------------------------------------------------------------------------------------------
# Plain data: bounded, JSON-shaped copies


_ABSENT = object()


class _TooBig(Exception):
    pass


def _plain(value: Any, path: str, errors: list[str]) -> Any:
    """A JSON-shaped deep copy of ``value`` (dict/list/str/int/float/bool/None).

    Walks iteratively-bounded: deeper than :data:`MAX_DEPTH` or more than :data:`MAX_NODES`
    values (which is what YAML alias bombs and self-referencing anchors turn into) raises
    :class:`_TooBig`. Values that JSON cannot carry are reported in ``errors``.
    """
    budget = [MAX_NODES]

    def walk(v: Any, p: str, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            raise _TooBig
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, numbers.Real):
            return float(v)
        if isinstance(v, Mapping):
            out = {}
            for k, item in v.items():
                key = _json_key(k)
                if key is None:
                    errors.append(f"{p}: keys must be strings (got {describe(k)})")
                    continue
                out[key] = walk(item, f"{p}.{key}", depth + 1)
            return out
        if isinstance(v, (list, tuple)):
            return [walk(item, f"{p}[{i}]", depth + 1) for i, item in enumerate(v)]
        errors.append(f"{p}: {type(v).__name__} is not a plain value (use numbers, strings, lists, mappings)")
        return None

    return walk(value, path, 0)


def _json_key(k: Any) -> str | None:
    # What JSON (and so W&B's backend) makes of a non-string key: the same text json.dumps writes.
    if isinstance(k, str):
        return k
    if k is None:
        return "null"
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, numbers.Integral):
        return str(int(k))
    if isinstance(k, numbers.Real):
        return repr(float(k))
    return None


# --------------------------------------------------------------------------------------------
# The sections of a config. Parameters are checked by sweepq.params, early_terminate by
# sweepq.stopping; the rest is the top level's own.


def _check_top_level_keys(ck: Checker, cfg: Mapping[str, Any]) -> None:
    for key in cfg:
        if key in _TOP_LEVEL_KEYS:
            continue
        if key.startswith("_"):
            ck.error(key, "keys starting with _ are sweepq's internal keys and cannot be set in a config")
        elif key == "count":
            ck.error(
                "count",
                "is not a sweep config key: give the number of trials to the agent "
                "(sweepq agent --count N, or sweepq run --count N)",
            )
        else:
            ck.error(key, f"unknown top-level key{did_you_mean(key, _TOP_LEVEL_KEYS)}")


def _check_method(ck: Checker, cfg: Mapping[str, Any]) -> str | None:
    if "method" not in cfg:
        ck.error("method", f"missing; must be one of {', '.join(METHODS)}")
        return None
    if cfg["method"] == "custom":
        ck.error(
            "method",
            "custom (a W&B local-controller callable) is not supported: sweepq needs grid, random or bayes",
        )
        return None
    return ck.choice("method", cfg["method"], METHODS)


def _check_parameters(ck: Checker, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    if "parameters" not in cfg:
        extra = " (sweepq does not read scheduler.search_space)" if "scheduler" in cfg else ""
        ck.error("parameters", f"missing: a sweep needs at least one parameter{extra}")
        return None
    n_errors = len(ck.errors)
    params = normalise_parameters(ck, cfg["parameters"], "parameters")
    if params is not None and len(ck.errors) == n_errors:
        conditions.check(ck, params)
    return params


def _check_metric(ck: Checker, cfg: Mapping[str, Any]) -> dict[str, Any] | list[dict[str, Any]] | None:
    metric: dict[str, Any] | list[dict[str, Any]] | None = None
    if "metric" in cfg:
        raw = cfg["metric"]
        metric = _normalise_objectives(ck, raw) if isinstance(raw, list) else _normalise_metric(ck, raw)
    if "metrics" in cfg:
        if "metric" in cfg:
            ck.error("metrics", "cannot be used together with metric")
        ck.error(
            "metrics",
            "W&B's multi-objective key needs method: custom; in sweepq write the objectives as a list: "
            "metric: [{name: acc, goal: maximize}, {name: latency, goal: minimize}]",
        )
    return metric


def _normalise_objectives(ck: Checker, items: list[Any]) -> list[dict[str, Any]] | None:
    """A multi-objective ``metric``: 2-4 ``{name, goal}`` (W&B's schema refuses a list, so no W&B
    config changes meaning). Each objective's summary value is its last logged value, as for one
    metric; ``target`` and the imputation keys are single-metric settings and are refused here
    rather than given a meaning of our own."""
    if not MIN_OBJECTIVES <= len(items) <= MAX_OBJECTIVES:
        ck.error(
            "metric",
            f"a list of objectives needs {MIN_OBJECTIVES} to {MAX_OBJECTIVES} entries (got {len(items)}); "
            "for one objective write metric: {name: ..., goal: ...}",
        )
        return None
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        where = f"metric[{i}]"
        if not isinstance(item, Mapping):
            ck.error(
                where, f"must be a mapping such as {{name: loss, goal: minimize}} (got {describe(item)})"
            )
            continue
        for key in item:
            if key not in _OBJECTIVE_KEYS:
                why = (
                    "is a single-metric setting, not available for a list of objectives"
                    if key in ("target", "impute", "impute_while_running")
                    else f"unknown key{did_you_mean(key, _OBJECTIVE_KEYS)}"
                )
                ck.error(f"{where}.{key}", f"{why}; allowed: {', '.join(_OBJECTIVE_KEYS)}")
        if "name" not in item:
            ck.error(where, "needs a name (the logged value to optimise)")
            continue
        name = ck.string(f"{where}.name", item["name"])
        goal = ck.choice(f"{where}.goal", item.get("goal", "minimize"), _GOALS)
        if name is None or goal is None:
            continue
        if name in names:
            ck.error(f"{where}.name", f"{name!r} is already an objective; each objective needs its own name")
            continue
        names.add(name)
        out.append({"name": name, "goal": goal})
    return out if len(out) == len(items) else None


def _normalise_metric(ck: Checker, metric: Any) -> dict[str, Any] | None:
    if not isinstance(metric, Mapping):
        ck.error(
            "metric", f"must be a mapping such as {{name: loss, goal: minimize}} (got {describe(metric)})"
        )
        return None
    allowed = ("name", "goal", "target", "impute", "impute_while_running")
    for key in metric:
        if key not in allowed:
            ck.error(
                f"metric.{key}", f"unknown key{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}"
            )
    if "name" not in metric:
        ck.error("metric", "needs a name (the logged value to optimise)")
        name = None
    else:
        name = ck.string("metric.name", metric["name"])
    goal = ck.choice("metric.goal", metric.get("goal", "minimize"), _GOALS)
    impute = ck.choice("metric.impute", metric.get("impute", "worst"), _IMPUTES)
    iwr = metric.get("impute_while_running", "false")
    if iwr is False:
        ck.error(
            "metric.impute_while_running",
            'must be one of false, latest, best, worst; write false quoted ("false")',
        )
        iwr = None
    else:
        iwr = ck.choice("metric.impute_while_running", iwr, _IMPUTES_WHILE_RUNNING)
    out: dict[str, Any] = {"name": name, "goal": goal, "impute": impute, "impute_while_running": iwr}
    if "target" in metric:
        target = ck.number("metric.target", metric["target"])
        if target is not None:
            out["target"] = float(target)
    return out


def _check_early_terminate(ck: Checker, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    if "early_terminate" not in cfg:
        return None
    early = stopping.validate(ck, cfg["early_terminate"])
    if "metric" not in cfg:
        ck.error("early_terminate", "needs a metric to compare trials by: add metric: {name: ..., goal: ...}")
    return early


def _check_w_and_b_keys(ck: Checker, cfg: Mapping[str, Any]) -> None:
    """W&B's other keys: kept as they are, once their types are right."""
    for key in ("program", "name", "description", "project", "entity", "job", "image_uri", "apiVersion"):
        if key in cfg:
            ck.string(key, cfg[key])
    if "kind" in cfg:
        ck.choice("kind", cfg["kind"], ("sweep",))
    if "run_cap" in cfg:
        ck.integer("run_cap", cfg["run_cap"], minimum=1)
    if "controller" in cfg:
        controller = cfg["controller"]
        if not isinstance(controller, Mapping):
            ck.error("controller", f"must be a mapping such as {{type: cloud}} (got {describe(controller)})")
        elif "type" not in controller:
            ck.error("controller", "needs a type (local or cloud)")
        else:
            ck.choice("controller.type", controller["type"], ("local", "cloud"))
    if "scheduler" in cfg:
        _check_scheduler(ck, cfg)
    for key in ("job", "image_uri"):
        if key in cfg:
            ck.warn(key, "is a W&B Launch setting; sweepq ignores it")


def _check_command(ck: Checker, command: Any, program: Any) -> list[Any] | None:
    if command is _ABSENT:
        command = []
    if not isinstance(command, list):
        ck.error(
            "command",
            f"must be a list of argv items (got {describe(command)}); e.g. [python, train.py, ${{args}}]",
        )
        return None
    command = command or list(DEFAULT_COMMAND)
    known = macro_names()
    uses_args = False
    for i, item in enumerate(command):
        text = _ENVVAR_RE.sub("", str(item))
        if isinstance(item, str) and item.startswith("${") and item.endswith("}"):
            name = item[2:-1]
            if name.startswith("envvar:"):
                continue
            if name not in known:
                ck.warn(
                    f"command[{i}]",
                    f"unknown macro {item}{did_you_mean(name, known)}: it expands to nothing, as in W&B",
                )
            elif name == "program" and program is None:
                ck.warn(
                    "program",
                    "not set, but the command uses ${program}: it expands to nothing "
                    "(fine only for in-process agents, sweepq.agent(function=...))",
                )
            uses_args = uses_args or name.startswith("args")
        elif _TOKEN_MACRO_RE.search(text):
            ck.warn(
                f"command[{i}]",
                f"{item!r} is passed literally: a macro only expands when it is a whole item "
                "(only ${envvar:NAME} works inside a longer item)",
            )
    if not uses_args:
        ck.warn(
            "command", "has no ${args...} macro: the parameters reach the program only through sweepq.init()"
        )
    return command


def _check_scheduler(ck: Checker, cfg: Mapping[str, Any]) -> None:
    sched = cfg["scheduler"]
    if not isinstance(sched, Mapping):
        ck.error("scheduler", f"must be a mapping (got {describe(sched)})")
        return
    allowed = ("engine", "source", "optimizer", "search_space")
    for key in sched:
        if key not in allowed:
            ck.error(f"scheduler.{key}", f"unknown key; allowed: {', '.join(allowed)}")
    if "engine" not in sched:
        ck.error("scheduler", "needs an engine")
    elif ck.choice("scheduler.engine", sched["engine"], ("optuna", "ax", "wandb")) in ("optuna", "ax"):
        # W&B pairs these engines only with method: custom (a Launch scheduler job) and rejects
        # them beside grid, random or bayes
        ck.error(
            "scheduler.engine",
            f"{sched['engine']} runs only with method: custom (a W&B Launch "
            "scheduler), which sweepq does not support; remove scheduler to let sweepq search",
        )
    for key in ("optimizer", "search_space"):
        if key in sched and "source" not in sched:
            ck.error(f"scheduler.{key}", "needs scheduler.source")
    controller = cfg.get("controller")
    if isinstance(controller, Mapping) and controller.get("type") == "local":
        ck.error("scheduler", "cannot be used with controller.type local")
    if "early_terminate" in cfg:
        ck.error("scheduler", "cannot be used together with early_terminate")
    ck.warn("scheduler", "is a W&B Launch setting; sweepq ignores it")


def _check_method_needs(
    ck: Checker, method: str | None, params: Mapping[str, Any], cfg: Mapping[str, Any]
) -> None:
    """What the method needs of the parameters and the metric (W&B reports these only when the
    sweep runs; sweepq before any GPU time is spent)."""
    if method == "grid":
        for path, spec in flatten(params, sort=False).items():
            where = "parameters." + ".parameters.".join(path)
            axis = make(spec).grid()
            if axis is None:
                dist = spec["distribution"]
                what = (
                    "values with probabilities"
                    if dist == "categorical_w_probabilities"
                    else f"a {dist} distribution"
                )
                ck.error(
                    where,
                    f"grid search cannot enumerate {what}; use values: [...], int_uniform or q_uniform, "
                    "or method random or bayes",
                )
            elif axis.size > MAX_GRID_AXIS:
                ck.error(where, f"gives more than {MAX_GRID_AXIS} grid points; narrow the range or raise q")
            elif not axis.distinct:
                ck.error(
                    where, "q is below the float precision of min and max: grid values would repeat; raise q"
                )
    elif method == "bayes":
        if "metric" not in cfg:
            ck.error("metric", "bayes search needs a metric to optimise: add metric: {name: ..., goal: ...}")
        if all(spec["distribution"] == "constant" for spec in flatten(params).values()):
            ck.error(
                "parameters", "bayes search needs at least one parameter that varies (not only value: ...)"
            )


def _sweepq_keys(ck: Checker, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """sweepq's own top-level keys, each with its default filled."""
    sq: dict[str, Any] = {}
    for key, default in SWEEPQ_DEFAULTS.items():
        v = cfg.get(key, default)
        if v is None and default is None:
            sq[key] = None
        elif key == "seed":
            sq[key] = ck.integer(key, v, minimum=0)
        elif key == "max_concurrent":
            sq[key] = ck.integer(key, v, minimum=1)
        elif key in ("retries", "gpus_per_trial", "fail_fast"):
            sq[key] = ck.integer(key, v, minimum=0)
        elif key == "queue":
            if ck.string(key, v) is not None and not _QUEUE_RE.fullmatch(v):
                ck.error(key, f"must be a queue name of letters, digits, _ . : - (got {v!r})")
            sq[key] = v
        else:  # trial_timeout, stop_grace: seconds
            n = ck.number(key, v, minimum=0, exclusive=(key == "trial_timeout"))
            sq[key] = float(n) if n is not None else None
    return sq


def _normalise(raw: Any) -> tuple[_Normalised | None, list[str], list[str]]:
    """The normalised config of plain data ``raw``, or None; with every error and warning."""
    ck = Checker()
    if not isinstance(raw, Mapping):
        ck.error("config", f"must be a mapping of keys such as method and parameters (got {describe(raw)})")
        return None, ck.errors, ck.warnings
    cfg = _plain(raw, "config", ck.errors)
    if ck.errors:
        return None, ck.errors, ck.warnings
    if _OLD_MARKER in cfg:
        del cfg[_OLD_MARKER]
        ck.warn(_OLD_MARKER, "ignored: an internal marker, not a setting (the config is checked in full)")

    _check_top_level_keys(ck, cfg)
    method = _check_method(ck, cfg)
    params = _check_parameters(ck, cfg)
    metric = _check_metric(ck, cfg)
    early = _check_early_terminate(ck, cfg)
    _check_w_and_b_keys(ck, cfg)
    program = cfg.get("program") if isinstance(cfg.get("program"), str) else None
    command = _check_command(ck, cfg.get("command", _ABSENT), program)
    if params is not None:
        _check_method_needs(ck, method, params, cfg)
    sq = _sweepq_keys(ck, cfg)
    if ck.errors:
        return None, ck.errors, ck.warnings

    out = {key: value for key, value in cfg.items() if key not in SWEEPQ_DEFAULTS}
    out["method"] = method
    out["parameters"] = params
    if metric is not None:
        out["metric"] = metric
    if early is not None:
        out["early_terminate"] = early
    out["command"] = command
    out.update(sq)
    return _Normalised(out), ck.errors, ck.warnings


# --------------------------------------------------------------------------------------------
# Public API


def is_normalised(config: Any) -> bool:
    """True for a config that :func:`validate` returned (and that is therefore not checked again)."""
    return isinstance(config, _Normalised)


def validate(source: Any) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """Read and check a sweep config; never raises.

    ``source`` is a path (``str`` or ``Path``), YAML/JSON text (``str`` or ``bytes``) or a dict.
    Returns ``(config, errors, warnings)``: ``config`` is the normalised dict (see
    docs/design.md) or ``None`` when ``errors`` is non-empty. Each error and warning is one line
    that starts with the key path it is about. Only a config this function returned is passed
    through unchecked (as a shallow copy), so the engine can call it on every suggestion cheaply;
    any other dict, whatever keys it carries, is checked in full.
    """
    if isinstance(source, _Normalised):
        return _Normalised(source), [], []
    try:
        raw, errors, read_warnings = _read_source(source)
        if errors:
            return None, errors, read_warnings
        config, errors, warnings = _normalise(raw)
        return config, errors, read_warnings + warnings
    except _TooBig:
        return (
            None,
            [
                f"config: nested deeper than {MAX_DEPTH} levels or holds more than {MAX_NODES} values "
                "(or a YAML anchor refers to itself)"
            ],
            [],
        )
    except RecursionError:
        return None, ["config: nested too deeply to be a sweep config"], []
    except MemoryError:
        return None, ["config: too large to read"], []
    except Exception as exc:  # never a traceback: this is a bug, but the user gets one line
        return None, [f"config: could not be checked ({type(exc).__name__}: {one_line(str(exc))})"], []


def load_config(source: Any) -> dict[str, Any]:
    """The normalised config, or :class:`ConfigError` listing every problem."""
    config, errors, _warnings = validate(source)
    if config is None:
        raise ConfigError(errors)
    return config


def to_yaml(config: Mapping[str, Any]) -> str:
    """A normalised config as YAML (key order kept; the old ``_normalised`` marker left out).

    Floats are written so that they read back as floats under YAML 1.1 too (``1.0e-05``).
    """
    data = {k: copy.deepcopy(v) for k, v in config.items() if k != _OLD_MARKER}

    def dump(allow_unicode: bool) -> str:
        return yaml.dump(
            data,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            width=100,
            allow_unicode=allow_unicode,
        )

    text = dump(allow_unicode=True)
    if any(ch in text for ch in "\x85\u2028\u2029"):
        # PyYAML writes these raw but reads them back as line breaks: escape everything instead.
        text = dump(allow_unicode=False)
    return text
