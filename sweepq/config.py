"""Parse, validate and normalise a sweep config (W&B Sweeps format plus sweepq's own keys).

The rules are W&B's (``WANDB-COMPAT.md`` section 1), restated here as plain checks rather than a
JSON schema so that every problem becomes one line that names its key path in plain words
(``parameters.lr.min: must be less than max (got 0.1 >= 0.01)``) instead of a raw schema dump.
Where sweepq deliberately differs from W&B (the "rulings" of ``WANDB-COMPAT.md``):

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
``engine.suggest`` on every pass cheaply. ``_normalised``, the key that used to mark a normalised
config, carries no trust: it is dropped with a warning (configs stored by earlier versions carry
it); every other key starting with ``_`` is refused as unknown.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sweepq.command import DEFAULT_COMMAND as _COMMAND_DEFAULT
from sweepq.command import macro_names
from sweepq.errors import BadInput

__all__ = [
    "ConfigError",
    "DEFAULT_COMMAND",
    "DISTRIBUTIONS",
    "GRID_DISTRIBUTIONS",
    "SWEEPQ_DEFAULTS",
    "is_normalised",
    "load_config",
    "nesting_depth",
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
    "queue": "sweepq",
    "stop_grace": 30.0,
}
"""sweepq's own top-level keys and their defaults (docs/design.md)."""

# distribution -> (required keys, optional keys with defaults). "distribution" itself is implied.
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "constant": (("value",), {}),
    "categorical": (("values",), {}),
    "categorical_w_probabilities": (("values", "probabilities"), {}),
    "int_uniform": (("min", "max"), {}),
    "uniform": (("min", "max"), {}),
    "q_uniform": (("min", "max"), {"q": 1.0}),
    "log_uniform": (("min", "max"), {}),
    "log_uniform_values": (("min", "max"), {}),
    "q_log_uniform": (("min", "max"), {"q": 1.0}),
    "q_log_uniform_values": (("min", "max"), {"q": 1.0}),
    "inv_log_uniform": (("min", "max"), {}),
    "inv_log_uniform_values": (("min", "max"), {}),
    "normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "log_normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_log_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "beta": ((), {"a": 1.0, "b": 1.0}),
    "q_beta": ((), {"a": 1.0, "b": 1.0, "q": 1.0}),
    "param_dict": (("parameters",), {}),
}

GRID_DISTRIBUTIONS = frozenset({"constant", "categorical", "int_uniform", "q_uniform"})
"""What W&B's grid can enumerate; everything else is continuous (or weighted) and rejected."""

_DEPRECATED = {
    "log_uniform": "log_uniform_values",
    "q_log_uniform": "q_log_uniform_values",
    "inv_log_uniform": "inv_log_uniform_values",
}
_LOG_VALUES = {"log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"}

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
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

_METHODS = ("grid", "random", "bayes")
_GOALS = ("minimize", "maximize")
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
            return None, [f"{path}: file is too large for a sweep config ({size} bytes; limit {MAX_BYTES})"], []
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
        return None, [f"{where}: not valid YAML: {_one_line(problem)}{at}"], []
    except yaml.YAMLError as exc:
        return None, [f"{where}: not valid YAML: {_one_line(str(exc))}"], []
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


