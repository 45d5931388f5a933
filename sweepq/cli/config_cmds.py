"""``sweepq validate`` and ``sweepq preview``: check a sweep before any GPU time is spent.

Both read the config with :func:`sweepq.config.validate`, print warnings as ``warning: ...`` lines
on stderr, and on an invalid config print one ``error: ...`` line per problem and exit 2.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import click

from sweepq.cli import EXIT_BAD_INPUT, CliError, main

__all__ = ["preview", "validate_cmd"]


def _load(config_arg: str) -> dict[str, Any]:
    """The normalised config, after printing warnings; exits 2 on any problem."""
    from sweepq.config import MAX_BYTES, validate

    if config_arg == "-":
        source: Any = sys.stdin.buffer.read(MAX_BYTES + 1)
    else:
        from pathlib import Path

        source = Path(config_arg)
    config, errors, warnings = validate(source)
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    if config is None:
        for line in errors:
            click.echo(f"error: {line}", err=True)
        raise click.exceptions.Exit(EXIT_BAD_INPUT)
    return config


@main.command("validate")
@click.argument("config", metavar="CONFIG")
def validate_cmd(config: str) -> None:
    """Check CONFIG (a W&B-style sweep YAML, or - for stdin) and print it normalised.

    Exit 0 and the config with every default filled in; exit 2 and one line per problem.
    """
    try:
        from sweepq.config import to_yaml

        cfg = _load(config)
        click.echo(to_yaml(cfg), nl=False)
    except (
        click.ClickException,
        click.exceptions.Exit,
        BrokenPipeError,
    ):  # a closed pipe: sweepq.cli exits quietly
        raise
    except Exception as exc:  # never a traceback for a user's input
        raise CliError(f"{type(exc).__name__}: {exc}".splitlines()[0][:300]) from None


def _parse_params(text: str) -> dict[str, Any]:
    from sweepq.config import MAX_DEPTH, nesting_depth

    if nesting_depth(text) > MAX_DEPTH:  # json recurses per level: refuse before it does
        raise CliError(f"--params: nested deeper than {MAX_DEPTH} levels", EXIT_BAD_INPUT)
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--params: not valid JSON ({exc})", EXIT_BAD_INPUT) from None
    if not isinstance(params, dict):
        raise CliError("--params: must be a JSON object such as '{\"lr\": 0.01}'", EXIT_BAD_INPUT)
    return params


def _complete(config: dict[str, Any], given: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """``given`` with the config's parameters it lacks filled from the method's first
    suggestion (so constants as written), warning about each searched value filled in and each
    key the config does not have (it is passed on as given, as W&B's agent would)."""
    import copy

    import numpy as np

    from sweepq import engine
    from sweepq.conditions import Conditions
    from sweepq.params import flatten, get_path, make

    missing = object()
    out = copy.deepcopy(given)
    if config["method"] == "grid":
        suggestion = (engine.suggest(config, [], n=1, seed=seed) or [{}])[0]
    else:  # bayes starts from random points too, and this skips importing its numerics
        from sweepq.search import random

        suggestion = random.suggest(config, [], n=1, seed=seed)[0]
    specs = flatten(config["parameters"])
    cond = Conditions(config["parameters"])
    active: dict[tuple[str, ...], Any] = {}  # parameters decided so far, parents first
    for path in cond.order:
        spec = specs[path]
        given_value = get_path(out, path, missing)
        if not cond.holds(path, active):
            if given_value is not missing:
                click.echo(
                    f"warning: --params: {'.'.join(path)} is inactive (its when does not hold); "
                    "passed on as given",
                    err=True,
                )
            continue
        if given_value is not missing:
            active[path] = given_value
            continue
        value = get_path(suggestion, path, missing)
        if value is missing:  # inactive in the suggestion: draw it for these parents
            value = make(spec).sample(np.random.default_rng(seed))
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            continue
        node[path[-1]] = value
        active[path] = value
        if spec.get("distribution") != "constant":
            click.echo(f"warning: --params: {'.'.join(path)} not given; using {value!r}", err=True)
    for key in given:
        if key not in config["parameters"]:
            click.echo(
                f"warning: --params: {key} is not a parameter of the config; passed on as given", err=True
            )
    return out


@main.command("preview")
@click.argument("config", metavar="CONFIG")
@click.option(
    "--params",
    "params_json",
    metavar="JSON",
    help="Parameter values as a JSON object (nested as in the config).",
)
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 100_000),
    default=1,
    show_default=True,
    help="How many suggestions of the config's method to show (bayes: its initial random points).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON list per argv instead of a shell-quoted line."
)
@click.option("--seed", type=int, default=None, help="Seed for the suggestions (default: the config's seed).")
@click.option("--sweep-id", default="preview", show_default=True, help="Sweep id for ${args_json_file}.")
@click.option(
    "--run-id", default=None, help="Run id for ${args_json_file} (default preview-1, preview-2, ...)."
)
def preview(config: str, params_json: str | None, count: int, as_json: bool, seed: int | None,
            sweep_id: str, run_id: str | None) -> None:  # fmt: skip
    """Print the argv each trial of CONFIG would run, one per line.

    With --params, the argv for those values; otherwise for the first N suggestions of the
    config's method. Nothing is run and no file is written: where the command uses
    ${args_json_file}, the JSON that file would hold is shown on stderr.
    """
    try:
        from sweepq import engine
        from sweepq.command import args_json_path, args_json_text, render, uses_args_json_file

        cfg = _load(config)
        if params_json is not None:
            suggestions = [_complete(cfg, _parse_params(params_json), seed)]
        else:
            suggestions = engine.suggest(cfg, [], n=count, seed=seed)
            if not suggestions:
                click.echo("warning: the grid has no points", err=True)
        for i, params in enumerate(suggestions, start=1):
            rid = run_id if run_id and len(suggestions) == 1 else f"{run_id or 'preview'}-{i}"
            argv = render(cfg, params, sweep_id=sweep_id, run_id=rid)
            click.echo(json.dumps(argv) if as_json else shlex.join(argv))
            if uses_args_json_file(cfg):
                click.echo(f"# {args_json_path(sweep_id, rid)}: {args_json_text(params)}", err=True)
    except (
        click.ClickException,
        click.exceptions.Exit,
        BrokenPipeError,
    ):  # a closed pipe: sweepq.cli exits quietly
        raise
    except Exception as exc:  # never a traceback for a user's input
        raise CliError(f"{type(exc).__name__}: {exc}".splitlines()[0][:300]) from None
