"""Build a trial's argv from the sweep's ``command`` macros, exactly as W&B's agent does.

The rules (WANDB-COMPAT.md section 4, conformance EXPECTED.md):

1. No ``command`` (or an empty one) means ``${env} ${interpreter} ${program} ${args}``.
2. In every item, each ``${envvar:NAME}`` is replaced by that environment variable, or by the
   literal text ``NAME`` when it is unset. This is the only macro that works inside an item.
3. Every item becomes ``str(item)`` (``64`` -> ``"64"``). An item that *as a whole* starts with
   ``${`` and ends with ``}`` is a macro and is replaced by a list of items (maybe empty); an
   unknown macro becomes nothing, as in W&B (``sweepq validate`` warns about it). Anything else,
   including ``--lr=${lr}``, is passed through literally.
4. Values print with Python's ``str()``: ``True``, ``None``, ``[1, 2]``, ``{'a': 1}``. Only
   ``${args_json}`` and ``${args_json_file}`` carry JSON.

sweepq's choices where W&B leaves things open:

* **Key order.** Parameters are emitted in sorted key order, and dict values (nested groups) are
  printed with their keys sorted at every level too. W&B's agent keeps the order its server
  sends, which real agent logs show alphabetical; sorting makes sweepq's argv deterministic and
  independent of how a config was written.
* **``${interpreter}``** is the literal ``python``, as in W&B, so that a trial runs under whatever
  ``python`` the worker's PATH (e.g. an activated environment) gives it. Pass ``interpreter=``
  (e.g. ``sys.executable``) to pin a specific Python instead.
* **``${program}``** without a ``program`` key expands to nothing (W&B would put ``None`` in the
  argv and fail to start); ``sweepq validate`` warns.
* **``${args_json_file}``** is ``<args_json_dir>/wandb/sweep-<sweep_id>/config-<run_id>.json``;
  with no ``args_json_dir`` the path is relative (``wandb/sweep-...``), i.e. relative to the
  trial's working directory, which is what W&B does when ``WANDB_DIR`` is unset. The file itself
  is written by :func:`write_args_json_file`, only when the exact item ``${args_json_file}`` is in
  the command.

The argv is meant for ``subprocess.Popen(argv)``: never a shell, so ``; rm -rf ~`` or
``$(reboot)`` in a value stays one literal argument.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_COMMAND",
    "args_json_path",
    "args_json_text",
    "macro_names",
    "render",
    "uses_args_json_file",
    "write_args_json_file",
]

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
_ENVVAR_RE = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")
_ARGS_JSON_FILE = "${args_json_file}"


def _sorted(value: Any) -> Any:
    """``value`` with every dict's keys in sorted order (lists kept in order)."""
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _kv(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(str(k), _sorted(params[k])) for k in sorted(params, key=str)]


def _args(params: Mapping[str, Any]) -> list[str]:
    return [f"--{k}={v}" for k, v in _kv(params)]


def _args_no_hyphens(params: Mapping[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in _kv(params)]


def _args_no_boolean_flags(params: Mapping[str, Any]) -> list[str]:
    out = []
    for k, v in _kv(params):
        if v is True:
            out.append(f"--{k}")
        elif v is not False:
            out.append(f"--{k}={v}")
    return out


def _args_no_equals(params: Mapping[str, Any]) -> list[str]:
    out = []
    for k, v in _kv(params):
        out += [f"--{k}", str(v)]
    return out


def args_json_text(params: Mapping[str, Any]) -> str:
    """The JSON of ``${args_json}`` and of the ``${args_json_file}`` file: keys sorted at every
    level, Python's default separators and ASCII escaping (W&B's ``json.dumps`` call)."""
    return json.dumps(dict(_kv(params)))


_ARG_MACROS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "args": _args,
    "args_no_hyphens": _args_no_hyphens,
    "args_no_boolean_flags": _args_no_boolean_flags,
    "args_no_equals": _args_no_equals,
    "args_json": lambda p: [args_json_text(p)],
    "args_append_hydra": lambda p: [f"+{k}={v}" for k, v in _kv(p)],
    "args_override_hydra": lambda p: [f"++{k}={v}" for k, v in _kv(p)],
}


def macro_names() -> frozenset[str]:
    """Every whole-item macro name (without ``${}``); ``envvar:NAME`` is handled separately."""
    return frozenset({"env", "interpreter", "program", "args_json_file", *_ARG_MACROS})


def _command(config: Mapping[str, Any]) -> list[Any]:
    command = config.get("command")
    if not isinstance(command, list) or not command:
        return list(DEFAULT_COMMAND)
    return command


def args_json_path(sweep_id: str, run_id: str, args_json_dir: str | os.PathLike[str] | None = None) -> str:
    """Where ``${args_json_file}`` points: ``<dir>/wandb/sweep-<sweep>/config-<run>.json``."""
    return os.path.join(os.fspath(args_json_dir) if args_json_dir else "", "wandb", f"sweep-{sweep_id}",
                        f"config-{run_id}.json")  # fmt: skip


def uses_args_json_file(config: Mapping[str, Any]) -> bool:
    """True when the command holds the exact item ``${args_json_file}`` (W&B's rule for writing)."""
    return _ARGS_JSON_FILE in _command(config)


def write_args_json_file(
    params: Mapping[str, Any],
    *,
    sweep_id: str,
    run_id: str,
    args_json_dir: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> str | None:
    """Write the trial's parameters as JSON where ``${args_json_file}`` points, before launch.

    Returns the path written. With ``config`` given, nothing is written (and ``None`` returned)
    unless its command holds the exact item ``${args_json_file}``, which is W&B's rule. Relative
    paths are relative to the current directory, so pass ``args_json_dir`` (the trial's working
    directory). The file is replaced atomically, so a program never reads half of it.
    """
    if config is not None and not uses_args_json_file(config):
        return None
    path = args_json_path(sweep_id, run_id, args_json_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(args_json_text(params))
    os.replace(tmp, path)
    return path


def render(
    config: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    sweep_id: str,
    run_id: str,
    env: Mapping[str, str] | None = None,
    args_json_dir: str | os.PathLike[str] | None = None,
    interpreter: str | None = None,
) -> list[str]:
    """The argv of one trial.

    ``config`` is a (normalised) sweep config; only ``command`` and ``program`` are read.
    ``params`` are the trial's values, nested as in the config, constants included. ``env``
    resolves ``${envvar:NAME}`` (default ``os.environ``). See the module docstring for the rules
    and for sweepq's choices of key order and ``${interpreter}``.
    """
    environ = os.environ if env is None else env
    program = config.get("program")
    fixed: dict[str, list[str]] = {
        "env": [] if os.name == "nt" else ["/usr/bin/env"],
        "interpreter": [interpreter or "python"],
        "program": [] if program is None else [str(program)],
        "args_json_file": [args_json_path(sweep_id, run_id, args_json_dir)],
    }
    argv: list[str] = []
    for item in _command(config):
        text = _ENVVAR_RE.sub(lambda m: environ.get(m.group(1), m.group(1)), str(item))
        if text.startswith("${") and text.endswith("}"):
            name = text[2:-1]
            if name in fixed:
                argv += fixed[name]
            elif name in _ARG_MACROS:
                argv += _ARG_MACROS[name](params)
            # an unknown macro expands to nothing, as W&B's agent does
        else:
            argv.append(text)
    return argv