def _printable(text: str) -> str:
    """One printable line: control characters (a newline in a key name) shown escaped."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
                    errors.append(f"{p}: keys must be strings (got {_describe(k)})")
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
# Small helpers for checks and messages


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"the string {_one_line(repr(v), 60)}"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return type(v).__name__


def _number_hint(v: Any) -> str:
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return ""
        return " (it is quoted: write the number without quotes)"
    return ""


def _article(word: str) -> str:
    return "an" if word[:1] in "aeio" else "a"  # "a uniform", "an int_uniform"


def _did_you_mean(word: Any, choices: Any) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


class _Checker:
    """Collects errors and warnings while a config is normalised."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(_printable(f"{path}: {message}"))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(_printable(f"{path}: {message}"))

    # Typed readers: return the (possibly converted) value, or None after recording an error.

    def number(self, path: str, v: Any, *, minimum: float | None = None, exclusive: bool = False,
               finite: bool = True) -> float | int | None:  # fmt: skip
        if not _is_number(v):
            self.error(path, f"must be a number (got {_describe(v)}){_number_hint(v)}")
            return None
        if finite and not math.isfinite(v):
            self.error(path, f"must be a finite number (got {v!r})")
            return None
        if minimum is not None:
            if exclusive and not v > minimum:
                self.error(path, f"must be greater than {minimum:g} (got {v!r})")
                return None
            if not exclusive and not v >= minimum:
                self.error(path, f"must be at least {minimum:g} (got {v!r})")
                return None
        return v

    def integer(self, path: str, v: Any, *, minimum: int | None = None, integral_float: bool = True) -> int | None:
        # JSON Schema's "integer" accepts 27.0; W&B's int_uniform adds a format check that does not.
        ok = _is_int(v) or (integral_float and isinstance(v, float) and math.isfinite(v) and v.is_integer())
        if not ok:
            self.error(path, f"must be an integer (got {_describe(v)}){_number_hint(v)}")
            return None
        v = int(v)
        if minimum is not None and v < minimum:
            self.error(path, f"must be at least {minimum} (got {v})")
            return None
        return v

    def string(self, path: str, v: Any) -> str | None:
        if not isinstance(v, str):
            self.error(path, f"must be a string (got {_describe(v)})")
            return None
        return v

    def choice(self, path: str, v: Any, choices: tuple[str, ...]) -> str | None:
        if not isinstance(v, str) or v not in choices:
            hint = _did_you_mean(v, choices)
            self.error(path, f"must be one of {', '.join(choices)} (got {_describe(v)}){hint}")
            return None
        return v


# --------------------------------------------------------------------------------------------
# Parameters


def _normalise_parameters(ck: _Checker, params: Any, path: str) -> dict[str, Any] | None:
    if not isinstance(params, Mapping):
        ck.error(path, f"must be a mapping of parameter names to their specs (got {_describe(params)})")
        return None
    if not params:
        ck.error(path, "must name at least one parameter")
        return None
    out: dict[str, Any] = {}
    for name, spec in params.items():
        if not _NAME_RE.fullmatch(name):
            ck.error(
                f"{path}.{name}",
                f"parameter name {name!r} is not allowed: a name starts with a letter or _ and "
                "holds only letters, digits, _, . and -",
            )
        normal = _normalise_spec(ck, spec, f"{path}.{name}")
        if normal is not None:
            out[name] = normal
    return out


def _infer_distribution(ck: _Checker, spec: Mapping[str, Any], path: str) -> str | None:
    """W&B's inference (its schema's ``anyOf`` order) for a spec without ``distribution``."""
    if "parameters" in spec:
        return "param_dict"
    if "value" in spec and "values" in spec:
        ck.error(path, "give either value (a constant) or values (a list to choose from), not both")
        return None
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "min" in spec and "max" in spec:
        lo, hi = spec["min"], spec["max"]
        if _is_int(lo) and _is_int(hi):
            return "int_uniform"
        return "uniform"
    if "min" in spec or "max" in spec:
        have, missing = ("min", "max") if "min" in spec else ("max", "min")
        ck.error(path, f"has {have} but no {missing}")
        return None
    keys = ", ".join(map(str, spec)) or "none"
    ck.error(
        path,
        "cannot tell what kind of parameter this is: give value, values, min and max, "
        f"parameters, or a distribution (keys given: {keys})",
    )
    return None


def _normalise_spec(ck: _Checker, spec: Any, path: str) -> dict[str, Any] | None:
    if not isinstance(spec, Mapping):
        hint = ""
        if isinstance(spec, list):
            hint = "; for a list of choices write values: [...]"
        elif spec is None or isinstance(spec, (str, int, float, bool)):
            hint = "; for a constant write value: ..."
        ck.error(path, f"must be a mapping such as {{values: [1, 2]}} or {{min: 0, max: 1}} (got {_describe(spec)}){hint}")
        return None

    explicit = "distribution" in spec
    if explicit:
        dist = spec["distribution"]
        if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
            ck.error(
                f"{path}.distribution",
                f"unknown distribution {_describe(dist)}{_did_you_mean(dist, DISTRIBUTIONS)}",
            )
            return None
    else:
        dist = _infer_distribution(ck, spec, path)
        if dist is None:
            return None

    required, optional = DISTRIBUTIONS[dist]
    n_errors = len(ck.errors)
    for key in spec:
        if key == "distribution" or key in required or key in optional:
            continue
        how = "" if explicit else " (inferred from its keys; set distribution to use other keys)"
        allowed = ", ".join((*required, *optional, "distribution"))
        ck.error(f"{path}.{key}", f"is not a key of {_article(dist)} {dist} parameter{how}; allowed: {allowed}")
    missing = [key for key in required if key not in spec]
    if missing:
        ck.error(path, f"{_article(dist)} {dist} parameter needs {' and '.join(missing)}")
    if len(ck.errors) > n_errors:
        return None

    out: dict[str, Any] = {"distribution": dist}
    if dist == "param_dict":
        children = _normalise_parameters(ck, spec["parameters"], f"{path}.parameters")
        if children is None:
            return None
        out["parameters"] = children
        return out
    if dist == "constant":
        out["value"] = spec["value"]
        return out
    if dist in ("categorical", "categorical_w_probabilities"):
        return _normalise_categorical(ck, spec, path, out)

    ok = True
    for key in (*required, *optional):
        v = spec.get(key, optional.get(key))
        kpath = f"{path}.{key}"
        if key in ("min", "max"):
            if dist == "int_uniform":
                checked = ck.integer(kpath, v, integral_float=False)
                if checked is None and isinstance(v, float) and v.is_integer():
                    ck.errors[-1] += f"; int_uniform takes integers (write {int(v)}, not {v!r})"
            else:
                checked = ck.number(kpath, v)
        elif key == "q":
            checked = ck.number(kpath, v, minimum=0, exclusive=True)
        elif key in ("sigma", "a", "b"):
            checked = ck.number(kpath, v, minimum=0)
        else:  # mu
            checked = ck.number(kpath, v)
        if checked is None:
            ok = False
            continue
        out[key] = checked
    if not ok:
        return None

    if "min" in out:
        if not out["min"] < out["max"]:
            ck.error(f"{path}.min", f"must be less than max (got {out['min']!r} >= {out['max']!r})")
            return None
        if not math.isfinite(float(out["max"]) - float(out["min"])):
            ck.error(path, f"the range min..max is too wide to sample (got {out['min']!r}..{out['max']!r})")
            return None
        if dist in ("log_uniform", "q_log_uniform") and out["max"] > 709:
            ck.error(f"{path}.max", f"must be at most 709: {dist} takes exponents and e^max overflows (got {out['max']!r})")
            return None
        if dist == "inv_log_uniform" and out["min"] < -709:
            ck.error(f"{path}.min", f"must be at least -709: {dist} takes exponents and e^-min overflows (got {out['min']!r})")
            return None
        if dist in _LOG_VALUES and not out["min"] > 0:
            ck.error(
                f"{path}.min",
                f"must be greater than 0 for {dist}, which takes the limit values themselves (got {out['min']!r})",
            )
            return None
        if not explicit and dist == "int_uniform" and out["max"] - out["min"] <= 1:
            ck.warn(
                path,
                f"min and max are integers, so only the whole numbers {out['min']} and {out['max']} "
                f"are drawn; write {out['min']}.0 for real numbers in between",
            )
        if not explicit and dist == "uniform" and (_is_int(out["min"]) or _is_int(out["max"])):
            ck.warn(
                path,
                "one of min/max is an integer and the other is not: read as uniform over real "
                "numbers (the wandb CLI refuses this as ambiguous); set distribution to be explicit",
            )
        if dist == "uniform":
            out["min"], out["max"] = float(out["min"]), float(out["max"])
    if dist in _DEPRECATED:
        lo, hi = out["min"], out["max"]
        ck.warn(
            path,
            f"{dist} takes min/max as natural-log exponents (this samples "
            f"{_exp_text(lo, dist)} .. {_exp_text(hi, dist)}); W&B deprecates it: use "
            f"{_DEPRECATED[dist]} with the limit values themselves",
        )
    return out


def _exp_text(x: float, dist: str) -> str:
    try:
        return f"{math.exp(-x if dist.startswith('inv') else x):.3g}"
    except OverflowError:
        return "inf"


def _normalise_categorical(ck: _Checker, spec: Mapping[str, Any], path: str, out: dict[str, Any]) -> dict | None:
    values = spec["values"]
    if not isinstance(values, list) or not values:
        hint = f"; write values: [{values!r}]" if not isinstance(values, (list, Mapping)) else ""
        ck.error(f"{path}.values", f"must be a list of at least one value (got {_describe(values)}){hint}")
        return None
    out["values"] = values
    if out["distribution"] == "categorical":
        return out
    probs = spec["probabilities"]
    if not isinstance(probs, list) or not probs:
        ck.error(f"{path}.probabilities", f"must be a list of numbers (got {_describe(probs)})")
        return None
    ok = True
    for i, p in enumerate(probs):
        if ck.number(f"{path}.probabilities[{i}]", p, minimum=0) is None:
            ok = False
    if not ok:
        return None
    if len(probs) != len(values):
        ck.error(
            f"{path}.probabilities",
            f"must have one entry per value ({len(probs)} probabilities for {len(values)} values)",
        )
        return None
    total = math.fsum(probs)
    if not abs(total - 1.0) <= 1e-8 + 1e-5:  # numpy.isclose's tolerance, as W&B uses
        ck.error(f"{path}.probabilities", f"must sum to 1 (they sum to {total:g})")
        return None
    out["probabilities"] = probs
    return out


def _leaves(params: Mapping[str, Any], path: str = "parameters"):
    """(path, spec) of every non-nested parameter, at any depth."""
    for name, spec in params.items():
        if spec["distribution"] == "param_dict":
            yield from _leaves(spec["parameters"], f"{path}.{name}.parameters")
        else:
            yield f"{path}.{name}", spec


def _grid_axis_size(spec: Mapping[str, Any]) -> int:
    if spec["distribution"] == "int_uniform":
        return spec["max"] - spec["min"] + 1
    if spec["distribution"] == "q_uniform":
        return math.ceil((spec["max"] - spec["min"]) / spec["q"])
    return 1


def _grid_values_distinct(spec: Mapping[str, Any]) -> bool:
    """Whether a q_uniform axis's values (``numpy.arange`` in doubles) cannot repeat: q is well
    above the spacing of doubles at the range's magnitude. Only absurd configs fail this (a q of
    1e-15 on 1.0); it lets grid search take distinct digits for distinct points."""
    if spec["distribution"] != "q_uniform":
        return True
    lo, hi, q = spec["min"], spec["max"], spec["q"]
    if all(_is_int(x) for x in (lo, hi, q)):
        return True
    return q > 8 * math.ulp(max(abs(float(lo)), abs(float(hi))))


# --------------------------------------------------------------------------------------------
# Other sections


def _normalise_metric(ck: _Checker, metric: Any) -> dict[str, Any] | None:
    if not isinstance(metric, Mapping):
        ck.error("metric", f"must be a mapping such as {{name: loss, goal: minimize}} (got {_describe(metric)})")
        return None
    allowed = ("name", "goal", "target", "impute", "impute_while_running")
    for key in metric:
        if key not in allowed:
            ck.error(f"metric.{key}", f"unknown key{_did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
    if "name" not in metric:
        ck.error("metric", "needs a name (the logged value to optimise)")
        name = None
    else:
        name = ck.string("metric.name", metric["name"])
    goal = ck.choice("metric.goal", metric.get("goal", "minimize"), _GOALS)
    impute = ck.choice("metric.impute", metric.get("impute", "worst"), _IMPUTES)
    iwr = metric.get("impute_while_running", "false")
    if iwr is False:
        ck.error("metric.impute_while_running", 'must be one of false, latest, best, worst; write false quoted ("false")')
        iwr = None
    else:
        iwr = ck.choice("metric.impute_while_running", iwr, _IMPUTES_WHILE_RUNNING)
    out: dict[str, Any] = {"name": name, "goal": goal, "impute": impute, "impute_while_running": iwr}
    if "target" in metric:
        target = ck.number("metric.target", metric["target"])
        if target is not None:
            out["target"] = float(target)
    return out


def _normalise_early_terminate(ck: _Checker, et: Any) -> dict[str, Any] | None:
    if not isinstance(et, Mapping):
        ck.error(
            "early_terminate",
            f"must be a mapping such as {{type: hyperband, min_iter: 3}} (got {_describe(et)})",
        )
        return None
    kind = ck.choice("early_terminate.type", et.get("type"), ("hyperband", "asha", "median"))
    if "type" not in et:
        ck.errors[-1] = "early_terminate.type: missing; must be one of hyperband, asha, median"
    if kind is None:
        return None
    allowed = {
        "hyperband": ("type", "min_iter", "max_iter", "s", "eta", "strict"),
        "asha": ("type", "min_iter", "max_iter", "eta"),
        "median": ("type", "warmup_steps", "min_trials"),
    }[kind]
    n_errors = len(ck.errors)
    for key in et:
        if key not in allowed:
            ck.error(
                f"early_terminate.{key}",
                f"is not a key of {kind}{_did_you_mean(key, allowed)}; allowed: {', '.join(allowed[1:])}",
            )
    out: dict[str, Any] = {"type": kind}
    if kind == "hyperband":
        if "min_iter" not in et and not ("max_iter" in et and "s" in et):
            ck.error("early_terminate", "hyperband needs min_iter, or max_iter together with s")
        if "min_iter" in et:
            out["min_iter"] = ck.integer("early_terminate.min_iter", et["min_iter"], minimum=1)
        if "max_iter" in et:
            out["max_iter"] = ck.integer("early_terminate.max_iter", et["max_iter"], minimum=1)
        if "s" in et:
            # W&B types s as a number but uses it as a count (range(s)); 2.0 is fine, 2.5 is not.
            out["s"] = ck.integer("early_terminate.s", et["s"], minimum=1)
        out["eta"] = ck.number("early_terminate.eta", et.get("eta", 3), minimum=1, exclusive=True)
        strict = et.get("strict", True)
        if not isinstance(strict, bool):
            ck.error("early_terminate.strict", f"must be true or false (got {_describe(strict)})")
        out["strict"] = strict
    elif kind == "asha":
        out["min_iter"] = ck.integer("early_terminate.min_iter", et.get("min_iter", 1), minimum=1)
        out["eta"] = ck.number("early_terminate.eta", et.get("eta", 3), minimum=1, exclusive=True)
        if "max_iter" in et:
            max_iter = ck.integer("early_terminate.max_iter", et["max_iter"], minimum=1)
            if max_iter is not None and out["min_iter"] is not None and max_iter < out["min_iter"]:
                ck.error("early_terminate.max_iter", f"must be at least min_iter ({out['min_iter']}) (got {max_iter})")
            out["max_iter"] = max_iter
    else:
        out["warmup_steps"] = ck.integer("early_terminate.warmup_steps", et.get("warmup_steps", 5), minimum=0)
        out["min_trials"] = ck.integer("early_terminate.min_trials", et.get("min_trials", 5), minimum=1)
    return out if len(ck.errors) == n_errors else None


def _check_command(ck: _Checker, command: Any, program: Any) -> list[Any] | None:
    if command is _ABSENT:
        command = []
    if not isinstance(command, list):
        ck.error("command", f"must be a list of argv items (got {_describe(command)}); e.g. [python, train.py, ${{args}}]")
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
                    f"unknown macro {item}{_did_you_mean(name, known)}: it expands to nothing, as in W&B",
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
        ck.warn("command", "has no ${args...} macro: the parameters reach the program only through sweepq.init()")
    return command


def _check_scheduler(ck: _Checker, cfg: Mapping[str, Any]) -> None:
    sched = cfg["scheduler"]
    if not isinstance(sched, Mapping):
        ck.error("scheduler", f"must be a mapping (got {_describe(sched)})")
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
        ck.error("scheduler.engine", f"{sched['engine']} runs only with method: custom (a W&B Launch "
                 "scheduler), which sweepq does not support; remove scheduler to let sweepq search")
    for key in ("optimizer", "search_space"):
        if key in sched and "source" not in sched:
            ck.error(f"scheduler.{key}", "needs scheduler.source")
    controller = cfg.get("controller")
    if isinstance(controller, Mapping) and controller.get("type") == "local":
        ck.error("scheduler", "cannot be used with controller.type local")
    if "early_terminate" in cfg:
        ck.error("scheduler", "cannot be used together with early_terminate")
    ck.warn("scheduler", "is a W&B Launch setting; sweepq ignores it")


def _normalise(raw: Any) -> tuple[_Normalised | None, list[str], list[str]]:
    ck = _Checker()
    if not isinstance(raw, Mapping):
        ck.error("config", f"must be a mapping of keys such as method and parameters (got {_describe(raw)})")
        return None, ck.errors, ck.warnings
    cfg = _plain(raw, "config", ck.errors)
    if ck.errors:
        return None, ck.errors, ck.warnings
    if _OLD_MARKER in cfg:
        del cfg[_OLD_MARKER]
        ck.warn(_OLD_MARKER, "ignored: an internal marker, not a setting (the config is checked in full)")

    for key in cfg:
        if key not in _TOP_LEVEL_KEYS:
            if key.startswith("_"):
                ck.error(key, "keys starting with _ are sweepq's internal keys and cannot be set in a config")
            elif key == "count":
                ck.error(
                    "count",
                    "is not a sweep config key: give the number of trials to the agent "
                    "(sweepq agent --count N, or sweepq run --count N)",
                )
            else:
                hint = _did_you_mean(key, _TOP_LEVEL_KEYS)
                ck.error(key, f"unknown top-level key{hint}")

    out: dict[str, Any] = {}
    # method
    if "method" not in cfg:
        ck.error("method", "missing; must be one of grid, random, bayes")
        method = None
    elif cfg["method"] == "custom":
        ck.error(
            "method",
            "custom (a W&B local-controller callable) is not supported: sweepq needs grid, random or bayes",
        )
        method = None
    else:
        method = ck.choice("method", cfg["method"], _METHODS)
    # parameters
    params = None
    if "parameters" not in cfg:
        extra = " (sweepq does not read scheduler.search_space)" if "scheduler" in cfg else ""
        ck.error("parameters", f"missing: a sweep needs at least one parameter{extra}")
    else:
        params = _normalise_parameters(ck, cfg["parameters"], "parameters")
    # metric(s)
    metric = None
    if "metric" in cfg:
        metric = _normalise_metric(ck, cfg["metric"])
    if "metrics" in cfg:
        if "metric" in cfg:
            ck.error("metrics", "cannot be used together with metric")
        ck.error(
            "metrics",
            "multi-objective sweeps need method: custom, which sweepq does not support; use a single metric",
        )
    early = None
    if "early_terminate" in cfg:
        early = _normalise_early_terminate(ck, cfg["early_terminate"])
        if "metric" not in cfg:
            ck.error("early_terminate", "needs a metric to compare trials by: add metric: {name: ..., goal: ...}")
    # plain string keys
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
            ck.error("controller", f"must be a mapping such as {{type: cloud}} (got {_describe(controller)})")
        elif "type" not in controller:
            ck.error("controller", "needs a type (local or cloud)")
        else:
            ck.choice("controller.type", controller["type"], ("local", "cloud"))
    if "scheduler" in cfg:
        _check_scheduler(ck, cfg)
    for key in ("job", "image_uri"):
        if key in cfg:
            ck.warn(key, "is a W&B Launch setting; sweepq ignores it")
    program = cfg.get("program") if isinstance(cfg.get("program"), str) else None
    command = _check_command(ck, cfg.get("command", _ABSENT), program)

    # method-specific checks (W&B reports these only when the sweep runs)
    if params is not None and method == "grid":
        for path, spec in _leaves(params):
            dist = spec["distribution"]
            if dist not in GRID_DISTRIBUTIONS:
                what = "values with probabilities" if dist == "categorical_w_probabilities" else f"a {dist} distribution"
                ck.error(
                    path,
                    f"grid search cannot enumerate {what}; use values: [...], int_uniform or q_uniform, "
                    "or method random or bayes",
                )
            elif _grid_axis_size(spec) > MAX_GRID_AXIS:
                ck.error(path, f"gives more than {MAX_GRID_AXIS} grid points; narrow the range or raise q")
            elif not _grid_values_distinct(spec):
                ck.error(path, "q is below the float precision of min and max: grid values would repeat; raise q")
    if params is not None and method == "bayes":
        if "metric" not in cfg:
            ck.error("metric", "bayes search needs a metric to optimise: add metric: {name: ..., goal: ...}")
        if all(spec["distribution"] == "constant" for _, spec in _leaves(params)):
            ck.error("parameters", "bayes search needs at least one parameter that varies (not only value: ...)")

    # sweepq's own keys
    sq: dict[str, Any] = {}
    for key, default in SWEEPQ_DEFAULTS.items():
        v = cfg.get(key, default)
        if v is None and default is None:
            sq[key] = None
            continue
        if key == "seed":
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

    if ck.errors:
        return None, ck.errors, ck.warnings
    for key, value in cfg.items():
        if key in SWEEPQ_DEFAULTS:
            continue
        out[key] = value
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
        return None, [
            f"config: nested deeper than {MAX_DEPTH} levels or holds more than {MAX_NODES} values "
            "(or a YAML anchor refers to itself)"
        ], []
    except RecursionError:
        return None, ["config: nested too deeply to be a sweep config"], []
    except MemoryError:
        return None, ["config: too large to read"], []
    except Exception as exc:  # never a traceback: this is a bug, but the user gets one line
        return None, [f"config: could not be checked ({type(exc).__name__}: {_one_line(str(exc))})"], []


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
    options = {"Dumper": _Dumper, "sort_keys": False, "default_flow_style": False, "width": 100}
    text = yaml.dump(data, allow_unicode=True, **options)
    if any(ch in text for ch in "\x85\u2028\u2029"):
        # PyYAML writes these raw but reads them back as line breaks: escape everything instead.
        text = yaml.dump(data, allow_unicode=False, **options)
    return text
